"""Step 1: parse and store the raw message, and recognise a second delivery of the same one."""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

from flask import current_app

from ..db import db, utcnow
from .models import InboundMessage

#: Statuses a stored message is processed again from when it is delivered again (it never finished).
UNFINISHED = ("received", "failed")
#: A message ``received`` this long ago and never finished was abandoned (its process died).
STALE = dt.timedelta(minutes=10)
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,240}>")


class Malformed(Exception):
    """The bytes are not an email message we can read."""


def parse(raw: bytes) -> EmailMessage:
    """The message, with the modern header API (``policy.default``); :class:`Malformed` when the
    bytes cannot be one (no headers at all)."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # noqa: BLE001 - the parser is lenient; anything it raises means unreadable
        raise Malformed(str(exc)) from exc
    if not isinstance(message, EmailMessage) or not list(message.keys()):
        raise Malformed("no headers")
    return message


def header(message: EmailMessage, name: str) -> str:
    """A header as text, ``""`` when missing or so broken that it cannot be decoded."""
    try:
        value = message.get(name)
    except Exception:  # noqa: BLE001 - malformed header: as good as missing
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def all_headers(message: EmailMessage, name: str) -> list[str]:
    try:
        return [" ".join(str(v).split()) for v in (message.get_all(name) or [])]
    except Exception:  # noqa: BLE001
        return []


def sender_address(message: EmailMessage) -> str:
    """The lower-case address of ``From`` (``""`` when there is none we can read)."""
    try:
        pairs = getaddresses([header(message, "From")])
    except Exception:  # noqa: BLE001
        return ""
    address = next((a for _n, a in pairs if "@" in a), "")
    return address.strip().lower()[:254]


def sender_name(message: EmailMessage) -> str:
    try:
        pairs = getaddresses([header(message, "From")])
    except Exception:  # noqa: BLE001
        return ""
    return next((n for n, a in pairs if n), "").strip()[:200]


def message_id(message: EmailMessage | None, raw: bytes) -> str:
    """The ``Message-ID``, or ``<sha256-…@hash>`` of the bytes when there is none (or a broken one)."""
    found = _MESSAGE_ID.search(header(message, "Message-ID")) if message is not None else None
    if found:
        return found.group(0)
    return f"<sha256-{hashlib.sha256(raw).hexdigest()}@hash>"


def head_only(raw: bytes, limit: int = 64 * 1024) -> bytes:
    """The header section of ``raw`` (up to ``limit`` bytes): what we read of an oversized message."""
    head = raw[:limit]
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = head.find(separator)
        if end >= 0:
            return head[:end + len(separator)]
    return head


def store(raw: bytes, transport: str, mailbox: Any = None,
          size: int | None = None) -> tuple[InboundMessage, EmailMessage | None, bool]:
    """Store ``raw`` (``transport``: imap, api, mailgate); the row, the parsed message (``None``
    when unreadable or too large: the row says so) and whether it is to be processed now (``False``:
    a duplicate of a message that was already dealt with). ``size``: the message's real size when
    ``raw`` is only its header (IMAP does not download an oversized message)."""
    limit = int(current_app.config["MAILIN_MAX_BYTES"])
    size = max(len(raw), size or 0)
    too_large = size > limit
    message: EmailMessage | None = None
    error = None
    try:
        message = parse(head_only(raw) if too_large else raw)
    except Malformed as exc:
        error = str(exc)
    ident = message_id(message, raw)
    values = {
        "message_id": ident, "transport": transport, "mailbox": mailbox,
        "sender": sender_address(message) if message is not None else "",
        "subject": header(message, "Subject")[:300] if message is not None else "",
        "raw_message": None if too_large else raw, "size": size,
    }
    if too_large:
        values.update(status="rejected", reason="too_large",
                      detail=f"{size} bytes; the limit (MAILIN_MAX_BYTES) is {limit}")
        message = None
    elif message is None:
        values.update(status="rejected", reason="malformed", detail=error)
    with db.atomic():
        inserted = InboundMessage.insert(**values).on_conflict_ignore().as_rowcount().execute()
        row = InboundMessage.get(InboundMessage.message_id == ident)
    row.duplicate = not inserted  # type: ignore[attr-defined]  # not a column: a duplicate, for the transport
    fresh = bool(inserted) and row.status == "received"
    if not inserted and row.status in UNFINISHED and row.raw_message is not None and message is not None:
        fresh = _take_over(row)  # delivered again after a failure: try again
    return row, message, fresh


def _take_over(row: InboundMessage) -> bool:
    """Claim a stored, unfinished message for processing it again: one that failed, or one left
    ``received`` by a process that died over it (nothing for ``STALE``). A conditional update, so
    that two deliveries of the same message at the same time do not both process it."""
    now = utcnow()
    stale = now - STALE
    claimed = (InboundMessage.update(status="received", processed_at=now)
               .where((InboundMessage.id == row.id)
                      & ((InboundMessage.status == "failed")
                         | ((InboundMessage.status == "received") & (InboundMessage.created_at < stale)
                            & (InboundMessage.processed_at.is_null() | (InboundMessage.processed_at < stale)))))
               .execute())
    if claimed:
        row.status = "received"
    return bool(claimed)
