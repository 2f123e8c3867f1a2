"""A real server for browser and concurrency tests: gunicorn in a child process on the test's database.

Use the fixtures from a test module::

    from live_server import CHROMIUM_SKIP, browser_page, live_server  # noqa: F401  (fixtures)

    pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]

    def test_something(live_server, browser_page):
        browser_page.goto(live_server.url + "/login")

``live_server`` serves the test's ``app`` configuration (demo data loaded) on 127.0.0.1 at a free port,
in a gunicorn process with threads, as in production. The test reads and changes the same database
through its own ``app``. A connection the browser drops, or anything else that goes wrong inside the
server, cannot turn into a warning or error of the test process: the test sees HTTP answers only,
and the server's log is printed when the test fails. ``EXTERNAL_URL`` is the server's address, so
links in emails point at it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("CRM_PORTAL_BROWSER") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CHROMIUM_SKIP = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"no Chromium at {CHROMIUM}: install it (apt-get install chromium) to run browser tests")

# Settings the child must not inherit: they describe the test process, not a served application.
_NOT_INHERITED = {"SERVER_NAME", "APPLICATION_ROOT", "PREFERRED_URL_SCHEME", "INSTANCE_PATH", "ENV"}


@dataclasses.dataclass
class LiveServer:
    app: Flask
    url: str
    port: int
    log: Path | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(app: Flask, url: str) -> dict[str, str]:
    """The test application's configuration as ``CRM_PORTAL_*`` variables (JSON values)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_PORTAL_")}
    for key, value in app.config.items():
        if key in _NOT_INHERITED or not key.isupper():
            continue
        try:
            env[f"CRM_PORTAL_{key}"] = json.dumps(value)
        except TypeError:
            continue  # timedeltas and objects: the child computes its own defaults
    env["CRM_PORTAL_EXTERNAL_URL"] = json.dumps(url)
    env["CRM_PORTAL_INSTANCE_PATH"] = app.instance_path
    return env


def _wait_until_up(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/login")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise RuntimeError("the server did not answer in time")


@contextlib.contextmanager
def serve(app: Flask, *, workers: int = 1, threads: int = 8, tmp_path: Path | None = None) -> Iterator[LiveServer]:
    """Run ``app``'s configuration under gunicorn (``workers`` processes × ``threads``) until the block ends."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path or Path(app.instance_path)) / f"server-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--threads", str(threads), "--worker-class", "gthread", "--graceful-timeout", "5",
               "--timeout", "120", "--backlog", "512", "crm_portal:create_app()"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=_environment(app, url), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_until_up(port, process)
        yield LiveServer(app=app, url=url, port=port, log=log)
    except BaseException:
        sys.stderr.write(f"--- server log ({log}) ---\n{log.read_text(errors='replace')[-20000:]}\n")
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@contextlib.contextmanager
def serve_in_thread(app: Flask) -> Iterator[LiveServer]:
    """``app`` itself behind werkzeug's threaded server in this process: for tests that patch the
    application (count password checks …) and so cannot use a server in a child process."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, url=f"http://127.0.0.1:{server.server_port}", port=server.server_port)
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


class Browser:
    """A minimal HTTP client with a cookie jar: one logged-in person."""

    def __init__(self, port: int, host: str | None = None) -> None:
        self.port = port
        self.host = host  # the Host header to send (the configured SERVER_NAME), if any
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if self.host:
            headers["Host"] = self.host
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, response.headers.get("Location", ""), text
        finally:
            conn.close()

    def token(self, path: str) -> tuple[str, str]:
        status, _, html = self.request("GET", path)
        assert status == 200, (path, status)
        match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
        assert match, f"no CSRF token on {path}"
        return match.group(1), html

    def login(self, email: str) -> None:
        token, _ = self.token("/login")
        status, location, _ = self.request("POST", "/login", {"csrf_token": token, "email": email, "password": "demo"})
        assert status == 302 and not location.endswith("/login"), (email, status, location)



@pytest.fixture
def live_server(app, demo, tmp_path) -> Iterator[LiveServer]:
    with serve(app, tmp_path=tmp_path) as server:
        yield server


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(locale="en-GB")
        page = context.new_page()
        page.set_default_timeout(15000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
