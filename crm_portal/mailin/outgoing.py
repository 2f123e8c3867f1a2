"""Threading headers and body additions of our outgoing emails that belong to a thread."""
from __future__ import annotations

import html as html_lib
import re

from flask import current_app

from ..models import OutboxMessage
from .models import InboundMessage
from .signing import MARKER, thread_reference

#: How many earlier messages ``References`` names at most (RFC 5322 lets it grow; clients cope).
MAX_REFERENCES = 10


def thread_headers(row: OutboxMessage, domain: str) -> dict[str, str]:
    """``In-Reply-To``, ``References`` and ``Reply-To`` for ``row``: its thread's earlier emails to
    the same recipient and the recipient's own emails of the thread, oldest first (two queries)."""
    from ..mail import message_id

    earlier = list(OutboxMessage.select(OutboxMessage.id, OutboxMessage.created_at)
                   .where((OutboxMessage.thread == row.thread) & (OutboxMessage.to_address == row.to_address)
                          & (OutboxMessage.id < row.id))
                   .order_by(OutboxMessage.id.desc()).limit(MAX_REFERENCES))
    received = list(InboundMessage.select(InboundMessage.message_id, InboundMessage.created_at)
                    .where((InboundMessage.thread == row.thread) & (InboundMessage.sender == row.to_address.lower()))
                    .order_by(InboundMessage.id.desc()).limit(MAX_REFERENCES))
    dated = [(m.created_at, message_id(m, domain)) for m in earlier]
    dated += [(m.created_at, m.message_id) for m in received if not m.message_id.startswith("<sha256-")]
    dated.sort(key=lambda pair: pair[0])
    ids = [ident for _, ident in dated][-MAX_REFERENCES:]
    headers: dict[str, str] = {}
    if ids:
        headers["In-Reply-To"] = ids[-1]
        headers["References"] = " ".join(ids)
    reply_to = current_app.config.get("MAILIN_REPLY_TO")
    if reply_to:
        headers["Reply-To"] = str(reply_to)
    return headers


def with_marker(thread: str, text: str, html: str | None) -> tuple[str, str | None]:
    """The bodies with the marker on top and the signed reference at the foot."""
    reference = thread_reference(thread)
    text = f"{MARKER}\n\n{text.rstrip()}\n\n{reference}\n"
    if html:
        top = f'<p style="color:#888;font-size:12px">{html_lib.escape(MARKER)}</p>'
        foot = f'<p style="color:#bbb;font-size:10px">{html_lib.escape(reference)}</p>'
        match = re.search(r"<body[^>]*>", html, re.IGNORECASE)
        html = html[:match.end()] + top + html[match.end():] if match else top + html
        end = html.lower().rfind("</body>")
        html = html[:end] + foot + html[end:] if end >= 0 else html + foot
    return text, html
