"""The database restarts under load: the portal answers 503 (never 500) while it is down and
recovers by itself within seconds once it is back.

A private PostgreSQL server (tests/pg_server.py) is initialised with ``crm-portal init`` and
``crm-portal demo`` and served by a real gunicorn (two workers with threads). Clients of every kind
(page reads, comment writes, streamed CSV exports, 1 MB uploads, logins, API calls with a key) run
bounded loops while the server is stopped with ``pg_ctl -m immediate``, kept down a few seconds and
started again. A second test does the same with the job queue's Redis.

It starts its own servers, so it runs in the suite's first pass only (``make test`` runs the
suite a second time with ``CRM_PORTAL_TEST_DATABASE_URL`` set: the same test again would prove
nothing new).
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
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import Browser, serve
from pg_server import PgServer, free_port, unavailable

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get("CRM_PORTAL_TEST_DATABASE_URL")),
                       reason="starts its own PostgreSQL: run in the SQLite pass only"),
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]

DOWN_SECONDS = 4
#: Every kind of client must succeed again within this many seconds of the server's restart.
RECOVERY_LIMIT = 15
UPLOAD = b"%PDF-1.4\n" + b"0" * (1024 * 1024)  # 1 MB, a PDF by its content


@dataclasses.dataclass
class Answer:
    kind: str
    started: float
    ended: float
    status: int  # 0: the connection broke (a streamed export cut by the outage)
    retry_after: str | None
    content_type: str
    body: str


class Client(Browser):
    """:class:`live_server.Browser` with headers, multipart bodies and the whole answer."""

    def send(self, method: str, path: str, *, body: bytes | str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), "Accept-Language": "en",
                **(headers or {})}
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                from http.cookies import SimpleCookie

                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, {k.lower(): v for k, v in response.headers.items()}, text
        finally:
            conn.close()


def _multipart(fields: dict[str, str], name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                 f"Content-Type: application/pdf\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Load:
    """Bounded client loops of every kind, recording every answer."""

    def __init__(self, port: int, ticket_id: int, api_token: str) -> None:
        self.port = port
        self.ticket = ticket_id
        self.api_token = api_token
        self.answers: list[Answer] = []
        self.comments: list[str] = []  # acknowledged (302)
        self.uploads: list[str] = []  # acknowledged (200 JSON ok)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def record(self, kind: str, started: float, status: int, headers: dict[str, str], body: str) -> None:
        with self.lock:
            self.answers.append(Answer(kind, started, time.monotonic(), status, headers.get("retry-after"),
                                       headers.get("content-type", ""), body[:3000]))

    def call(self, kind: str, client: Client, method: str, path: str, **kwargs) -> tuple[int, dict[str, str], str]:
        started = time.monotonic()
        try:
            status, headers, body = client.send(method, path, **kwargs)
        except (OSError, http.client.HTTPException) as exc:
            status, headers, body = 0, {}, repr(exc)
        self.record(kind, started, status, headers, body)
        return status, headers, body

    def logged_in(self, kind: str, email: str) -> Client | None:
        client = Client(self.port)
        status, _, html = self.call(kind, client, "GET", "/login")
        match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
        if status != 200 or not match:
            return None
        form = urllib.parse.urlencode({"csrf_token": match.group(1), "email": email, "password": "demo"})
        status, headers, _ = self.call(kind, client, "POST", "/login", body=form,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        if status != 302 or headers.get("location", "").endswith("/login"):
            return None
        return client

    def token(self, kind: str, client: Client, path: str) -> str | None:
        status, _, html = self.call(kind, client, "GET", path)
        match = re.search(r'name="(?:\w+-)?csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
        return match.group(1) if status == 200 and match else None

    # --- the kinds of client: each step is one unit of work, run again until the load stops ----
    def reader(self, client: Client | None) -> Client | None:
        client = client or self.logged_in("read", "anna@acme.example")
        if client:
            self.call("read", client, "GET", f"/tickets/{self.ticket}")
            self.call("read", client, "GET", "/tickets/")
        return client

    def commenter(self, client: Client | None) -> Client | None:
        client = client or self.logged_in("comment", "bruno@acme.example")
        token = client and self.token("comment", client, f"/tickets/{self.ticket}")
        if client and token:
            text = f"restart comment {uuid.uuid4().hex}"
            form = urllib.parse.urlencode({"csrf_token": token, "body": text, "kind": "public"})
            status, _, _ = self.call("comment", client, "POST", f"/tickets/{self.ticket}/comment", body=form,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
            if status == 302:
                with self.lock:
                    self.comments.append(text)
        return client

    def exporter(self, client: Client | None) -> Client | None:
        client = client or self.logged_in("export", "anna@acme.example")
        if client:
            status, _, body = self.call("export", client, "GET", "/tickets/export.csv")
            if status == 200 and not body.startswith("\ufeff"):
                self.record("export", time.monotonic(), 0, {}, "a CSV without its header")
        return client

    def uploader(self, client: Client | None) -> Client | None:
        client = client or self.logged_in("upload", "bruno@acme.example")
        token = client and self.token("upload", client, f"/tickets/{self.ticket}")
        if client and token:
            name = f"restart-{uuid.uuid4().hex}.pdf"
            body, content_type = _multipart({"csrf_token": token}, "file", name, UPLOAD)
            status, _, text = self.call("upload", client, "POST", f"/tickets/{self.ticket}/upload", body=body,
                                        headers={"Content-Type": content_type, "Accept": "application/json",
                                                 "X-Requested-With": "fetch", "X-CSRFToken": token})
            if status == 200 and json.loads(text).get("ok"):
                with self.lock:
                    self.uploads.append(name)
        return client

    def login(self, client: Client | None) -> None:
        self.logged_in("login", "carla@globex.example")
        return

    def api(self, client: Client | None) -> None:
        self.call("api", Client(self.port), "GET", "/api/v1/tickets?limit=20",
                  headers={"Authorization": f"Bearer {self.api_token}", "Accept": "application/json"})
        return

    def start(self, kinds: dict[Callable[[Client | None], Client | None], int], max_steps: int = 5000) -> None:
        for step, count in kinds.items():
            for _ in range(count):
                thread = threading.Thread(target=self._loop, args=(step, max_steps), daemon=True)
                thread.start()
                self.threads.append(thread)

    def _loop(self, step: Callable[[Client | None], Client | None], max_steps: int) -> None:
        client = None
        for _ in range(max_steps):  # bounded: the test ends it long before
            if self.stop.is_set():
                return
            before = len(self.answers)
            client = step(client)
            with self.lock:
                failed = any(a.status not in (200, 302) for a in self.answers[before:])
            if failed:
                client = None  # log in again: a failed login leaves no session
                time.sleep(0.05)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(90)


ALL_KINDS = ("read", "comment", "export", "upload", "login", "api")


def _mixed(load: Load) -> None:
    load.start({load.reader: 2, load.commenter: 2, load.exporter: 2, load.uploader: 2, load.login: 1,
                load.api: 1})


def _portal_env(url: str, instance: Path, **settings: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_PORTAL_")}
    env["CRM_PORTAL_DATABASE_URL"] = json.dumps(url)
    env["CRM_PORTAL_INSTANCE_PATH"] = str(instance)
    for key, value in settings.items():
        env[f"CRM_PORTAL_{key}"] = json.dumps(value)
    return env


def _portal_command(*args: str, env: dict[str, str]) -> str:
    command = shutil.which("crm-portal", path=str(Path(sys.executable).parent)) or "crm-portal"
    result = subprocess.run([command, *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@dataclasses.dataclass
class PrivatePortal:
    """The portal initialised (``init`` + ``demo``) on a private PostgreSQL, and an application
    on it in this process (to read what was stored and to make API keys)."""

    pg: PgServer
    url: str
    instance: Path
    app: Any


@pytest.fixture(scope="module")
def private_portal(tmp_path_factory) -> Iterator[PrivatePortal]:
    from crm_portal import create_app
    from crm_portal.db import close_all

    with PgServer.running() as pg:
        url = pg.create_database("portal")
        instance = tmp_path_factory.mktemp("portal") / "instance"
        env = _portal_env(url, instance)
        _portal_command("init", "--no-admin", "--external-url", "http://127.0.0.1:1", env=env)
        _portal_command("demo", env=env)
        app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(instance), "DATABASE_POOL_TIMEOUT": 5})
        try:
            yield PrivatePortal(pg=pg, url=url, instance=instance, app=app)
        finally:
            close_all()


@pytest.fixture
def pg_up(private_portal) -> PrivatePortal:
    """The private portal with its server running (a test that stopped it may have failed midway)."""
    from crm_portal.db import bind, close_all

    if not private_portal.pg.is_up():
        private_portal.pg.start()
    close_all()
    bind(private_portal.url, pool_timeout=5)
    return private_portal


@contextlib.contextmanager
def served(portal: PrivatePortal, tmp_path: Path, **settings: object) -> Iterator[Any]:
    """gunicorn (two workers with threads) serving the private portal with ``settings`` on top."""
    from crm_portal import create_app

    app = create_app({"DATABASE_URL": portal.url, "INSTANCE_PATH": str(portal.instance),
                      "DATABASE_POOL_TIMEOUT": 5, **settings})
    with serve(app, workers=2, threads=8, tmp_path=tmp_path) as live:
        yield live


def _ticket_and_key(app) -> tuple[int, str]:
    from api_helpers import make_key

    from crm_portal.db import db
    from crm_portal.models import Contact
    from crm_portal.modules.tickets import workflow
    from crm_portal.modules.tickets.models import Ticket

    with app.app_context(), db.connection_context():
        contact = Contact.get(Contact.email == "bruno@acme.example")
        # A ticket still open to changes: comments and uploads are refused on a closed one.
        tickets = Ticket.select().where(Ticket.contact == contact.id).order_by(Ticket.id)
        ticket_id = next(t.id for t in tickets if not workflow.is_final(t))
    return ticket_id, make_key(app).token


def _describe(answer: Answer, origin: float) -> str:
    return (f"{answer.kind} {answer.status} at +{answer.started - origin:.1f}s..+{answer.ended - origin:.1f}s "
            f"({answer.content_type}): {answer.body[:600]}")


def _is_success(answer: Answer) -> bool:
    return answer.status in (200, 302)


def _assert_outage_answers(answers: list[Answer], origin: float) -> None:
    """No 500 ever; every failure is a 503 with Retry-After in the format of its kind (or a
    streamed export cut mid-way, which the outage cannot turn into a status)."""
    server_errors = [a for a in answers if a.status >= 500 and a.status != 503]
    assert not server_errors, "\n".join(_describe(a, origin) for a in server_errors[:10])
    assert not any("Traceback" in a.body for a in answers)
    for answer in answers:
        if answer.status == 503:
            assert answer.retry_after and answer.retry_after.isdigit(), _describe(answer, origin)
            if answer.kind == "api":
                assert answer.content_type.startswith("application/json"), _describe(answer, origin)
                assert json.loads(answer.body)["code"] == "unavailable"
            elif answer.kind != "upload":
                assert answer.content_type.startswith("text/html"), _describe(answer, origin)
    others = [a for a in answers if not _is_success(a) and a.status not in (503, 0)]
    assert not others, "\n".join(_describe(a, origin) for a in others[:10])


def _recovery(answers: list[Answer], restarted: float) -> dict[str, float]:
    """Per kind: seconds from the restart until its last failed answer (0 when none failed after it)."""
    result = {}
    for kind in ALL_KINDS:
        failed = [a.ended for a in answers if a.kind == kind and not _is_success(a) and a.ended >= restarted]
        result[kind] = max(failed, default=restarted) - restarted
    return result


def _wait_for_successes(load: Load, since: float, limit: float) -> set[str]:
    """Wait (at most ``limit`` seconds) until every kind of client succeeded in a request started
    after ``since``, then a little more; the kinds that did."""
    deadline = since + limit
    while True:
        with load.lock:
            ok = {a.kind for a in load.answers if a.started >= since and _is_success(a)}
        if ok >= set(ALL_KINDS) or time.monotonic() > deadline:
            time.sleep(3)  # and a little more: every kind keeps succeeding
            return ok
        time.sleep(0.2)


def test_postgresql_restart_under_load(pg_up, tmp_path):
    """PostgreSQL killed (``pg_ctl -m immediate``) under mixed load and started again a few seconds
    later: no answer is ever a 500; while it is down every failure is a 503 with Retry-After (JSON
    for the API); every kind of client succeeds again within RECOVERY_LIMIT seconds (the measured
    time is printed); every comment and upload that was acknowledged is stored."""
    from crm_portal.db import db
    from crm_portal.modules.tickets.models import TicketAttachment, TicketComment

    portal = pg_up
    with served(portal, tmp_path) as live:
        ticket_id, token = _ticket_and_key(portal.app)
        load = Load(live.port, ticket_id, token)
        origin = time.monotonic()
        try:
            _mixed(load)
            warm = _wait_for_successes(load, origin, 60)  # every kind has succeeded at least once
            assert warm >= set(ALL_KINDS), warm
            time.sleep(2)
            stopped = time.monotonic()
            portal.pg.stop("immediate")
            time.sleep(DOWN_SECONDS)
            starting = time.monotonic()
            portal.pg.start()
            restarted = time.monotonic()  # accepting connections again
            _wait_for_successes(load, restarted, RECOVERY_LIMIT + 10)
        finally:
            load.finish()
        answers = list(load.answers)
        down = [a for a in answers if stopped <= a.started and a.ended <= restarted]
        recovery = _recovery(answers, restarted)
        first_ok = {k: min((a.ended for a in answers if a.kind == k and a.started >= restarted and _is_success(a)),
                           default=float("inf")) - restarted for k in ALL_KINDS}
        print(f"\n{len(answers)} answers; {len(down)} while the database was down "
              f"({sum(a.status == 503 for a in down)} of them 503, {sum(a.status == 0 for a in answers)} exports "
              f"cut); PostgreSQL took {restarted - starting:.2f}s to start; after that, last failure per kind: "
              + ", ".join(f"{k} +{v:.2f}s" for k, v in recovery.items())
              + "; first success per kind: " + ", ".join(f"{k} +{v:.2f}s" for k, v in first_ok.items())
              + f"; time to recovery (every kind succeeding): {max(*recovery.values(), *first_ok.values()):.2f}s")
        _assert_outage_answers(answers, origin)
        assert any(a.status == 503 for a in down), "the outage was never seen"
        assert max(recovery.values()) <= RECOVERY_LIMIT, recovery
        assert max(first_ok.values()) <= RECOVERY_LIMIT, first_ok
        for kind in ALL_KINDS:
            assert any(_is_success(a) and a.started >= restarted + max(recovery.values()) for a in answers
                       if a.kind == kind), kind
        with portal.app.app_context(), db.connection_context():
            stored = {c.body for c in TicketComment.select(TicketComment.body)
                      .where(TicketComment.body.startswith("restart comment "))}
            attached = {a.original_name for a in TicketAttachment.select(TicketAttachment.original_name)
                        .where(TicketAttachment.original_name.startswith("restart-"))}
        assert set(load.comments) <= stored  # nothing acknowledged was lost
        assert set(load.uploads) <= attached
        assert load.comments and load.uploads


def _terminate_backends(portal: PrivatePortal) -> None:
    """Kill every connection of the portal's database on the server side (as a restart would)."""
    import psycopg2

    admin = psycopg2.connect(portal.pg.url("postgres"))
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = 'portal' AND pid <> pg_backend_pid()")
    finally:
        admin.close()
    time.sleep(0.2)


def _idle_connections(count: int) -> None:
    """Leave ``count`` connections idle in the pool (taken at once by as many threads)."""
    from crm_portal.db import db

    barrier = threading.Barrier(count)

    def hold() -> None:
        with db.connection_context():
            db.execute_sql("SELECT 1")
            barrier.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(db.obj._connections) >= count


def test_a_dropped_connection_is_replaced_in_requests_and_jobs(pg_up):
    """A connection the server dropped while a thread held it (a job between two runs, a caller
    of the application) is noticed and replaced instead of failing every later use."""
    from crm_portal.db import db
    from crm_portal.jobs import app_db_context
    from crm_portal.models import Company

    portal = pg_up
    _, token = _ticket_and_key(portal.app)
    client = portal.app.test_client()
    with portal.app.app_context():
        db.connect()
        db.execute_sql("SELECT 1")
        _terminate_backends(portal)
        with contextlib.suppress(Exception):
            db.execute_sql("SELECT 1")  # the driver learns the server went away
        # The thread still holds the dead connection: the request and the job replace it.
        response = client.get("/api/v1/tickets?limit=1", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        db.close()
        db.connect()
        _terminate_backends(portal)
        with contextlib.suppress(Exception):
            db.execute_sql("SELECT 1")
        with app_db_context(portal.app):
            assert Company.select().count() > 0
        db.close()


def test_after_the_server_went_away_the_idle_connections_are_dropped_too(pg_up):
    from crm_portal.db import db

    portal = pg_up
    _, token = _ticket_and_key(portal.app)
    client = portal.app.test_client()
    portal.app.config["PROPAGATE_EXCEPTIONS"] = False
    _idle_connections(3)
    with portal.app.app_context(), db.connection_context():
        db.execute_sql("SELECT 1")
        _terminate_backends(portal)
        # This thread's connection looks alive until used: the request fails on it (503) ...
        response = client.get("/api/v1/tickets?limit=1", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"].isdigit()
        assert response.get_json()["code"] == "unavailable"
        # ... and the pool's idle connections, dead as well, are gone with it.
        assert db.obj._connections == []
    response = client.get("/api/v1/tickets?limit=1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


@contextlib.contextmanager
def redis_server() -> Iterator[Callable[[bool], None]]:
    """A private redis-server on a free loopback port, nothing saved to disk. Yields a switch:
    ``switch(False)`` stops it, ``switch(True)`` starts it again on the same port."""
    port = free_port()
    processes: list[subprocess.Popen] = []
    folder = Path(tempfile.mkdtemp(prefix="crm-redis-"))

    def switch(on: bool) -> None:
        if not on:
            process = processes.pop()
            process.terminate()
            process.wait(10)
            return
        processes.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    switch(True)
    switch.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    try:
        yield switch
    finally:
        for process in processes:
            process.kill()
            process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def worker(portal: PrivatePortal, log: Path, **settings: object) -> Iterator[subprocess.Popen]:
    """``crm-portal worker`` on the private portal, stopped when the block ends."""
    command = shutil.which("crm-portal", path=str(Path(sys.executable).parent)) or "crm-portal"
    with open(log, "wb") as out:
        process = subprocess.Popen([command, "worker"], env=_portal_env(portal.url, portal.instance, **settings),
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _resets(app, since_id: int) -> tuple[int, int]:
    """(password-reset emails queued after ``since_id``, how many of them were sent)."""
    from crm_portal.db import db
    from crm_portal.models import OutboxMessage

    with app.app_context(), db.connection_context():
        rows = list(OutboxMessage.select(OutboxMessage.status)
                    .where(OutboxMessage.id > since_id, OutboxMessage.template == "password-reset"))
    return len(rows), sum(r.status == "sent" for r in rows)


def _wait_all_sent(app, since_id: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        queued, sent = _resets(app, since_id)
        if queued and queued == sent:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"sent {_resets(app, since_id)} after {timeout}s")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server (apt-get install redis-server)")
def test_redis_restart_keeps_requests_answering_and_the_worker_delivers_what_waited(pg_up, tmp_path):
    """The queue on Redis: while Redis is down, requests that queue an email still answer (the
    email is in the outbox, its wake-up call to the worker is lost and logged); when Redis is back
    the worker resumes by itself, and the minute's delivery job sends what waited."""
    from peewee import fn

    from crm_portal.db import db
    from crm_portal.models import OutboxMessage

    portal = pg_up
    with redis_server() as redis_switch:
        settings = {"HUEY_URL": redis_switch.url, "HUEY_NAME": f"restart-{uuid.uuid4().hex[:8]}"}
        with served(portal, tmp_path, **settings) as live, worker(portal, tmp_path / "worker.log", **settings) as job:
            load = Load(live.port, 0, "")

            def forgot(email: str) -> int:
                client = Client(live.port)
                token = load.token("forgot", client, "/forgot-password")
                assert token
                form = urllib.parse.urlencode({"csrf_token": token, "email": email})
                return load.call("forgot", client, "POST", "/forgot-password", body=form,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})[0]

            def last_id() -> int:
                with portal.app.app_context(), db.connection_context():
                    return OutboxMessage.select(fn.MAX(OutboxMessage.id)).scalar() or 0

            since = last_id()
            assert forgot("anna@acme.example") == 200
            first = _wait_all_sent(portal.app, since, 30)  # Redis up: the worker is woken at once
            since = last_id()
            redis_switch(False)
            down = [forgot(email) for email in ("bruno@acme.example", "carla@globex.example", "chiara@acme.example")]
            assert down == [200, 200, 200]  # nothing turned into a 500
            assert load.call("forgot", Client(live.port), "GET", "/login")[0] == 200
            queued, sent = _resets(portal.app, since)
            assert queued >= 1 and sent == 0  # in the outbox, waiting
            redis_switch(True)
            waited = _wait_all_sent(portal.app, since, 90)
            since = last_id()
            assert forgot("dario@globex.example") == 200
            woken = _wait_all_sent(portal.app, since, 30)
            assert job.poll() is None  # the worker never exited
        print(f"\nRedis: an email sent {first:.1f}s after its request with Redis up; the {queued} queued while "
              f"it was down sent {waited:.1f}s after it returned; a new one {woken:.1f}s after its request")
    assert not [a for a in load.answers if a.status >= 500]
