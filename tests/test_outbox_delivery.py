"""Email delivery: delivery requested after the commit, batches over one SMTP connection, claims and
what a crash costs, stable Message-IDs, transports, retries with back-off, failed messages and their
retry from the admin, pruning of one-time links, the worker's jobs and the send-mail command."""
from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import smtplib
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from conftest import login, make_app, staff_login

from crm_portal import jobs, mail
from crm_portal.api import Module
from crm_portal.db import db, utcnow
from crm_portal.models import Contact, OutboxMessage
from crm_portal.outbox import queue_email


class FlakyTransport:
    """Fails the first ``failures`` sends, then records every message."""

    def __init__(self, failures: int = 0, bad: set[str] | None = None) -> None:
        self.failures, self.bad, self.sent, self.tried = failures, bad or set(), [], []

    def send(self, message) -> None:
        self.tried.append(message)
        if message["To"] in self.bad:
            raise smtplib.SMTPRecipientsRefused({message["To"]: (550, b"no such user")})
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError("SMTP server down")
        self.sent.append(message)


class SmtpSink:
    """An SMTP server on 127.0.0.1 in this process: counts connections (EHLO), keeps the messages,
    refuses the recipients in ``refuse`` and can drop the connection after the ``drop_after``-th message."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.connections = 0
        self.refuse: set[str] = set()
        self.drop_after: int | None = None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        if self.drop_after is not None and len(self.messages) == self.drop_after:
            asyncio.get_running_loop().call_soon(server.transport.close)  # after this reply
        return "250 OK"

    @property
    def recipients(self) -> list[str]:
        return [m["To"] for m in self.messages]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sink.port = port
    yield sink
    controller.stop()


def _queue(app, n: int, to: str = "user{}@example.com", template: str = "password-changed") -> list[int]:
    with app.test_request_context(), db.connection_context():
        with db.atomic():
            return [queue_email(to.format(i), template, language="en",
                                contact=type("C", (), {"first_name": f"U{i}", "email": to.format(i)})(),
                                link="http://portal.test/forgot-password", when=utcnow(), hours=1,
                                minutes=60, days=7).id
                    for i in range(n)]


def _deliver(app, transport, now, **kwargs):
    with app.app_context(), db.connection_context():
        return mail.deliver_pending(now=now, transport=transport, **kwargs)


def _rows(app):
    with app.app_context(), db.connection_context():
        return {r.id: r for r in OutboxMessage.select()}


@pytest.fixture
def queued_app(tmp_path):
    """Delivery requests go to an in-memory queue nobody consumes: the tests deliver themselves."""
    return make_app(tmp_path, HUEY_IMMEDIATE=False, HUEY_URL="memory://")


def _smtp_app(tmp_path, sink, **config):
    return make_app(tmp_path, HUEY_IMMEDIATE=False, HUEY_URL="memory://", MAIL_TRANSPORT="smtp",
                    MAIL_SERVER="127.0.0.1", MAIL_PORT=sink.port, MAIL_TIMEOUT=5, **config)


# --- delivery requested after the commit -------------------------------------------------------

def test_ticket_comment_is_delivered_before_the_response(app, demo):
    """Any module's email goes out when its transaction commits: no call to remember in the module."""
    from crm_portal.modules.tickets import workflow

    with app.test_request_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        with db.atomic():
            ticket = workflow.create_ticket(workflow.Actor.customer(bruno), bruno, title="Printer broken",
                                            description="It does not print.", type="question")
    client = app.test_client()
    login(client, "bruno@acme.example")
    response = client.post(f"/tickets/{ticket.id}/comment", data={"body": "Any news?"})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        [row] = OutboxMessage.select().where(OutboxMessage.template == "tickets_customer_comment")
    assert row.status == "sent" and row.sent_at is not None
    eml = [p.read_text() for p in (Path(app.instance_path) / "mail").glob(f"*-{row.id}.eml")]
    assert len(eml) == 1 and "Any news?" in eml[0]


def test_one_delivery_request_per_transaction_after_commit(queued_app):
    huey = queued_app.extensions["huey"]
    with queued_app.test_request_context(), db.connection_context():
        with db.atomic():
            first = queue_email("a@example.com", "password-changed", language="en",
                                contact=type("C", (), {"first_name": "A"})(), link="x", when=utcnow())
            assert huey.pending_count() == 0  # nothing asked before the commit
            second = queue_email("b@example.com", "password-changed", language="en",
                                 contact=type("C", (), {"first_name": "B"})(), link="x", when=utcnow())
        [task] = huey.pending()
        assert task.name == "core.deliver_message" and task.args == ([first.id, second.id],)
        # Outside a transaction the row is committed at once, and so is the request.
        third = queue_email("c@example.com", "password-changed", language="en",
                            contact=type("C", (), {"first_name": "C"})(), link="x", when=utcnow())
        assert [t.args for t in huey.pending()][-1] == ([third.id],)


def test_rolled_back_transaction_queues_and_sends_nothing(tmp_path):
    transport = FlakyTransport()
    app = make_app(tmp_path, MAIL_TRANSPORT=transport)  # immediate worker: a request is a delivery
    context = {"contact": type("C", (), {"first_name": "X"})(), "link": "x", "when": utcnow()}
    with app.test_request_context(), db.connection_context():
        with pytest.raises(RuntimeError):
            with db.atomic():
                queue_email("lost@example.com", "password-changed", language="en", **context)
                raise RuntimeError("the change failed")
        assert OutboxMessage.select().count() == 0
        # Rolled back and started again within one transaction: only what follows is sent.
        with db.atomic() as txn:
            queue_email("lost@example.com", "password-changed", language="en", **context)
            txn.rollback()
            kept = queue_email("kept@example.com", "password-changed", language="en", **context)
        assert [m["To"] for m in transport.sent] == ["kept@example.com"]
        assert OutboxMessage.get_by_id(kept.id).status == "sent"
        assert OutboxMessage.select().count() == 1


def test_lost_delivery_request_is_harmless(queued_app, monkeypatch):
    def queue_down(ids):
        raise ConnectionError("redis is down")

    monkeypatch.setitem(queued_app.extensions["crm_portal_jobs"], "deliver_message", queue_down)
    [message_id] = _queue(queued_app, 1)  # the commit succeeds all the same
    assert _rows(queued_app)[message_id].status == "pending"
    assert _deliver(queued_app, FlakyTransport(), utcnow())["sent"] == 1  # the periodic job catches up


def test_delivery_request_sends_the_given_messages(queued_app):
    ids = _queue(queued_app, 3)
    huey = queued_app.extensions["huey"]
    [task] = huey.pending()
    huey.execute(task)
    assert {r.status for r in _rows(queued_app).values()} == {"sent"}
    assert len(list((Path(queued_app.instance_path) / "mail").glob("*.eml"))) == len(ids)


def test_forgot_password_sends_at_once(app, demo):
    app.test_client().post("/forgot-password", data={"email": "anna@acme.example"})
    with app.app_context(), db.connection_context():
        row = OutboxMessage.get(OutboxMessage.template == "password-reset")
    assert row.status == "sent"
    assert len(list((Path(app.instance_path) / "mail").glob("*.eml"))) >= 1


# --- batches over one SMTP connection ------------------------------------------------------------

def test_batch_uses_one_smtp_connection(tmp_path, smtp_sink):
    app = _smtp_app(tmp_path, smtp_sink)
    _queue(app, 25)
    with app.app_context(), db.connection_context():
        counts = mail.deliver_pending()
    assert counts == {"sent": 25, "retry": 0, "failed": 0}
    assert smtp_sink.connections == 1
    assert sorted(smtp_sink.recipients) == sorted(f"user{i}@example.com" for i in range(25))


def test_backlog_is_sent_in_batches_until_nothing_is_due(tmp_path, smtp_sink):
    app = _smtp_app(tmp_path, smtp_sink, MAIL_BATCH_SIZE=10)
    _queue(app, 35)
    with app.app_context(), db.connection_context():
        assert mail.deliver_pending()["sent"] == 35
        assert mail.deliver_pending()["sent"] == 0
    assert smtp_sink.connections == 1 and len(smtp_sink.messages) == 35


def test_refused_recipient_fails_alone_on_the_same_connection(tmp_path, smtp_sink):
    app = _smtp_app(tmp_path, smtp_sink, MAIL_MAX_ATTEMPTS=1)
    ids = _queue(app, 4)
    smtp_sink.refuse = {"user1@example.com"}
    with app.app_context(), db.connection_context():
        assert mail.deliver_pending() == {"sent": 3, "retry": 0, "failed": 1}
    assert smtp_sink.connections == 1
    assert sorted(smtp_sink.recipients) == ["user0@example.com", "user2@example.com", "user3@example.com"]
    rows = _rows(app)
    assert rows[ids[1]].status == "failed" and "550" in rows[ids[1]].last_error


def test_dropped_connection_is_opened_again(tmp_path, smtp_sink):
    app = _smtp_app(tmp_path, smtp_sink)
    _queue(app, 6)
    smtp_sink.drop_after = 2
    with app.app_context(), db.connection_context():
        assert mail.deliver_pending()["sent"] == 6
    assert smtp_sink.connections == 2
    assert sorted(smtp_sink.recipients) == sorted(f"user{i}@example.com" for i in range(6))  # no duplicate


def test_unreachable_server_fails_the_batch_with_one_connection_attempt(tmp_path, monkeypatch):
    app = make_app(tmp_path, HUEY_IMMEDIATE=False, HUEY_URL="memory://", MAIL_TRANSPORT="smtp",
                   MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=2, MAIL_BATCH_SIZE=3)
    ids = _queue(app, 5)
    attempts = []
    connect = mail.SmtpTransport.connect
    monkeypatch.setattr(mail.SmtpTransport, "connect", lambda self: attempts.append(1) or connect(self))
    with app.app_context(), db.connection_context():
        assert mail.deliver_pending() == {"sent": 0, "retry": 3, "failed": 0}
    assert len(attempts) == 1  # not one timeout per message
    rows = _rows(app)
    assert [rows[i].attempts for i in ids] == [1, 1, 1, 0, 0]  # the run stopped: the rest waits its turn
    assert all("TransportUnavailable" in rows[i].last_error for i in ids[:3])


def test_smtp_transport_uses_tls_and_login(monkeypatch):
    calls = []

    class FakeSMTP:
        def __init__(self, host, port, timeout=None, context=None):
            calls.append(("connect", host, port, context is not None))

        def starttls(self, context=None):
            calls.append(("starttls",))

        def login(self, user, password):
            calls.append(("login", user, password))

        def send_message(self, message):
            calls.append(("send", message["To"]))

        def quit(self):
            calls.append(("quit",))

        def close(self):
            pass

    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    monkeypatch.setattr(smtplib, "SMTP_SSL", FakeSMTP)
    message = email.message.EmailMessage()
    message["To"] = "x@example.com"
    message.set_content("hi")
    mail.SmtpTransport("mx", 587, username="u", password="p", use_tls=True).send(message)
    assert calls == [("connect", "mx", 587, False), ("starttls",), ("login", "u", "p"), ("send", "x@example.com"),
                     ("quit",)]
    calls.clear()
    with mail.SmtpTransport("mx", 465, use_ssl=True).session() as session:
        session.send(message)
        session.send(message)
    assert calls == [("connect", "mx", 465, True), ("send", "x@example.com"), ("send", "x@example.com"), ("quit",)]


# --- claims, crashes and Message-IDs -------------------------------------------------------------

def test_claimed_message_is_not_sent_twice(queued_app):
    [message_id] = _queue(queued_app, 1)
    now = utcnow()
    with queued_app.app_context(), db.connection_context():
        token, [row] = mail.claim([message_id], now)
        assert row.id == message_id and row.claim_token == token
        assert mail.claim([message_id], now)[1] == []  # another worker finds it taken
        delivered = mail.deliver_ids([message_id], now=now, transport=FlakyTransport())
        assert delivered == {"sent": 0, "retry": 0, "failed": 0}
        claim = queued_app.config["MAIL_CLAIM_SECONDS"]
        assert claim <= 60
        assert mail.claim([message_id], now + dt.timedelta(seconds=claim - 1))[1] == []
        assert len(mail.claim([message_id], now + dt.timedelta(seconds=claim))[1]) == 1  # the claim ran out


class Crash(BaseException):
    """The worker killed in the middle of a batch."""


class CrashingTransport(FlakyTransport):
    """The server accepts every message; the worker dies right after the ``crash_after``-th."""

    def __init__(self, crash_after: int) -> None:
        super().__init__()
        self.crash_after = crash_after

    def send(self, message) -> None:
        super().send(message)
        if len(self.sent) == self.crash_after:
            raise Crash


def test_crash_costs_one_duplicate_with_the_same_message_id(queued_app):
    ids = _queue(queued_app, 5)
    now = utcnow()
    transport = CrashingTransport(crash_after=2)
    with pytest.raises(Crash):
        _deliver(queued_app, transport, now)
    rows = _rows(queued_app)
    assert [rows[i].status for i in ids] == ["sent", "pending", "pending", "pending", "pending"]
    # The claimed messages wait at most MAIL_CLAIM_SECONDS (60 s), not minutes.
    assert _deliver(queued_app, FlakyTransport(), now + dt.timedelta(seconds=59))["sent"] == 0
    later = FlakyTransport()
    assert _deliver(queued_app, later, now + dt.timedelta(seconds=60))["sent"] == 4
    assert {r.status for r in _rows(queued_app).values()} == {"sent"}
    first_ids = [m["Message-ID"] for m in transport.sent]
    second_ids = [m["Message-ID"] for m in later.sent]
    assert set(first_ids) & set(second_ids) == {first_ids[1]}  # one duplicate, recognisable as such


def test_message_id_is_stable_and_derived_from_the_row(queued_app):
    [message_id] = _queue(queued_app, 1)
    transport = FlakyTransport(failures=1)
    now = utcnow()
    _deliver(queued_app, transport, now)
    _deliver(queued_app, transport, now + dt.timedelta(days=1))
    first, second = (m["Message-ID"] for m in transport.tried)
    assert first == second and first.startswith(f"<outbox-{message_id}.") and first.endswith("@example.com>")
    other = SimpleNamespace(config={"SECRET_KEY": "another-secret"})  # another installation
    assert mail.message_id(_rows(queued_app)[message_id], "example.com", app=other) != first


class FakeTime:
    """``time`` for the mail module: a monotonic clock the test moves on."""

    def __init__(self) -> None:
        self.value = 1000.0

    def monotonic(self) -> float:
        return self.value


def test_long_batch_renews_its_claim_and_skips_what_it_lost(queued_app, monkeypatch):
    ids = _queue(queued_app, 5)
    clock = FakeTime()
    monkeypatch.setattr(mail, "time", clock)
    now = utcnow()
    seen = []

    class SlowTransport(FlakyTransport):
        def send(self, message) -> None:
            super().send(message)
            clock.value += 20  # a slow server: 20 s per message, the batch outlives its 60 s claim
            if len(self.sent) == 2:
                # Meanwhile the last message's claim went to another worker.
                OutboxMessage.update(claim_token="other").where(OutboxMessage.id == ids[4]).execute()
            if len(self.sent) == 3:
                seen.append(OutboxMessage.get_by_id(ids[3]).next_attempt_at)

    transport = SlowTransport()
    assert _deliver(queued_app, transport, now)["sent"] == 4
    assert [m["To"] for m in transport.sent] == [f"user{i}@example.com" for i in range(4)]
    assert seen[0] >= now + dt.timedelta(seconds=40 + 60)  # renewed after two messages, from then on
    assert _rows(queued_app)[ids[4]].status == "pending"  # left to the worker that holds it


# --- retries and failures ----------------------------------------------------------------------

def test_file_transport_writes_eml(queued_app):
    [message_id] = _queue(queued_app, 1)
    with queued_app.app_context(), db.connection_context():
        counts = mail.deliver_pending()
    assert counts == {"sent": 1, "retry": 0, "failed": 0}
    [eml] = list((Path(queued_app.instance_path) / "mail").glob("*.eml"))
    parsed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "user0@example.com" and parsed["From"] == queued_app.config["MAIL_FROM"]
    assert "changed" in parsed["Subject"]
    assert parsed.get_body(("plain",)).get_content().startswith("Hello U0,")
    assert "<html" in parsed.get_body(("html",)).get_content()
    row = _rows(queued_app)[message_id]
    assert row.status == "sent" and row.attempts == 1 and row.sent_at is not None and row.claim_token is None


def test_transport_fails_then_recovers_every_message_once(queued_app):
    ids = _queue(queued_app, 5)
    transport = FlakyTransport(failures=7)
    now = utcnow()
    for _ in range(12):
        _deliver(queued_app, transport, now)
        now += dt.timedelta(seconds=queued_app.config["MAIL_RETRY_MAX_DELAY"])
    delivered = [m["To"] for m in transport.sent]
    assert sorted(delivered) == sorted(f"user{i}@example.com" for i in range(5))
    rows = _rows(queued_app)
    assert all(rows[i].status == "sent" for i in ids)
    assert sum(rows[i].attempts for i in ids) == 5 + 7


def test_back_off_waits_before_retrying(queued_app):
    app = queued_app
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
    app = make_app(tmp_path, MAIL_MAX_ATTEMPTS=3, HUEY_IMMEDIATE=False, HUEY_URL="memory://")
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

    transport = FlakyTransport(failures=1)
    app = make_app(tmp_path, MAIL_MAX_ATTEMPTS=1, MAIL_TRANSPORT=transport)
    with app.app_context(), db.connection_context():
        load_demo(app)
    transport.failures, transport.sent = 1, []
    [message_id] = _queue(app, 1, to="broken{}@example.com")  # delivered at once: fails for good
    assert _rows(app)[message_id].status == "failed"

    admin = app.test_client()
    staff_login(admin, "operatore@example.com")
    listing = admin.get("/admin/core_outbox/?flt0_0=failed")
    assert listing.status_code == 200 and "broken0@example.com" in listing.text
    assert "Hello U0" not in admin.get(f"/admin/core_outbox/details/?id={message_id}").text  # bodies hidden
    response = admin.post("/admin/core_outbox/action/", data={"action": "retry", "rowid": [str(message_id)]})
    assert response.status_code == 302
    row = _rows(app)[message_id]
    assert row.status == "sent"  # retried at once through the (immediate) worker
    assert [m["To"] for m in transport.sent] == ["broken0@example.com"]
    assert admin.get("/admin/core_outbox/edit/?id=1").status_code in (302, 403, 404)  # read-only view


def test_retry_leaves_a_message_being_sent_alone(queued_app):
    [message_id] = _queue(queued_app, 1)
    now = utcnow()
    with queued_app.test_request_context(), db.connection_context():
        token, _ = mail.claim([message_id], now)
        assert mail.retry([message_id]) == 0
        assert OutboxMessage.get_by_id(message_id).claim_token == token


def test_smtp_down_user_action_succeeds_and_mail_goes_out_later(app, demo):
    app.config.update(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=2)
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


def test_send_mail_command(queued_app):
    _queue(queued_app, 2)
    result = queued_app.test_cli_runner().invoke(args=["send-mail"])
    assert result.exit_code == 0, result.output
    assert "sent 2" in result.output


# --- one-time links are not kept ---------------------------------------------------------------

def test_sent_one_time_links_are_blanked_after_retention(queued_app):
    app = queued_app
    reset, = _queue(app, 1, template="password-reset")
    invitation, = _queue(app, 1, template="invitation")
    notice, = _queue(app, 1, template="password-changed")
    waiting, = _queue(app, 1, template="password-reset")
    now = utcnow()
    with app.app_context(), db.connection_context():
        mail.deliver_ids([reset, invitation, notice], now=now)
        hours = app.config["MAIL_SENSITIVE_RETENTION_HOURS"]
        assert jobs.prune_sensitive_mail(now + dt.timedelta(hours=hours) - dt.timedelta(minutes=1)) == 0
        assert jobs.prune_sensitive_mail(now + dt.timedelta(hours=hours, minutes=1)) == 2
    rows = _rows(app)
    for message_id in (reset, invitation):
        assert rows[message_id].body_text == "" and rows[message_id].body_html is None
        assert rows[message_id].status == "sent" and rows[message_id].subject  # the record stays
    assert "forgot-password" in rows[notice].body_text  # not a one-time link: kept
    assert rows[waiting].status == "pending" and rows[waiting].body_text  # not sent yet: kept
    app.config["MAIL_SENSITIVE_TEMPLATES"] = []
    with app.app_context(), db.connection_context():
        assert jobs.prune_sensitive_mail(now + dt.timedelta(days=365)) == 0


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
    assert {"core.deliver_mail", "core.prune", "core.prune_mail", "jobsdemo.autoclose"} <= set(names)
    due = {task.name for task in huey.read_periodic(dt.datetime(2026, 1, 1, 10, 5))}
    assert {"core.deliver_mail", "jobsdemo.autoclose"} <= due
    assert "jobsdemo.autoclose" not in {t.name for t in huey.read_periodic(dt.datetime(2026, 1, 1, 10, 6))}
    RUNS.clear()
    task = next(t for t in huey.read_periodic(dt.datetime(2026, 1, 1, 10, 5)) if t.name == "jobsdemo.autoclose")
    huey.execute(task)
    assert RUNS == ["autoclose"]


def test_periodic_delivery_sends_what_was_never_enqueued(queued_app):
    _queue(queued_app, 3)
    huey = queued_app.extensions["huey"]
    huey.flush()  # as if the delivery request had been lost
    task = next(t for t in huey.read_periodic(dt.datetime(2026, 1, 1, 10, 7)) if t.name == "core.deliver_mail")
    huey.execute(task)
    assert {r.status for r in _rows(queued_app).values()} == {"sent"}


def test_huey_storage_from_settings(tmp_path):
    from huey import RedisHuey, SqliteHuey

    app = make_app(tmp_path, HUEY_IMMEDIATE=False)
    assert isinstance(app.extensions["huey"], SqliteHuey)
    assert app.extensions["huey"].storage.filename == str(Path(app.instance_path) / "huey.db")
    app = make_app(tmp_path, HUEY_IMMEDIATE=False, HUEY_URL="redis://127.0.0.1:6399/0")
    assert isinstance(app.extensions["huey"], RedisHuey)
