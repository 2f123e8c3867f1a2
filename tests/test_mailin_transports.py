"""Email-in transports: the inbound API (scope, content type, statuses, 503 to retry), the
mailgate's exit codes, and IMAP against a real Dovecot server (messages appended, polled, turned
into tickets and comments, moved or flagged; failures left in place and retried)."""
from __future__ import annotations

import imaplib
import os

import pytest
from api_helpers import bearer, make_key
from dovecot_server import Dovecot, binary
from mailin_helpers import fixture, open_ticket, support_reply, trust_receiver

from crm_portal.db import db
from crm_portal.mailin import crypto, pipeline
from crm_portal.mailin.imap import poll_all
from crm_portal.mailin.mailgate import EX_TEMPFAIL
from crm_portal.mailin.models import InboundMessage, Mailbox
from crm_portal.modules.tickets.models import Ticket, TicketComment

RFC822 = {"Content-Type": "message/rfc822"}


@pytest.fixture(autouse=True)
def trusted_receiver(app):
    """The fixtures' receiving server is trusted, as an installation trusts its own."""
    trust_receiver(app)


# --- the inbound API --------------------------------------------------------------------------
def test_the_api_opens_a_ticket_from_a_raw_message(app, demo, client):
    key = make_key(app, ["email:ingest"])
    response = client.post("/api/v1/inbound-email", data=fixture("new_request_plain.eml"),
                           headers=bearer(key.token, **RFC822))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["status"] == "ticket_created" and body["duplicate"] is False and body["ticket_id"]
    again = client.post("/api/v1/inbound-email", data=fixture("new_request_plain.eml"),
                        headers=bearer(key.token, **RFC822))
    assert again.status_code == 200 and again.json["duplicate"] is True and again.json["id"] == body["id"]


def test_the_api_needs_the_ingest_scope(app, demo, client):
    key = make_key(app, ["tickets:read"])
    response = client.post("/api/v1/inbound-email", data=fixture("new_request_plain.eml"),
                           headers=bearer(key.token, **RFC822))
    assert response.status_code == 403 and response.json["code"] == "forbidden"
    assert client.post("/api/v1/inbound-email", data=b"x", headers=RFC822).status_code == 401
    with app.app_context(), db.connection_context():
        assert InboundMessage.select().count() == 0


def test_the_api_refuses_other_content_types_and_empty_bodies(app, demo, client):
    key = make_key(app, ["email:ingest"])
    wrong = client.post("/api/v1/inbound-email", json={"raw": "x"}, headers=bearer(key.token))
    assert wrong.status_code == 415 and wrong.json["code"] == "unsupported_media_type"
    empty = client.post("/api/v1/inbound-email", data=b"  ", headers=bearer(key.token, **RFC822))
    assert empty.status_code == 400


def test_the_api_answers_refusals_for_good_with_200(app, demo, client):
    key = make_key(app, ["email:ingest"])
    response = client.post("/api/v1/inbound-email", data=fixture("auto_reply_auto_submitted.eml"),
                           headers=bearer(key.token, **RFC822))
    assert response.status_code == 200
    assert (response.json["status"], response.json["reason"]) == ("ignored", "automatic")
    app.config["MAILIN_MAX_BYTES"] = 2000
    huge = fixture("unknown_sender.eml") + b"y" * 5000
    response = client.post("/api/v1/inbound-email", data=huge, headers=bearer(key.token, **RFC822))
    assert (response.status_code, response.json["reason"]) == (200, "too_large")


def test_the_api_answers_503_when_it_should_be_delivered_again(app, demo, client, monkeypatch):
    key = make_key(app, ["email:ingest"])

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(pipeline, "_process", broken)
    response = client.post("/api/v1/inbound-email", data=fixture("new_request_plain.eml"),
                           headers=bearer(key.token, **RFC822))
    assert response.status_code == 503 and response.json["code"] == "unavailable"
    monkeypatch.undo()
    retried = client.post("/api/v1/inbound-email", data=fixture("new_request_plain.eml"),
                          headers=bearer(key.token, **RFC822))
    assert retried.json["status"] == "ticket_created"  # the stored, failed message went through


# --- the mailgate -----------------------------------------------------------------------------

def test_mailgate_exits_0_for_a_ticket_and_for_a_permanent_refusal(app, demo):
    result = app.test_cli_runner().invoke(args=["mailgate"], input=fixture("new_request_plain.eml"))
    assert result.exit_code == 0 and "ticket_created" in result.output
    refused = app.test_cli_runner().invoke(args=["mailgate"], input=fixture("unknown_sender.eml"))
    assert refused.exit_code == 0 and "rejected unknown_sender" in refused.output
    garbage = app.test_cli_runner().invoke(args=["mailgate"], input=b"\x00\x01")
    assert garbage.exit_code == 0 and "malformed" in garbage.output


def test_mailgate_exits_75_when_the_message_should_be_retried(app, demo, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(pipeline, "store", broken)
    result = app.test_cli_runner().invoke(args=["mailgate"], input=fixture("new_request_plain.eml"))
    assert result.exit_code == EX_TEMPFAIL == 75
    monkeypatch.undo()
    monkeypatch.setattr(pipeline, "_process", broken)
    result = app.test_cli_runner().invoke(args=["mailgate"], input=fixture("new_request_plain.eml"))
    assert result.exit_code == 75
    with app.app_context(), db.connection_context():
        assert InboundMessage.get().status == "failed"  # kept, with its raw bytes, for the retry


# --- IMAP with a real Dovecot -----------------------------------------------------------------
needs_dovecot = pytest.mark.skipif(
    binary() is None and not os.environ.get("CI"),
    reason="Dovecot is not installed (apt-get install dovecot-imapd; CI installs it)")


@pytest.fixture
def dovecot():
    with Dovecot({"support": "s3cret-pw"}) as server:
        yield server


def append(server: Dovecot, *messages: bytes, folder: str = "INBOX") -> None:
    client = imaplib.IMAP4("127.0.0.1", server.port)
    client.login("support", "s3cret-pw")
    for raw in messages:
        assert client.append(folder, None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))[0] == "OK"
    client.logout()


def folder_counts(server: Dovecot) -> dict[str, tuple[int, int]]:
    """Folder → (messages, unseen)."""
    client = imaplib.IMAP4("127.0.0.1", server.port)
    client.login("support", "s3cret-pw")
    out = {}
    for name in ("INBOX", "Processed", "Failed"):
        typ, data = client.status(name, "(MESSAGES UNSEEN)")
        if typ == "OK":
            words = data[0].decode().split("(")[1].rstrip(")").split()
            values = dict(zip(words[::2], words[1::2], strict=False))
            out[name] = (int(values["MESSAGES"]), int(values["UNSEEN"]))
    client.logout()
    return out


def make_mailbox(app, server: Dovecot, **values) -> None:
    with app.app_context(), db.connection_context():
        Mailbox.create(name="support", host="127.0.0.1", port=server.port, security="none", username="support",
                       password_encrypted=crypto.encrypt("s3cret-pw"), folder="INBOX", failed_folder="Failed",
                       **values)


def poll(app) -> dict:
    with app.app_context(), db.connection_context():
        Mailbox.update(last_poll_at=None).execute()  # each poll of the test is a new minute
        return poll_all()


@needs_dovecot
def test_imap_messages_become_tickets_and_comments(app, demo, dovecot):
    ticket, _contact = open_ticket(app, "anna")
    sent = support_reply(app, ticket)
    make_mailbox(app, dovecot)
    append(dovecot, fixture("new_request_plain.eml"),
           fixture("gmail_reply_it.eml", in_reply_to=sent["Message-ID"], number=ticket.number),
           fixture("auto_reply_auto_submitted.eml"))
    assert poll(app) == {"support": {"processed": 3, "retry": 0, "failed": 0}}
    with app.app_context(), db.connection_context():
        assert Ticket.select().where(Ticket.title == "Stampa cedolini non funziona").count() == 1
        last = TicketComment.select().where(TicketComment.ticket == ticket.id).order_by(TicketComment.id.desc()).get()
        assert last.body.startswith("Uso la stampante laser")
        statuses = sorted(m.status for m in InboundMessage.select())
        assert statuses == ["comment_added", "ignored", "ticket_created"]
        assert all(m.transport == "imap" and m.mailbox_id for m in InboundMessage.select())
        box = Mailbox.get()
        assert box.last_success_at is not None and box.last_error is None
    assert folder_counts(dovecot) == {"INBOX": (0, 0), "Processed": (3, 3), "Failed": (0, 0)}
    assert poll(app) == {"support": {"processed": 0, "retry": 0, "failed": 0}}  # nothing twice


@needs_dovecot
def test_imap_never_downloads_an_oversized_message(app, demo, dovecot):
    app.config["MAILIN_MAX_BYTES"] = 5000
    make_mailbox(app, dovecot)
    huge = fixture("new_request_plain.eml") + b"x" * 20_000 + b"\n"
    append(dovecot, huge)
    assert poll(app)["support"]["processed"] == 1
    with app.app_context(), db.connection_context():
        row = InboundMessage.get()
    assert (row.status, row.reason, row.raw_message, row.sender) == ("rejected", "too_large", None, "anna@acme.example")
    assert row.size > 20_000
    assert folder_counts(dovecot)["Processed"] == (1, 1)  # kept on the server, out of the way


@needs_dovecot
def test_imap_flag_mode_leaves_messages_in_place_seen(app, demo, dovecot):
    make_mailbox(app, dovecot, processed_action="flag")
    append(dovecot, fixture("new_request_plain.eml"))
    assert poll(app)["support"]["processed"] == 1
    assert folder_counts(dovecot)["INBOX"] == (1, 0)


@needs_dovecot
def test_imap_failures_stay_unseen_then_move_to_the_failed_folder(app, demo, dovecot, monkeypatch):
    app.config["MAILIN_MAX_ATTEMPTS"] = 2
    make_mailbox(app, dovecot)
    append(dovecot, fixture("new_request_plain.eml"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "_process", broken)
    assert poll(app)["support"] == {"processed": 0, "retry": 1, "failed": 0}
    assert folder_counts(dovecot)["INBOX"] == (1, 1)  # still there, unseen
    assert poll(app)["support"] == {"processed": 0, "retry": 0, "failed": 1}
    assert folder_counts(dovecot)["Failed"] == (1, 1)
    monkeypatch.undo()
    with app.app_context(), db.connection_context():
        row = InboundMessage.get()
        assert (row.status, row.attempts) == ("failed", 2)
        assert pipeline.reprocess(row).status == "ticket_created"  # staff's retry


@needs_dovecot
def test_imap_errors_are_recorded_on_the_mailbox(app, demo, dovecot):
    with app.app_context(), db.connection_context():
        Mailbox.create(name="wrong", host="127.0.0.1", port=dovecot.port, security="none", username="support",
                       password_encrypted=crypto.encrypt("wrong password"))
    assert poll(app) == {"wrong": {"error": 1}}
    with app.app_context(), db.connection_context():
        assert "Login" in Mailbox.get().last_error or "AUTH" in Mailbox.get().last_error


def test_a_password_encrypted_under_another_secret_key_is_unreadable(app):
    with app.app_context():
        token = crypto.encrypt("s3cret")
        assert token != "s3cret" and crypto.decrypt(token) == "s3cret"
        app.config["SECRET_KEY"] = "another key"
        with pytest.raises(crypto.PasswordUnreadable):
            crypto.decrypt(token)


# --- the sender's authentication, through every transport -------------------------------------------
def forged(raw: bytes) -> bytes:
    """``raw`` without the receiving server's verdict: a From anyone could have typed."""
    return raw.split(b"\n", 4)[4] if raw.startswith(b"Authentication-Results:") else raw


def test_the_api_holds_a_message_whose_sender_is_not_authenticated(app, demo, client):
    key = make_key(app, ["email:ingest"])
    response = client.post("/api/v1/inbound-email", data=forged(fixture("new_request_plain.eml")),
                           headers=bearer(key.token, **RFC822))
    assert response.status_code == 200  # dealt with: the server must not deliver it again
    assert (response.json["status"], response.json["reason"], response.json["ticket_id"]) == (
        "held", "unauthenticated", None)
    with app.app_context(), db.connection_context():
        assert Ticket.select().where(Ticket.title == "Stampa cedolini non funziona").count() == 0


def test_the_mailgate_holds_a_forged_sender_and_accepts_the_authenticated_one(app, demo):
    ticket, _contact = open_ticket(app, "anna")
    raw = fixture("gmail_reply_it.eml", in_reply_to="<not-ours@example.org>", number=ticket.number)
    refused = app.test_cli_runner().invoke(args=["mailgate"], input=forged(raw))
    assert refused.exit_code == 0 and "held unauthenticated" in refused.output
    with app.app_context(), db.connection_context():
        assert TicketComment.select().where(TicketComment.ticket == ticket.id).count() == 0
    again = raw.replace(b"CAgmail-it-reply-1", b"CAgmail-it-reply-2")
    accepted = app.test_cli_runner().invoke(args=["mailgate"], input=again)
    assert accepted.exit_code == 0 and "comment_added" in accepted.output, accepted.output


@needs_dovecot
def test_imap_holds_a_forged_sender_and_moves_it_out_of_the_way(app, demo, dovecot):
    make_mailbox(app, dovecot)
    append(dovecot, forged(fixture("new_request_plain.eml")))
    assert poll(app) == {"support": {"processed": 1, "retry": 0, "failed": 0}}
    with app.app_context(), db.connection_context():
        row = InboundMessage.get()
        assert (row.status, row.reason, row.transport) == ("held", "unauthenticated", "imap")
        assert Ticket.select().where(Ticket.title == "Stampa cedolini non funziona").count() == 0
    assert folder_counts(dovecot)["Processed"] == (1, 1)
