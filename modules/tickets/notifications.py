"""Ticket emails, queued in the outbox inside the transaction of the change they describe.

Customers receive: the summary on creation, every public reply, every state change. Support (the
assigned operator, else ``SUPPORT_EMAIL``) receives customers' comments and private notes.
Internal notes are never part of any email. Every email is in its recipient's language.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app

from crm_portal.api import external_url, queue_email

if TYPE_CHECKING:  # pragma: no cover
    from .models import Ticket, TicketComment
    from .workflow import Actor


def _link(endpoint: str, **values: Any) -> str | None:
    try:
        return external_url(endpoint, **values)
    except RuntimeError:  # no request and no SERVER_NAME (a command run without configuration)
        return None


def _state_label(key: str | None, language: str | None) -> str:
    from .workflow import state

    found = state(key) if key else None
    return found.label_for(language) if found is not None else (key or "")


def _requester(ticket: "Ticket") -> tuple[str | None, str | None, str]:
    """Address, language and name of the requester; no address when they turned notifications off."""
    contact = ticket.contact
    wants = getattr(contact, "notify_by_email", True) is not False
    return (contact.email if wants else None), contact.language, contact.full_name


def ticket_created(ticket: "Ticket") -> None:
    email, language, name = _requester(ticket)
    if not email:
        return
    queue_email(email, "tickets_created", language=language, ticket=ticket, name=name,
                state_label=_state_label(ticket.status, language),
                url=_link("tickets.detail", record_id=ticket.id))


def public_reply(ticket: "Ticket", comment: "TicketComment") -> None:
    assert comment.kind == "public"
    email, language, name = _requester(ticket)
    if not email:
        return
    queue_email(email, "tickets_reply", language=language, ticket=ticket, name=name, comment=comment,
                state_label=_state_label(ticket.status, language),
                url=_link("tickets.detail", record_id=ticket.id))


def status_changed(ticket: "Ticket", old: str | None, new: str, actor: "Actor") -> None:
    email, language, name = _requester(ticket)
    if not email:
        return
    queue_email(email, "tickets_status", language=language, ticket=ticket, name=name,
                old_label=_state_label(old, language), new_label=_state_label(new, language), new=new,
                actor_kind=actor.kind, autoclose=actor.kind == "system",
                url=_link("tickets.detail", record_id=ticket.id))


def customer_comment(ticket: "Ticket", comment: "TicketComment") -> None:
    assignee = ticket.assignee if ticket.assignee_id else None
    if assignee is not None and assignee.active and assignee.email:
        to, language = assignee.email, assignee.language
    else:
        to, language = current_app.config.get("SUPPORT_EMAIL"), None
    if not to:
        return
    queue_email(to, "tickets_customer_comment", language=language, ticket=ticket, comment=comment,
                state_label=_state_label(ticket.status, language),
                url=_link("tickets_queue.work", id=ticket.id))
