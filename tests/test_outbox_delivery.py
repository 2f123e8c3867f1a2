"""Email delivery: transports, retries with back-off, failed messages and their retry from the admin,
the worker's jobs and the send-mail command."""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import smtplib
from pathlib import Path

import pytest

from conftest import make_app, staff_login
from crm_portal import jobs, mail
from crm_portal.api import Module
from crm_portal.db import db, utcnow
from crm_portal.models import OutboxMessage
from crm_portal.outbox import queue_email


class FlakyTransport:
    """Fails the first ``failures`` sends, then records every message."""

    def __init__(self, failures: int = 0, bad: set[str] | None = None) -> None:
        self.failures, self.bad, self.sent = failures, bad or set(), []

    def send(self, message) -> None:
        if message["To"] in self.bad:
            raise smtplib.SMTPRecipientsRefused({message["To"]: (550, b"no such user")})
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError("SMTP server down")
        self.sent.append(message)


def _queue(app, n: int, to: str = "user{}@example.com") -> list[int]:
    with app.test_request_context(), db.connection_context():
        with db.atomic():
            return [queue_email(to.format(i), "password-changed", language="en",
                                contact=type("C", (), {"first_name": f"U{i}", "email": to.format(i)})(),
                                link="http://portal.test/forgot-password", when=utcnow()).id
                    for i in range(n)]


def _deliver(app, transport, now):
    with app.app_context(), db.connection_context():
        return mail.deliver_pending(now=now, transport=transport)


def _rows(app):
    with app.app_context(), db.connection_context():
        return {r.id: r for r in OutboxMessage.select()}


def test_file_transport_writes_eml(app, tmp_path):
    [message_id] = _queue(app, 1)
    with app.app_context(), db.connection_context():
        counts = mail.deliver_pending()
    assert counts == {"sent": 1, "retry": 0, "failed": 0}
    [eml] = list((Path(app.instance_path) / "mail").glob("*.eml"))
    parsed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "user0@example.com" and parsed["From"] == app.config["MAIL_FROM"]
    assert "changed" in parsed["Subject"]
    assert parsed.get_body(("plain",)).get_content().startswith("Hello U0,")
    assert "<html" in parsed.get_body(("html",)).get_content()
    row = _rows(app)[message_id]
    assert row.status == "sent" and row.attempts == 1 and row.sent_at is not None


def test_transport_fails_then_recovers_every_message_once(app):
    ids = _queue(app, 5)
    transport = FlakyTransport(failures=7)
    now = utcnow()
    for _ in range(12):
        _deliver(app, transport, now)
        now += dt.timedelta(seconds=app.config["MAIL_RETRY_MAX_DELAY"])
    delivered = [m["To"] for m in transport.sent]
    assert sorted(delivered) == sorted(f"user{i}@example.com" for i in range(5))
    rows = _rows(app)
    assert all(rows[i].status == "sent" for i in ids)
    assert sum(rows[i].attempts for i in ids) == 5 + 7


def test_back_off_waits_before_retrying(app):
    [message_id] = _queue(app, 1)
    transport = FlakyTransport(failures=2)
    now = utcnow()
    assert _deliver(app, transport, now)["retry"] == 1
    first = _rows(app)[message_id]
    assert first.next_attempt_at == now + dt.timedelta(seconds=app.config["MAIL_RETRY_DELAY"])
    assert "SMTP server down" in first.last_error
    assert _deliver(app, transport, now + dt.timedelta(seconds=30))["retry"] == 0  # not due yet
    assert _deliver(app, transport, first.next_attempt_at)["retry"] == 1
    second = _rows(app)[message_id]
    assert second.next_attempt_at == first.next_attempt_at + dt.timedelta(seconds=2 * app.config["MAIL_RETRY_DELAY"])
    assert _deliver(app, transport, second.next_attempt_at)["sent"] == 1


def test_one_bad_message_does_not_block_the_others(tmp_path):
    app = make_app(tmp_path, MAIL_MAX_ATTEMPTS=3)
    ids = _queue(app, 4)
    transport = FlakyTransport(bad={"user1@example.com"})
    now = utcnow()
    for _ in range(4):
        _deliver(app, transport, now)
        now += dt.timedelta(days=1)
    rows = _rows(app)
    assert sorted(m["To"] for m in transport.sent) == ["user0@example.com", "user2@example.com", "user3@example.com"]
    assert rows[ids[1]].status == "failed" and rows[ids[1]].attempts == 3 and "550" in rows[ids[1]].last_error


def test_staff_retry_failed_message_from_admin(tmp_path):
    from crm_portal.demo import load_demo

    app = make_app(tmp_path, MAIL_MAX_ATTEMPTS=1)
    with app.app_context(), db.connection_context():
        load_demo(app)
    [message_id] = _queue(app, 1, to="broken{}@example.com")
    _deliver(app, FlakyTransport(failures=1), utcnow())
    assert _rows(app)[message_id].status == "failed"

    admin = app.test_client()
    staff_login(admin, "operatore@example.com")
    listing = admin.get("/admin/core_outbox/?flt0_0=failed")
    assert listing.status_code == 200 and "broken0@example.com" in listing.text
    assert "Hello U0" not in admin.get(f"/admin/core_outbox/details/?id={message_id}").text  # bodies hidden
    response = admin.post("/admin/core_outbox/action/", data={"action": "retry", "rowid": [str(message_id)]})
    assert response.status_code == 302
    row = _rows(app)[message_id]
    assert row.status == "sent"  # retried at once through the (immediate) worker, file transport works
    assert admin.get("/admin/core_outbox/edit/?id=1").status_code in (302, 403, 404)  # read-only view


def test_smtp_down_user_action_succeeds_and_mail_goes_out_later(app, demo, monkeypatch):
    app.config.update(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=1, MAIL_TIMEOUT=2)
    client = app.test_client()
    response = client.post("/forgot-password", data={"email": "anna@acme.example"})
    assert response.status_code == 200
    with app.app_context(), db.connection_context():
        row = OutboxMessage.get(OutboxMessage.template == "password-reset")
    assert row.status == "pending" and row.attempts == 1 and row.last_error
    transport = FlakyTransport()
    _deliver(app, transport, row.next_attempt_at)
    assert [m["To"] for m in transport.sent].count("anna@acme.example") == 1
    assert _rows(app)[row.id].status == "sent"


def test_smtp_transport_uses_tls_and_login(monkeypatch):
    calls = []

    class FakeSMTP:
        def __init__(self, host, port, timeout=None, context=None):
            calls.append(("connect", host, port, context is not None))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            calls.append(("quit",))

        def starttls(self, context=None):
            calls.append(("starttls",))

        def login(self, user, password):
            calls.append(("login", user, password))

        def send_message(self, message):
            calls.append(("send", message["To"]))

    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    monkeypatch.setattr(smtplib, "SMTP_SSL", FakeSMTP)
    message = email.message.EmailMessage()
    message["To"] = "x@example.com"
    message.set_content("hi")
    mail.SmtpTransport("mx", 587, username="u", password="p", use_tls=True).send(message)
    assert calls == [("connect", "mx", 587, False), ("starttls",), ("login", "u", "p"), ("send", "x@example.com"), ("quit",)]
    calls.clear()
    mail.SmtpTransport("mx", 465, use_ssl=True).send(message)
    assert calls == [("connect", "mx", 465, True), ("send", "x@example.com"), ("quit",)]


def test_claimed_message_is_not_sent_twice(app):
    [message_id] = _queue(app, 1)
    now = utcnow()
    with app.app_context(), db.connection_context():
        assert mail._claim(message_id, now)
        assert not mail._claim(message_id, now)           # another worker finds it taken
        assert mail.deliver_one(message_id, now=now) is None


def test_send_mail_command(app):
    _queue(app, 2)
    result = app.test_cli_runner().invoke(args=["send-mail"])
    assert result.exit_code == 0, result.output
    assert "sent 2" in result.output


# --- jobs ---------------------------------------------------------------------------------------

def test_parse_schedule():
    every_five = jobs.parse_schedule("*/5 * * * *")
    assert every_five(dt.datetime(2026, 1, 1, 10, 5)) and not every_five(dt.datetime(2026, 1, 1, 10, 6))
    nightly = jobs.parse_schedule({"minute": "0", "hour": "3"})
    assert nightly(dt.datetime(2026, 1, 1, 3, 0)) and not nightly(dt.datetime(2026, 1, 1, 4, 0))
    with pytest.raises(ValueError):
        jobs.parse_schedule("every minute")


RUNS: list[str] = []


class JobsModule(Module):
    name = "jobsdemo"
    label = "Jobs demo"

    def periodic_tasks(self):
        return [("autoclose", "*/5 * * * *", lambda: RUNS.append("autoclose"))]


def test_module_periodic_tasks_are_registered_and_run_with_database(tmp_path):
    app = make_app(tmp_path, EXTRA_MODULES=[JobsModule])
    huey = app.extensions["huey"]
    names = app.extensions["crm_portal_jobs"]["periodic"]
    assert {"core.deliver_mail", "core.prune", "jobsdemo.autoclose"} <= set(names)
    due = {task.name for task in huey.read_periodic(dt.datetime(2026, 1, 1, 10, 5))}
    assert {"core.deliver_mail", "jobsdemo.autoclose"} <= due
    assert "jobsdemo.autoclose" not in {t.name for t in huey.read_periodic(dt.datetime(2026, 1, 1, 10, 6))}
    RUNS.clear()
    task = next(t for t in huey.read_periodic(dt.datetime(2026, 1, 1, 10, 5)) if t.name == "jobsdemo.autoclose")
    huey.execute(task)
    assert RUNS == ["autoclose"]


def test_periodic_delivery_sends_what_was_never_enqueued(tmp_path):
    app = make_app(tmp_path, HUEY_IMMEDIATE=False, HUEY_URL="memory://")
    _queue(app, 3)  # no kick: as if the enqueue had been lost
    huey = app.extensions["huey"]
    task = next(t for t in huey.read_periodic(dt.datetime(2026, 1, 1, 10, 7)) if t.name == "core.deliver_mail")
    huey.execute(task)
    assert {r.status for r in _rows(app).values()} == {"sent"}


def test_huey_storage_from_settings(tmp_path):
    from huey import RedisHuey, SqliteHuey

    app = make_app(tmp_path, HUEY_IMMEDIATE=False)
    assert isinstance(app.extensions["huey"], SqliteHuey)
    assert app.extensions["huey"].storage.filename == str(Path(app.instance_path) / "huey.db")
    app = make_app(tmp_path, HUEY_IMMEDIATE=False, HUEY_URL="redis://127.0.0.1:6399/0")
    assert isinstance(app.extensions["huey"], RedisHuey)


def test_kick_delivery_in_request_sends_at_once(app, demo):
    app.test_client().post("/forgot-password", data={"email": "anna@acme.example"})
    with app.app_context(), db.connection_context():
        row = OutboxMessage.get(OutboxMessage.template == "password-reset")
    assert row.status == "sent"
    assert len(list((Path(app.instance_path) / "mail").glob("*.eml"))) >= 1
