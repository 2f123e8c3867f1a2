"""What modules ask email-in about their records (exported by :mod:`crm_portal.api`)."""
from __future__ import annotations

from collections.abc import Iterable

from .models import InboundMessage


def email_that_opened(thread: str) -> InboundMessage | None:
    """The inbound email that opened the record of ``thread`` (``"tickets:42"``), or ``None`` when
    the record was not opened by email (one query)."""
    return (InboundMessage.select(InboundMessage.id, InboundMessage.sender, InboundMessage.created_at,
                                  InboundMessage.transport, InboundMessage.subject)
            .where((InboundMessage.thread == thread) & (InboundMessage.status == "ticket_created"))
            .order_by(InboundMessage.id).first())


def comments_by_email(comment_ids: Iterable[int]) -> set[int]:
    """Which of ``comment_ids`` came by email (the reply an inbound message added): one query,
    even for none (a page's query count does not depend on its comments)."""
    ids = [int(i) for i in comment_ids]
    return {row.comment_id for row in InboundMessage.select(InboundMessage.comment_id)
            .where(InboundMessage.comment_id.in_(ids) & (InboundMessage.status == "comment_added"))}
