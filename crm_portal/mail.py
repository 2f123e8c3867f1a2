"""Delivering the outbox: mail transports and the retry loop.

:func:`crm_portal.outbox.queue_email` stores messages; the worker (``crm-portal worker``) or
``crm-portal send-mail`` calls :func:`deliver_pending`. Each message is claimed, sent and marked on
its own, so one bad message never blocks the others. A failed attempt is retried later with a
growing delay; after ``MAIL_MAX_ATTEMPTS`` the message is marked ``failed`` and staff can retry it
from Flask-Admin.

Transports (``MAIL_TRANSPORT``): ``"file"`` writes ``.eml`` files to ``<instance>/mail`` (the
development default), ``"smtp"`` talks to ``MAIL_SERVER``. Any object with a ``send(message)``
method (an :class:`email.message.EmailMessage`) is accepted too.
"""
from __future__ import annotations

import datetime as dt
import logging
import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Protocol

from flask import Flask, current_app

from .db import db, utcnow
from .models import OutboxMessage

log = logging.getLogger("crm_portal.mail")

#: How long a claimed message stays reserved for the worker that claimed it.
CLAIM_SECONDS = 300


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class FileTransport:
    """Writes every message to ``<folder>/<timestamp>-<id>.eml`` (development and tests)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def send(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = utcnow().strftime("%Y%m%d-%H%M%S-%f")
        ident = message.get("X-Outbox-Id", "0")
        target = self.folder / f"{stamp}-{ident}.eml"
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(bytes(message))
        tmp.replace(target)


class SmtpTransport:
    """SMTP with optional implicit TLS (``use_ssl``), STARTTLS (``use_tls``) and authentication."""

    def __init__(self, server: str, port: int, *, username: str | None = None, password: str | None = None,
                 use_tls: bool = False, use_ssl: bool = False, timeout: float = 30) -> None:
        self.server, self.port = server, int(port)
        self.username, self.password = username, password
        self.use_tls, self.use_ssl, self.timeout = use_tls, use_ssl, timeout

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self.use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.server, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.server, self.port, timeout=self.timeout)
        with smtp:
            if self.use_tls and not self.use_ssl:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


def get_transport(app: Flask | None = None) -> Transport:
    """The transport configured by ``MAIL_TRANSPORT``."""
    app = app or current_app
    config = app.config
    kind = config.get("MAIL_TRANSPORT", "file")
    if not isinstance(kind, str):
        return kind
    if kind == "file":
        return FileTransport(config.get("MAIL_FILE_DIR") or Path(app.instance_path) / "mail")
    if kind == "smtp":
        return SmtpTransport(config["MAIL_SERVER"], config["MAIL_PORT"], username=config.get("MAIL_USERNAME"),
                             password=config.get("MAIL_PASSWORD"), use_tls=bool(config.get("MAIL_USE_TLS")),
                             use_ssl=bool(config.get("MAIL_USE_SSL")), timeout=config.get("MAIL_TIMEOUT", 30))
    raise ValueError(f"MAIL_TRANSPORT {kind!r}: use 'file' or 'smtp'")


def build_message(row: OutboxMessage, sender: str) -> EmailMessage:
    """The MIME message of an outbox row: plain text, plus an HTML alternative when there is one."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Date"] = format_datetime(dt.datetime.now(dt.timezone.utc))
    domain = parseaddr(sender)[1].rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(idstring=f"outbox{row.id}", domain=domain)
    message["Content-Language"] = row.language
    message["Auto-Submitted"] = "auto-generated"
    message["X-Outbox-Id"] = str(row.id)
    message.set_content(row.body_text)
    if row.body_html:
        message.add_alternative(row.body_html, subtype="html")
    return message


def retry_delay(attempts: int, app: Flask | None = None) -> dt.timedelta:
    """Wait before attempt ``attempts + 1``: ``MAIL_RETRY_DELAY`` doubled per failure, capped."""
    config = (app or current_app).config
    base, cap = int(config["MAIL_RETRY_DELAY"]), int(config["MAIL_RETRY_MAX_DELAY"])
    return dt.timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


def _claim(message_id: int, now: dt.datetime) -> bool:
    """Reserve a due message for this worker; False when another worker has it or it is not due."""
    with db.atomic():
        claimed = (OutboxMessage.update(next_attempt_at=now + dt.timedelta(seconds=CLAIM_SECONDS))
                   .where((OutboxMessage.id == message_id) & (OutboxMessage.status == "pending")
                          & (OutboxMessage.next_attempt_at <= now))
                   .execute())
    return claimed == 1


def deliver_one(message_id: int, *, now: dt.datetime | None = None, transport: Transport | None = None) -> str | None:
    """Send one due message. Returns ``"sent"``, ``"retry"``, ``"failed"`` or ``None`` (not due/claimed)."""
    now = now or utcnow()
    if not _claim(message_id, now):
        return None
    row = OutboxMessage.get_by_id(message_id)
    try:
        (transport or get_transport()).send(build_message(row, current_app.config["MAIL_FROM"]))
    except Exception as exc:  # noqa: BLE001 - any transport error is a failed attempt
        attempts = row.attempts + 1
        give_up = attempts >= int(current_app.config["MAIL_MAX_ATTEMPTS"])
        error = f"{type(exc).__name__}: {exc}"[:2000]
        with db.atomic():
            OutboxMessage.update(
                attempts=attempts, last_error=error, status="failed" if give_up else "pending",
                next_attempt_at=now + retry_delay(attempts),
            ).where(OutboxMessage.id == message_id).execute()
        log.warning("email %s to %s: attempt %s failed: %s", message_id, row.to_address, attempts, error)
        return "failed" if give_up else "retry"
    with db.atomic():
        OutboxMessage.update(status="sent", sent_at=utcnow(), attempts=row.attempts + 1, last_error=None) \
            .where(OutboxMessage.id == message_id).execute()
    return "sent"


def due_ids(now: dt.datetime | None = None, limit: int = 200) -> list[int]:
    now = now or utcnow()
    query = (OutboxMessage.select(OutboxMessage.id)
             .where((OutboxMessage.status == "pending") & (OutboxMessage.next_attempt_at <= now))
             .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit))
    return [row.id for row in query]


def deliver_pending(*, now: dt.datetime | None = None, limit: int = 200,
                    transport: Transport | None = None) -> dict[str, int]:
    """Send every due message once; a count per outcome (``sent``, ``retry``, ``failed``)."""
    now = now or utcnow()
    transport = transport or get_transport()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    for message_id in due_ids(now, limit):
        try:
            outcome = deliver_one(message_id, now=now, transport=transport)
        except Exception:  # noqa: BLE001 - e.g. a database hiccup on one row: go on with the others
            log.exception("email %s: delivery error", message_id)
            continue
        if outcome:
            counts[outcome] += 1
    return counts


def retry(ids: Iterable[Any]) -> int:
    """Put failed (or pending) messages back in the queue for immediate delivery with a fresh budget."""
    with db.atomic():
        return (OutboxMessage.update(status="pending", attempts=0, next_attempt_at=utcnow())
                .where(OutboxMessage.id.in_(list(ids)) & (OutboxMessage.status != "sent"))
                .execute())
