"""The one pipeline every transport (IMAP, the inbound API, the mailgate) feeds:

store and dedupe → own mail, bounces, automatic mail → sender, and whether the sender really wrote
it (:mod:`.authenticity`) → loop guard → thread → body and attachments → ticket, comment or note.
Each message ends with a status and a reason staff read in the admin; nothing in a message can
crash it (a failure is recorded, and retried).
"""
from __future__ import annotations

import datetime as dt
import logging
from email.message import EmailMessage
from typing import Any

from flask import current_app
from flask_babel import force_locale

from ..db import db, utcnow
from ..models import Contact
from ..outbox import answering_mail, queue_email
from . import authenticity, effects
from .attachments import discard, store_attachments
from .body import full_text, reply_text
from .classify import automatic_reason, bounced_references, is_bounce, own_mail
from .models import InboundMessage, Mailbox
from .senders import find_contact, may_create, may_write, pending_contact
from .signing import outbox_ids
from .store import parse, sender_name, store
from .threads import find_ticket

log = logging.getLogger("crm_portal.mailin")


class TemporaryFailure(Exception):
    """The message could not be processed now (database unavailable, an unexpected error): the
    transport keeps it and delivers it again (IMAP leaves it unseen, the mailgate exits 75, the
    API answers 503)."""


def ingest(raw: bytes, transport: str, mailbox: Mailbox | None = None, size: int | None = None) -> InboundMessage:
    """Store and process one raw RFC 822 message; its row (status, reason). A duplicate of a message
    already dealt with is not processed again (its first row is returned). ``size``: the real size
    when ``raw`` is only the header of an oversized message.
    :class:`TemporaryFailure` when it should be delivered again."""
    try:
        row, message, fresh = store(raw, transport, mailbox, size)
    except Exception as exc:  # noqa: BLE001 - the database is down or refused the row
        log.exception("mailin: could not store a message")
        raise TemporaryFailure(str(exc)) from exc
    if not fresh or message is None:
        return row
    return process(row, message)


def reprocess(row: InboundMessage, released_by: str | None = None) -> InboundMessage:
    """Process a stored message again (staff's retry, a held sender approved). ``released_by``:
    the staff member who vouches that the sender wrote it (*Release as sender*): the sender's
    authentication is not checked, every other step is."""
    if row.raw_message is None:
        return row
    message = parse(bytes(row.raw_message))
    InboundMessage.update(status="received", reason=None, detail=None).where(InboundMessage.id == row.id).execute()
    row.status = "received"
    return process(row, message, released_by=released_by)


def process(row: InboundMessage, message: EmailMessage, released_by: str | None = None) -> InboundMessage:
    """Decide and apply what ``message`` (stored as ``row``) does; an unexpected error is recorded
    on the row (``failed``, counted) and raised as :class:`TemporaryFailure` until
    ``MAILIN_MAX_ATTEMPTS``, then the row stays ``failed`` for staff."""
    try:
        _process(row, message, released_by)
    except Exception as exc:  # noqa: BLE001 - whatever happens, the message is kept and retried
        log.exception("mailin: message %s failed", row.id)
        attempts = row.attempts + 1
        try:
            InboundMessage.update(status="failed", reason="error", attempts=attempts,
                                  detail=f"{type(exc).__name__}: {exc}"[:2000], processed_at=utcnow()
                                  ).where(InboundMessage.id == row.id).execute()
        except Exception:  # noqa: BLE001 - the database itself is gone
            raise TemporaryFailure(str(exc)) from exc
        row.status, row.attempts = "failed", attempts
        if attempts < int(current_app.config["MAILIN_MAX_ATTEMPTS"]):
            raise TemporaryFailure(str(exc)) from exc
    return row


def _tickets_enabled() -> bool:
    return "tickets" in current_app.extensions["crm_portal"].modules


def _sender_verdict(row: InboundMessage, message: EmailMessage, released_by: str | None) -> authenticity.Verdict:
    """Whether the sender really wrote the message; staff who release it vouch for them."""
    if released_by:
        return authenticity.Verdict(True, f"not authenticated; released as sender by {released_by}")
    return authenticity.check(message, bytes(row.raw_message or b""))


def _process(row: InboundMessage, message: EmailMessage, released_by: str | None = None) -> None:
    if own_mail(message):
        return effects.record(row, "ignored", reason="own_mail")
    if is_bounce(message):
        return _bounce(row, message)
    automatic = automatic_reason(message)
    if automatic:
        return effects.record(row, "ignored", reason="automatic", detail=automatic)
    if not row.sender:
        return effects.record(row, "rejected", reason="no_sender", detail="From")
    if not _tickets_enabled():
        return effects.record(row, "rejected", reason="no_tickets")
    contact = find_contact(row.sender)
    if contact is None or (contact.profile_id is None and _policy(row) == "pending"):
        return _unknown_sender(row, message, contact)
    verdict = _sender_verdict(row, message, released_by)
    if not verdict.passed:
        # Anyone can type a From: a message whose sender is not authenticated never acts in the
        # contact's name; staff read the verdict and may release it.
        return effects.record(row, "held", reason="unauthenticated", contact=contact, detail=verdict.detail)
    if not may_write(contact):
        # Revoked (or never given) access ends writing by email too: held for staff, never posted.
        return effects.record(row, "held", reason="no_access", contact=contact,
                              detail="the contact has no portal access: give it (and a profile), then retry")
    text = full_text(message)
    ticket, how = find_ticket(message, contact)
    sender = f"sender: {verdict.detail}"
    if ticket is not None and effects.may_reopen(ticket):
        _reply(row, message, ticket, contact, text, how, sender)
    else:
        _new_ticket(row, message, contact, text, sender, closed=ticket)
    return None


def _area() -> str:
    from ..modules.tickets.opening import UPLOAD_AREA

    return UPLOAD_AREA


def _files(message: EmailMessage) -> tuple[list[Any], str | None]:
    stored, skipped = store_attachments(message, _area())
    return stored, ("\n".join(skipped) if skipped else None)


def _reply(row: InboundMessage, message: EmailMessage, ticket: Any, contact: Contact, text: str,
           how: str | None, sender: str) -> None:
    from ..modules.tickets.workflow import TransitionRefused

    stored, skipped = _files(message)
    detail = "\n".join(x for x in (f"threaded by {how}", sender, skipped) if x)
    try:
        effects.run(lambda: effects.add_reply(row, ticket, contact, reply_text(text), stored,
                                              original_text=text, detail=detail),
                    lambda: discard(stored, _area()))
    except TransitionRefused:  # closed meanwhile: a new ticket that names it
        _new_ticket(row, message, contact, text, sender, closed=ticket)


def _loop(sender: str) -> bool:
    """The sender opened ``MAILIN_LOOP_LIMIT`` tickets by email within the window: a mail loop (or
    a flood) we stop here."""
    config = current_app.config
    since = utcnow() - dt.timedelta(minutes=float(config["MAILIN_LOOP_WINDOW_MINUTES"]))
    opened = (InboundMessage.select().where((InboundMessage.sender == sender)
                                            & (InboundMessage.status == "ticket_created")
                                            & (InboundMessage.created_at >= since)).count())
    return opened >= int(config["MAILIN_LOOP_LIMIT"])


def _new_ticket(row: InboundMessage, message: EmailMessage, contact: Contact, text: str, sender: str, *,
                closed: Any = None) -> None:
    if not may_create(contact):
        return _reject(row, contact.email, "not_allowed", contact.language)
    if _loop(row.sender):
        return effects.record(row, "rejected", reason="loop", contact=contact,
                              detail=f"more than {current_app.config['MAILIN_LOOP_LIMIT']} tickets in the window")
    stored, skipped = _files(message)
    detail = "\n".join(x for x in (sender, skipped) if x)
    effects.open_ticket(row, contact, row.subject, text, stored, original_text=text, detail=detail,
                        follow_up_of=closed)
    return None


def _policy(row: InboundMessage) -> str:
    """What to do with an unknown sender: the mailbox's policy, else ``MAILIN_UNKNOWN_SENDER``."""
    mailbox = row.mailbox if row.mailbox_id else None  # type: ignore[attr-defined]
    return str(mailbox.unknown_sender if mailbox is not None else current_app.config["MAILIN_UNKNOWN_SENDER"])


def _unknown_sender(row: InboundMessage, message: EmailMessage, pending: Contact | None = None) -> None:
    """An unknown sender, or (``pending``) one whose contact still awaits approval (no profile)."""
    policy = _policy(row)
    if policy == "ignore":
        return effects.record(row, "ignored", reason="unknown_sender")
    if policy == "pending":
        with db.atomic():
            contact = pending or pending_contact(row.sender, sender_name(message))
            effects.record(row, "held", reason="pending_contact", contact=contact,
                           detail="a new contact awaits approval: give them a profile and portal access, then retry")
        return None
    return _reject(row, row.sender, "unknown_sender", None)


def _recently_answered(sender: str) -> bool:
    hours = float(current_app.config["MAILIN_REJECT_REPLY_HOURS"])
    since = utcnow() - dt.timedelta(hours=hours)
    return (InboundMessage.select().where((InboundMessage.sender == sender) & (InboundMessage.replied == True)  # noqa: E712
                                          & (InboundMessage.created_at >= since)).exists())


def _reject(row: InboundMessage, address: str, reason: str, language: str | None) -> None:
    """Refuse the message and tell the sender why, at most once per ``MAILIN_REJECT_REPLY_HOURS``
    per address (a loop with another robot stops at the first answer)."""
    with db.atomic():
        answer = not _recently_answered(row.sender)
        effects.record(row, "rejected", reason=reason)
        if answer:
            with answering_mail(), force_locale(language or current_app.config["BABEL_DEFAULT_LOCALE"]):
                queue_email(address, "mailin_rejected", language=language, reason=reason, subject=row.subject)
            InboundMessage.update(replied=True).where(InboundMessage.id == row.id).execute()
            row.replied = True


def _bounce(row: InboundMessage, message: EmailMessage) -> None:
    """A bounce of one of our ticket emails: an internal note on that ticket; any other: ignored."""
    from ..modules.tickets.models import Ticket

    text = full_text(message)
    ids = outbox_ids(bounced_references(message)) if _tickets_enabled() else []
    if ids:
        from ..models import OutboxMessage

        thread = OutboxMessage.select(OutboxMessage.thread).where(OutboxMessage.id == ids[0]).scalar() or ""
        kind, _, ident = thread.partition(":")
        ticket = Ticket.get_or_none(Ticket.id == int(ident)) if kind == "tickets" and ident.isdigit() else None
        if ticket is not None:
            effects.add_bounce_note(row, ticket, text, text)
            return None
    return effects.record(row, "ignored", reason="bounce", original_text=text)
