"""What makes our outgoing mail recognisable when a reply comes back: the signed ``Message-ID`` of
every outbox message (:func:`crm_portal.mail.message_id`), a signed reference to the thread in the
body, and the bilingual "reply above this line" marker the quoted history is cut at.

Signatures are HMACs with the portal's ``SECRET_KEY``: a forged ``In-Reply-To`` or reference does
not verify, so it threads nowhere.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from email.utils import parseaddr

from flask import current_app

#: The first line of every threaded email; everything from it down in a reply is quoted history.
MARKER = "##- Rispondi sopra questa riga / Please reply above this line -##"
#: A line that is (or quotes) the marker, whatever the client did to it (quote signs, spaces, tags).
MARKER_RE = re.compile(r"^[>\s]*#+-\s*Rispondi sopra questa riga", re.IGNORECASE | re.MULTILINE)

_OUTBOX_ID = re.compile(r"<outbox-(\d{1,12})\.([0-9a-f]{20})@([^<>\s]+)>")
_REF = re.compile(r"\[ref:([a-z_]{1,32}):(\d{1,12}):([0-9a-f]{16})\]")


def _mac(text: str, length: int) -> str:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:length]


def message_domain() -> str:
    """The host part of our Message-IDs: the domain of ``MAIL_FROM`` (configuration, never a request)."""
    return parseaddr(str(current_app.config["MAIL_FROM"]))[1].rpartition("@")[2] or "localhost"


def thread_reference(thread: str) -> str:
    """``[ref:tickets:42:<mac>]``: the signed reference written at the foot of a threaded email."""
    kind, _, ident = thread.partition(":")
    return f"[ref:{kind}:{ident}:{_mac('ref:' + thread, 16)}]"


def threads_in_text(text: str) -> list[str]:
    """The threads of the verified references found in ``text`` (a forged one is left out)."""
    found = []
    for kind, ident, mac in _REF.findall(text or ""):
        thread = f"{kind}:{int(ident)}"
        if hmac.compare_digest(mac, _mac("ref:" + thread, 16)) and thread not in found:
            found.append(thread)
    return found


def outbox_ids(header_values: list[str]) -> list[int]:
    """The ids of our outbox messages named in these ``In-Reply-To``/``References`` values whose
    signature verifies (newest reference first). One query."""
    from ..mail import message_id
    from ..models import OutboxMessage

    wanted: list[tuple[int, str]] = []
    for value in header_values:
        for ident, _mac_part, _domain in _OUTBOX_ID.findall(value or ""):
            wanted.append((int(ident), f"<outbox-{ident}.{_mac_part}@{_domain}>"))
    if not wanted:
        return []
    rows = {row.id: row for row in OutboxMessage.select().where(OutboxMessage.id.in_([i for i, _ in wanted]))}
    domain = message_domain()
    verified = []
    for ident, text in reversed(wanted):
        row = rows.get(ident)
        if row is not None and hmac.compare_digest(message_id(row, domain), text) and ident not in verified:
            verified.append(ident)
    return verified


def is_our_message_id(value: str | None) -> bool:
    """Whether ``value`` is the signed Message-ID of one of our outbox messages (our own mail)."""
    return bool(value) and bool(outbox_ids([str(value)]))
