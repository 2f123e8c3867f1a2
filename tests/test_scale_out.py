"""Several web nodes, one deployment: two gunicorn processes on one PostgreSQL database, one Redis
(the job queue) and one S3-compatible bucket (moto), each node with its own empty local upload
folder. A person's requests go to either node, as behind a load balancer: the session, the
uploaded files, the login throttle and the queue are the same everywhere."""
from __future__ import annotations

import http.client
import re
import secrets
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from conftest import PG_URL
from live_server import serve
from s3_server import s3, s3_endpoint  # noqa: F401  (fixtures)
from test_tickets import PNG

from crm_portal.db import db
from crm_portal.modules.tickets.models import Ticket, TicketAttachment

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="several nodes need one shared database server: PostgreSQL only "
                       "(CRM_PORTAL_TEST_DATABASE_URL; CI's PostgreSQL pass runs this)")

REDIS_URL = "redis://127.0.0.1:6379/14"  # a database of its own, and a queue name of the test's


class Person:
    """One browser (one cookie jar) whose requests the load balancer sends to either node."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def request(self, port: int, method: str, path: str, form: dict[str, str] | None = None,
                files: dict[str, tuple[str, bytes, str]] | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body: bytes | None = None
        if files is not None:
            boundary = secrets.token_hex(16)
            parts = []
            for name, value in (form or {}).items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                             f"{value}\r\n".encode())
            for name, (filename, data, mimetype) in files.items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                             f"Content-Type: {mimetype}\r\n\r\n".encode() + data + b"\r\n")
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, {k.lower(): v for k, v in response.headers.items()}, data
        finally:
            conn.close()

    def token(self, port: int, path: str) -> tuple[str, str]:
        status, _, body = self.request(port, "GET", path)
        assert status == 200, (path, status)
        html = body.decode()
        match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
        assert match, f"no CSRF token on {path}"
        return match.group(1), html

    def login(self, port: int, email: str, password: str = "demo") -> int:
        token, _ = self.token(port, "/login")
        status, _, _ = self.request(port, "POST", "/login", {"csrf_token": token, "email": email, "password": password})
        return status


def _ticket_form_url(person: Person, port: int) -> str:
    """The ticket wizard's form, through its service steps when the services module adds them."""
    url = "/tickets/new"
    for _ in range(3):
        _, html = person.token(port, url)
        if 'data-testid="ticket-form"' in html:
            return url
        url = re.findall(r'href="(/tickets/new\?[^"]+)"', html)[0].replace("&amp;", "&")
    raise AssertionError("no ticket form")


@pytest.fixture
def queue():
    redis = pytest.importorskip("redis")
    from huey import RedisHuey

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    huey = RedisHuey(f"crm_portal_test_{secrets.token_hex(4)}", url=REDIS_URL, results=False)
    huey.flush()
    yield huey
    huey.flush()


@pytest.fixture
def nodes(app, demo, s3, queue, tmp_path):  # noqa: F811
    """Two gunicorn nodes of one deployment; each keeps a local upload folder of its own, which
    must stay empty: files go to the shared bucket."""
    app.config.update(s3.settings)
    app.config.update(HUEY_URL=REDIS_URL, HUEY_NAME=queue.name, HUEY_IMMEDIATE=False, LOGIN_THROTTLE_ACCOUNT_LIMIT=3)
    folders = [tmp_path / "node-a-uploads", tmp_path / "node-b-uploads"]
    app.config["UPLOAD_FOLDER"] = str(folders[0])
    with serve(app, tmp_path=tmp_path / "a") as node_a:
        app.config["UPLOAD_FOLDER"] = str(folders[1])
        with serve(app, tmp_path=tmp_path / "b") as node_b:
            yield node_a.port, node_b.port
    for folder in folders:
        assert not folder.exists() or not any(p.is_file() for p in Path(folder).rglob("*"))


def test_two_nodes_share_session_files_throttle_and_queue(app, s3, queue, nodes):  # noqa: F811
    a, b = nodes
    bruno = Person()
    assert bruno.login(a, "bruno@acme.example") == 302

    # A session made on A is valid on B (same SECRET_KEY; the session's token is checked in the database).
    status, _, page = bruno.request(b, "GET", "/tickets/")
    assert status == 200 and b"Bruno" in page

    # A ticket with an attachment, opened on A ...
    url = _ticket_form_url(bruno, a)
    token, _ = bruno.token(a, url)
    form = {"csrf_token": token, "title": "Cannot print invoices", "description": "The preview stays blank.",
            "type": "problem", "category": "1", "priority": "urgent", "severity": "blocking"}
    files = {"attachments": ("screen shot.png", PNG, "image/png")}
    status, headers, _ = bruno.request(a, "POST", url, form, files=files)
    assert status == 302, status
    with app.app_context(), db.connection_context():
        ticket = Ticket.get(Ticket.title == "Cannot print invoices")
        attachment = TicketAttachment.get(TicketAttachment.ticket == ticket.id)
    assert s3.keys() == [f"tickets/{attachment.stored_name}"]
    # ... is listed and downloaded on B, byte for byte, with the same headers.
    status, _, listing = bruno.request(b, "GET", "/tickets/")
    assert status == 200 and ticket.number.encode() in listing
    status, _, page = bruno.request(b, "GET", f"/tickets/{ticket.id}")
    assert status == 200 and b"screen shot.png" in page
    status, headers, data = bruno.request(b, "GET", f"/tickets/{ticket.id}/attachments/{attachment.id}")
    assert status == 200 and data == PNG
    assert headers["content-disposition"] == (
        "attachment; filename=\"screen shot.png\"; filename*=UTF-8''screen%20shot.png")
    assert headers["content-type"] == "image/png" and headers["x-content-type-options"] == "nosniff"
    # Another company's contact asking B for it: the scope gate holds on every node.
    carla = Person()
    assert carla.login(b, "carla@globex.example") == 302
    assert carla.request(b, "GET", f"/tickets/{ticket.id}/attachments/{attachment.id}")[0] == 404

    # One Redis queue: emails asked for on A and on B wait in the same queue for the workers.
    before = queue.pending_count()
    for node, email in ((a, "bruno@acme.example"), (b, "anna@acme.example")):
        someone = Person()
        token, _ = someone.token(node, "/forgot-password")
        status, _, _ = someone.request(node, "POST", "/forgot-password", {"csrf_token": token, "email": email})
        assert status == 200
    assert queue.pending_count() == before + 2
    assert all(task.name.endswith("deliver_message") for task in queue.pending())

    # Login throttle: three wrong passwords on A, the next attempt on B (even the right one) waits.
    intruder = Person()
    for _ in range(3):
        assert intruder.login(a, "anna@acme.example", "wrong") == 200
    assert intruder.login(b, "anna@acme.example", "demo") == 429
    assert Person().login(b, "anna@acme.example", "demo") == 429  # per account, whoever asks

    # Logging out on B ends the session everywhere (its token is in the database, not in a node).
    token, _ = bruno.token(a, "/tickets/")
    old_cookies = dict(bruno.cookies)
    bruno.request(b, "POST", "/logout", {"csrf_token": token})
    stale = Person()
    stale.cookies = old_cookies
    status, headers, _ = stale.request(a, "GET", "/tickets/")
    assert status == 302 and "/login" in headers["location"]
