"""Step 3: which ticket a message answers. First hit wins:

1. a signed Message-ID of one of our ticket emails in ``In-Reply-To``/``References``;
2. a Message-ID of an earlier message of the ticket we received;
3. a signed ``[ref:tickets:<id>:<mac>]`` in the body (our emails end with one);
4. ``[TTn]`` in the subject.

Whatever the way, the ticket is only the answer when the sender may write on it
(:func:`.senders.may_comment`): a forged tag or a stolen reference opens a new ticket instead of
landing in someone else's.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

from ..models import Contact, OutboxMessage
from .body import all_text
from .models import InboundMessage
from .senders import may_comment
from .signing import outbox_ids, threads_in_text
from .store import all_headers, header

_TAG = re.compile(r"\[(TT\d{1,9})\]", re.IGNORECASE)
_IDS = re.compile(r"<[^<>\s]{1,240}>")


def _ticket_ids_from_threads(threads: Sequence[str | None]) -> list[int]:
    out = []
    for thread in threads:
        kind, _, ident = (thread or "").partition(":")
        if kind == "tickets" and ident.isdigit() and int(ident) not in out:
            out.append(int(ident))
    return out


def candidates(message: EmailMessage) -> list[tuple[str, int]]:
    """Every (how, ticket id) the message points at, in the order of trust above."""
    refs = all_headers(message, "In-Reply-To") + all_headers(message, "References")
    found: list[tuple[str, int]] = []
    ours = outbox_ids(refs)
    if ours:
        threads = {r.id: r.thread for r in OutboxMessage.select(OutboxMessage.id, OutboxMessage.thread)
                   .where(OutboxMessage.id.in_(ours))}
        found += [("message_id", t) for t in _ticket_ids_from_threads([threads.get(i) for i in ours])]
    ids = [m for value in refs for m in _IDS.findall(value)][-50:]
    if ids:
        rows = (InboundMessage.select(InboundMessage.thread)
                .where(InboundMessage.message_id.in_(ids) & InboundMessage.thread.is_null(False)))
        found += [("references", t) for t in _ticket_ids_from_threads([r.thread for r in rows])]
    found += [("body_reference", t) for t in _ticket_ids_from_threads(threads_in_text(all_text(message)))]
    return found


def find_ticket(message: EmailMessage, contact: Contact | None) -> tuple[Any, str | None]:
    """The ticket the message answers and how it was found, or ``(None, None)``: a new ticket.
    ``contact`` is the sender (``None``: unknown, then nothing matches)."""
    from ..modules.tickets.models import Ticket

    if contact is None:
        return None, None
    for how, ticket_id in candidates(message):
        ticket = Ticket.get_or_none(Ticket.id == ticket_id)
        if ticket is not None and may_comment(contact, ticket):
            return ticket, how
    for number in _TAG.findall(header(message, "Subject"))[:3]:
        ticket = Ticket.get_or_none(Ticket.number == number.upper())
        if ticket is not None and may_comment(contact, ticket):
            return ticket, "subject"
    return None, None
