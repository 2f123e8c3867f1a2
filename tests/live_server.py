"""Browser-test helpers: the application served by werkzeug in a thread, and a Chromium page.

Use them from a test module::

    from live_server import CHROMIUM_SKIP, browser_page, live_server  # noqa: F401  (fixtures)

    pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]

    def test_something(live_server, browser_page):
        browser_page.goto(live_server.url + "/login")

``live_server`` serves the test's ``app`` fixture (demo data loaded) on 127.0.0.1 at a free port;
``SERVER_NAME`` follows the port, so links in emails point at the live server.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("CRM_PORTAL_BROWSER") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CHROMIUM_SKIP = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"no Chromium at {CHROMIUM}: install it (apt-get install chromium) to run browser tests")


@dataclasses.dataclass
class LiveServer:
    app: Flask
    url: str
    port: int


@pytest.fixture
def live_server(app, demo) -> Iterator[LiveServer]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    port = server.server_port
    app.config["SERVER_NAME"] = f"127.0.0.1:{port}"
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, url=f"http://127.0.0.1:{port}", port=port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


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
