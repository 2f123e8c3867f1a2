"""Step 7: what a message does to tickets, each in one transaction with the message's new status:
a new ticket (through the tickets module's ``opening.open_request``, the path every ticket is opened
by, with its usual acknowledgement email), a public comment by the contact (sending a ticket that
waits for them back to support, as the portal does), a reopen of a resolved ticket where the
workflow lets the customer reopen it (else a new ticket that names the old one), or, for a bounce,
an internal note. Emails queued here answer an incoming email: ``Auto-Submitted: auto-replied``."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask_babel import force_locale
from flask_babel import gettext as _

from ..db import db, utcnow
from ..models import Contact
from ..outbox import answering_mail
from ..uploads import StoredFile
from .models import InboundMessage

_PREFIX = re.compile(r"^\s*((re|r|rif|aw|fwd?|i|inoltro|tr|wg)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def clean_subject(subject: str) -> str:
    """The subject without reply/forward prefixes (Re:, R:, Fwd:, I: …) and extra spaces."""
    return " ".join(_PREFIX.sub("", subject or "").split())[:200]


def record(row: InboundMessage, status: str, *, reason: str | None = None, detail: str | None = None,
           ticket: Any = None, comment: Any = None, contact: Contact | None = None,
           original_text: str | None = None) -> None:
    """Write where the message ended (inside the caller's transaction, if any)."""
    values: dict[Any, Any] = {InboundMessage.status: status, InboundMessage.reason: reason,
                              InboundMessage.detail: detail, InboundMessage.processed_at: utcnow()}
    if ticket is not None:
        values[InboundMessage.ticket_id] = ticket.id
        values[InboundMessage.thread] = f"tickets:{ticket.id}"
    if comment is not None:
        values[InboundMessage.comment_id] = comment.id
    if contact is not None:
        values[InboundMessage.contact_id] = contact.id
    if original_text is not None:
        values[InboundMessage.original_text] = original_text
    InboundMessage.update(values).where(InboundMessage.id == row.id).execute()
    for field, value in values.items():
        setattr(row, field.name, value)


def open_ticket(row: InboundMessage, contact: Contact, subject: str, text: str, stored: list[StoredFile], *,
                original_text: str, detail: str | None = None, follow_up_of: Any = None) -> Any:
    """A new ticket for ``contact`` from the message (its files already ``stored``)."""
    from ..modules.tickets import opening, workflow

    with force_locale(contact.language or "it"):
        title = clean_subject(subject) or _("Request by email")
        description = text or _("(The email had no text.)")
        if follow_up_of is not None:
            description = _("Follow-up of the closed request %(number)s.", number=follow_up_of.number) \
                + "\n\n" + description

    def then(ticket: Any) -> None:
        record(row, "ticket_created", ticket=ticket, contact=contact, original_text=original_text, detail=detail)

    with answering_mail():
        return opening.open_request(workflow.Actor.customer(contact), contact, stored, then,
                                    title=title[:200], description=description)


def add_reply(row: InboundMessage, ticket: Any, contact: Contact, text: str, stored: list[StoredFile], *,
              original_text: str, detail: str | None = None) -> Any:
    """The contact's public comment (and files) on ``ticket``. TransitionRefused when the ticket is
    closed (or was closed meanwhile): nothing written."""
    from ..modules.tickets import workflow

    actor = workflow.Actor.customer(contact)
    if not text:
        with force_locale(contact.language or "it"):
            text = _("(The email had no text.)")
    with db.atomic(), answering_mail():
        comment = workflow.add_comment(ticket, actor, text, "public")
        for item in stored:
            workflow.attach(ticket, actor, item)
        record(row, "comment_added", ticket=ticket, comment=comment, contact=contact,
               original_text=original_text, detail=detail)
    return comment


def may_reopen(ticket: Any) -> bool:
    """Whether a customer's reply can go on ``ticket`` (a resolved one only where the workflow lets
    the customer send it back to support)."""
    from ..modules.tickets import workflow

    if workflow.is_final(ticket):
        return False
    if ticket.status == workflow.RESOLVED:
        return workflow.WAITING_SUPPORT in workflow.allowed_targets(ticket, "customer")
    return True


def add_bounce_note(row: InboundMessage, ticket: Any, text: str, original_text: str) -> Any:
    """An internal note on ``ticket``: one of its emails could not be delivered."""
    from ..modules.tickets import workflow

    intro = _("An email about this request could not be delivered:")
    with db.atomic():
        comment = workflow.add_comment(ticket, workflow.Actor.system(), f"{intro}\n\n{text[:4000]}", "internal")
        record(row, "note_added", reason="bounce", ticket=ticket, comment=comment, original_text=original_text)
    return comment


def run(step: Callable[[], Any], cleanup: Callable[[], None]) -> Any:
    """Run ``step``; on any failure call ``cleanup`` (remove stored files) and re-raise."""
    try:
        return step()
    except BaseException:
        cleanup()
        raise
