"""Helpers of the email-in tests: fixtures from tests/fixtures/mail with their placeholders filled
in, and the outgoing ticket email a reply answers.

Every fixture carries, on top, the ``Authentication-Results`` header a receiving server would add
(``mx.portal.example``: DMARC pass for its From domain), as real mail does: a test that ingests
fixtures trusts that server (:func:`trust_receiver`), as an installation configures its own."""
from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

from crm_portal.db import db
from crm_portal.mail import build_message
from crm_portal.models import Contact, OutboxMessage

FIXTURES = Path(__file__).parent / "fixtures" / "mail"
#: The authserv-id of the receiving server whose verdict the fixtures carry.
TRUSTED_MX = "mx.portal.example"


def trust_receiver(app, *ids: str) -> None:
    """Trust the ``Authentication-Results`` of ``ids`` (default: the fixtures' receiving server)."""
    app.config["MAILIN_TRUSTED_AUTHSERV_IDS"] = list(ids or (TRUSTED_MX,))


def fixture(name: str, **values: str) -> bytes:
    """The bytes of ``name`` with ``__KEY__`` replaced by ``values[key]`` (``number`` → __NUMBER__)."""
    raw = (FIXTURES / name).read_bytes()
    for key, value in values.items():
        raw = raw.replace(f"__{key.upper()}__".encode(), value.encode())
    return raw


def open_ticket(app, contact_key: str = "anna", title: str = "Stampa cedolini"):
    """A ticket opened by the demo contact in the portal's way (workflow), and its contact."""
    from crm_portal.modules.tickets import workflow

    with app.test_request_context(), db.connection_context():
        domain = "globex" if contact_key == "carla" else "acme"
        contact = Contact.get(Contact.email == f"{contact_key}@{domain}.example")
        with db.atomic():
            ticket = workflow.create_ticket(workflow.Actor.customer(contact), contact, title=title,
                                            description="Anteprima vuota.")
        return ticket, contact


def support_reply(app, ticket, body: str = "Quale stampante usa?", status: str | None = "waiting_customer"):
    """An operator's public reply (and move), as the queue writes it; the outgoing email to the
    requester as sent (its Message-ID, threading headers and body)."""
    from crm_portal.models import StaffUser
    from crm_portal.modules.tickets import workflow
    from crm_portal.modules.tickets.models import Ticket

    with app.test_request_context(), db.connection_context():
        staff = StaffUser.get(StaffUser.email == "operatore@example.com")
        actor = workflow.Actor.for_staff(staff)
        fresh = Ticket.get_by_id(ticket.id)
        with db.atomic():
            if fresh.status == "open":
                workflow.change_state(fresh, "waiting_support", actor)
            workflow.add_comment(fresh, actor, body, "public")
            if status:
                workflow.change_state(fresh, status, actor)
        row = (OutboxMessage.select().where((OutboxMessage.thread == f"tickets:{ticket.id}")
                                             & (OutboxMessage.to_address == fresh.contact.email))
               .order_by(OutboxMessage.id.desc()).first())
        assert row is not None, "no email to the requester"
        built = build_message(row, app.config["MAIL_FROM"])
        return BytesParser(policy=policy.default).parsebytes(bytes(built))
