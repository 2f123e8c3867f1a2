"""Email-in in the admin: mailboxes (password stored encrypted, never shown; administrators only),
inbound messages with status, reason, the original (shown escaped, downloaded as .eml) and retry;
tickets opened by email say so on the staff's work page."""
from __future__ import annotations

import pytest
from conftest import login, staff_login
from mailin_helpers import fixture, open_ticket, support_reply, trust_receiver

from crm_portal.db import db
from crm_portal.mailin import crypto, pipeline
from crm_portal.mailin.models import InboundMessage, Mailbox

MAILBOX_FORM = {"name": "support", "active": "y", "host": "imap.example.com", "port": "993", "security": "ssl",
                "username": "support@example.com", "password": "imap-s3cret", "folder": "INBOX",
                "processed_action": "move", "processed_folder": "Processed", "failed_folder": "",
                "unknown_sender": "reject"}


@pytest.fixture(autouse=True)
def trusted_receiver(app):
    """The fixtures' receiving server is trusted, as an installation trusts its own."""
    trust_receiver(app)


def ingest(app, raw: bytes) -> InboundMessage:
    with app.app_context(), db.connection_context():
        return pipeline.ingest(raw, "api")


def test_a_mailbox_password_is_stored_encrypted_and_never_shown(app, demo, client):
    staff_login(client)
    response = client.post("/admin/core_mailbox/new/", data=MAILBOX_FORM)
    assert response.status_code == 302, response.text[:2000]
    with app.app_context(), db.connection_context():
        box = Mailbox.get()
        assert box.password_encrypted and "imap-s3cret" not in box.password_encrypted
        assert crypto.decrypt(box.password_encrypted) == "imap-s3cret"
        stored = box.password_encrypted
    for page in ("/admin/core_mailbox/", f"/admin/core_mailbox/details/?id={box.id}",
                 f"/admin/core_mailbox/edit/?id={box.id}", "/admin/core_mailbox/export/csv/"):
        text = client.get(page).text
        assert "imap-s3cret" not in text and stored not in text
    # Saving without a password keeps the one stored.
    form = {**MAILBOX_FORM, "password": "", "folder": "Support"}
    assert client.post(f"/admin/core_mailbox/edit/?id={box.id}", data=form).status_code == 302
    with app.app_context(), db.connection_context():
        saved = Mailbox.get()
        assert saved.folder == "Support" and crypto.decrypt(saved.password_encrypted) == "imap-s3cret"


def test_operators_see_inbound_email_but_not_mailboxes(app, demo, client):
    staff_login(client, "operatore@example.com")
    assert client.get("/admin/core_inbound_message/").status_code == 200
    assert client.get("/admin/core_mailbox/").status_code in (302, 403)


def test_inbound_messages_show_status_reason_and_the_escaped_original(app, demo, client):
    created = ingest(app, fixture("new_request_plain.eml"))
    refused = ingest(app, fixture("html_only.eml").replace(b"From: Anna Rossi <anna@acme.example>",
                                                           b"From: Ignoto <nobody@else.example>"))
    staff_login(client)
    listing = client.get("/admin/core_inbound_message/").text
    assert "Ticket created" in listing and "Unknown sender" in listing
    assert f'/admin/tickets_queue/work/{created.ticket_id}' in listing
    details = client.get(f"/admin/core_inbound_message/details/?id={refused.id}").text
    assert "&lt;script&gt;" in details and "<script>alert" not in details
    download = client.get(f"/admin/core_inbound_message/original/{refused.id}")
    assert download.status_code == 200 and download.mimetype == "message/rfc822"
    assert "attachment" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.data == fixture("html_only.eml").replace(b"From: Anna Rossi <anna@acme.example>",
                                                             b"From: Ignoto <nobody@else.example>")
    assert client.get("/admin/core_inbound_message/original/999999").status_code == 404


def test_the_original_is_for_staff_only(app, demo, client):
    row = ingest(app, fixture("new_request_plain.eml"))
    response = client.get(f"/admin/core_inbound_message/original/{row.id}")
    assert response.status_code in (302, 403, 404) and b"Stampa cedolini" not in response.data


def test_retry_processes_failed_messages_but_never_a_done_one_twice(app, demo, client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "_process", broken)
    app.config["MAILIN_MAX_ATTEMPTS"] = 1
    failed = ingest(app, fixture("new_request_plain.eml"))
    assert failed.status == "failed"
    monkeypatch.undo()
    done = ingest(app, fixture("forwarded.eml"))
    staff_login(client)
    response = client.post("/admin/core_inbound_message/action/",
                           data={"action": "retry", "rowid": [str(failed.id), str(done.id)]})
    assert response.status_code == 302
    from crm_portal.modules.tickets.models import Ticket

    with app.app_context(), db.connection_context():
        assert InboundMessage.get_by_id(failed.id).status == "ticket_created"
        assert Ticket.select().where(Ticket.title == "Problema accesso fornitore").count() == 1


def test_a_ticket_opened_by_email_says_so(app, demo, client):
    row = ingest(app, fixture("new_request_plain.eml"))
    staff_login(client)
    page = client.get(f"/admin/tickets_queue/work/{row.ticket_id}/").text
    assert ("Opened by email" in page or "Aperta via email" in page) and "anna@acme.example" in page
    assert f"/admin/core_inbound_message/details/?id={row.id}" in page


def test_the_inbound_list_runs_a_constant_number_of_queries(app, demo, client, queries):
    staff_login(client)
    ingest(app, fixture("new_request_plain.eml"))

    def count() -> int:
        with queries:
            assert client.get("/admin/core_inbound_message/").status_code == 200
        return queries.count

    client.get("/admin/core_inbound_message/")
    one = count()
    for name in ("html_only.eml", "forwarded.eml", "unknown_sender.eml", "auto_reply_outlook.eml"):
        ingest(app, fixture(name))
    assert count() == one


# --- Release as sender ------------------------------------------------------------------------------
def forged(name: str = "new_request_plain.eml") -> bytes:
    """A fixture without the receiving server's verdict: its sender is not authenticated."""
    raw = fixture(name)
    return raw.split(b"\n", 4)[4] if raw.startswith(b"Authentication-Results:") else raw


def test_a_held_unauthenticated_message_shows_why_and_staff_may_release_it(app, demo, client):
    from crm_portal.models import AuditEntry
    from crm_portal.modules.tickets.models import Ticket

    held = ingest(app, forged())
    pending = ingest(app, forged("unknown_sender.eml"))  # rejected: not for this action
    assert (held.status, held.reason) == ("held", "unauthenticated")
    staff_login(client, "operatore@example.com")
    listing = client.get("/admin/core_inbound_message/").text
    assert "Sender not authenticated" in listing or "Mittente non autenticato" in listing
    details = client.get(f"/admin/core_inbound_message/details/?id={held.id}").text
    assert "no Authentication-Results of a trusted server" in details
    retry = client.post("/admin/core_inbound_message/action/", data={"action": "retry", "rowid": [str(held.id)]})
    assert retry.status_code == 302
    with app.app_context(), db.connection_context():
        assert InboundMessage.get_by_id(held.id).status == "held"  # a retry checks the sender again
    response = client.post("/admin/core_inbound_message/action/",
                           data={"action": "release", "rowid": [str(held.id), str(pending.id)]})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        row = InboundMessage.get_by_id(held.id)
        assert row.status == "ticket_created"
        assert "released as sender by operatore@example.com" in row.detail
        assert Ticket.get_by_id(row.ticket_id).contact.email == "anna@acme.example"
        assert InboundMessage.get_by_id(pending.id).status == "rejected"
        entry = AuditEntry.get(AuditEntry.action == "mailin.release_as_sender")
        assert (entry.actor_label, entry.object_id) == ("operatore@example.com", str(held.id))
        assert AuditEntry.select().where(AuditEntry.action == "mailin.release_as_sender").count() == 1


def test_a_release_skips_only_the_sender_check(app, demo, client):
    """A revoked contact's message released by staff is still held: no portal access."""
    from crm_portal.models import Contact

    held = ingest(app, forged())
    with app.app_context(), db.connection_context():
        Contact.update(portal_access=False).where(Contact.email == "anna@acme.example").execute()
    staff_login(client)
    client.post("/admin/core_inbound_message/action/", data={"action": "release", "rowid": [str(held.id)]})
    with app.app_context(), db.connection_context():
        row = InboundMessage.get_by_id(held.id)
    assert (row.status, row.reason) == ("held", "no_access")


def test_tickets_and_comments_that_came_by_email_say_so_to_staff_and_customer(app, demo, client):
    ticket, _contact = open_ticket(app, "anna")
    sent = support_reply(app, ticket)
    reply = ingest(app, fixture("gmail_reply_it.eml", in_reply_to=sent["Message-ID"], number=ticket.number))
    opened = ingest(app, fixture("new_request_plain.eml"))
    assert (reply.status, opened.status) == ("comment_added", "ticket_created")
    staff_login(client)
    work = client.get(f"/admin/tickets_queue/work/{ticket.id}/").text
    assert work.count('data-testid="comment-by-email"') == 1  # the reply; not the operator's answer
    customer = app.test_client()
    login(customer, "anna@acme.example")
    page = customer.get(f"/tickets/{ticket.id}").text
    assert page.count('data-testid="comment-by-email"') == 1 and 'data-testid="opened-by-email"' not in page
    assert "via email" in page or "by email" in page
    new = customer.get(f"/tickets/{opened.ticket_id}").text
    assert 'data-testid="opened-by-email"' in new
