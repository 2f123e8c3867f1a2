"""Step 2: mail written by machines. It never opens a ticket nor gets an answer (RFC 3834);
a delivery-status report (a bounce of one of our emails) becomes an internal note on its ticket."""
from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

from .signing import is_our_message_id
from .store import all_headers, header, parse

_PRECEDENCE = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
_AUTORESPONDER = ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-Autoresponder", "X-Vacation",
                  "X-Mailer-Autoreply", "X-Cron-Env")
_LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post", "List-Help", "X-Mailing-List", "Mailing-List")
_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|noreply-dmarc)@", re.IGNORECASE)


def own_mail(message: EmailMessage) -> bool:
    """One of our own emails came back in (a loop through a forward, a copy to the support box)."""
    return bool(header(message, "X-Outbox-Id")) and is_our_message_id(header(message, "Message-ID"))


def is_bounce(message: EmailMessage) -> bool:
    """A delivery-status notification (RFC 3464): ``multipart/report; report-type=delivery-status``
    or a part ``message/delivery-status``."""
    if message.get_content_type() == "multipart/report":
        if str(message.get_param("report-type") or "").lower() == "delivery-status":
            return True
    return any(part.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
               for part in message.walk())


def bounced_references(message: EmailMessage) -> list[str]:
    """The Message-ID (and references) of the message a bounce reports on, read from its returned
    copy (``message/rfc822``) or headers (``text/rfc822-headers``)."""
    found: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        original: Any = None
        try:
            if kind in ("message/rfc822", "message/global"):
                payload = part.get_payload()
                original = payload[0] if isinstance(payload, list) and payload else None
            elif kind == "text/rfc822-headers":
                data = part.get_payload(decode=True)
                original = parse(data if isinstance(data, bytes) else b"")
        except Exception:  # noqa: BLE001 - an unreadable returned copy: nothing to thread on
            original = None
        if isinstance(original, EmailMessage):
            for name in ("Message-ID", "In-Reply-To", "References"):
                found += all_headers(original, name)
    return found


def automatic_reason(message: EmailMessage) -> str | None:
    """Why ``message`` is automatic (the header that says so), or ``None`` for a person's mail."""
    auto = header(message, "Auto-Submitted").lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto}"
    precedence = header(message, "Precedence").lower()
    if precedence in _PRECEDENCE:
        return f"Precedence: {precedence}"
    if header(message, "X-Auto-Response-Suppress"):
        return "X-Auto-Response-Suppress"
    for name in _AUTORESPONDER:
        if header(message, name):
            return name
    for name in _LIST_HEADERS:
        if header(message, name):
            return name
    if "Return-Path" in message and header(message, "Return-Path").strip() in ("", "<>"):
        return "Return-Path: <>"
    if _DAEMON.match(_address(header(message, "From"))):
        return "From: mailer daemon"
    return None


def _address(value: str) -> str:
    match = re.search(r"<([^<>]+)>", value)
    return (match.group(1) if match else value).strip()
