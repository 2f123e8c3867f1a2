"""Delivering the outbox: mail transports, batches, claims and the retry loop.

:func:`crm_portal.outbox.queue_email` stores messages and, once their transaction commits, asks the
worker to send them (:func:`deliver_ids`); the worker's periodic job and ``crm-portal send-mail``
call :func:`deliver_pending`, which sends batch after batch until nothing is due. A batch is claimed
for ``MAIL_CLAIM_SECONDS`` (renewed while it is being sent) and goes out over one SMTP connection;
each message is marked on its own as soon as the server accepted it, so a crash re-sends at most the
message in flight, with the same ``Message-ID``. A failed attempt is retried later with a growing
delay; after ``MAIL_MAX_ATTEMPTS`` the message is marked ``failed`` and staff can retry it from
Flask-Admin. See docs/email.md.

Transports (``MAIL_TRANSPORT``): ``"file"`` writes ``.eml`` files to ``<instance>/mail`` (the
development default), ``"smtp"`` talks to ``MAIL_SERVER``. Any object with a ``send(message)``
method (an :class:`email.message.EmailMessage`) is accepted too; one that also has ``session()``
(a context manager whose value has ``send``) sends a whole batch through that session.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import smtplib
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from flask import Flask, current_app

from .db import db, utcnow
from .models import OutboxMessage

log = logging.getLogger("crm_portal.mail")

OUTCOMES = ("sent", "retry", "failed")


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class TransportUnavailable(Exception):
    """The mail server cannot be reached at all: no message can go out until it is back."""


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
    """SMTP with optional implicit TLS (``use_ssl``), STARTTLS (``use_tls``) and authentication.

    :meth:`session` keeps one connection for many messages; :meth:`send` opens one for a single message.
    """

    def __init__(self, server: str, port: int, *, username: str | None = None, password: str | None = None,
                 use_tls: bool = False, use_ssl: bool = False, timeout: float = 30) -> None:
        self.server, self.port = server, int(port)
        self.username, self.password = username, password
        self.use_tls, self.use_ssl, self.timeout = use_tls, use_ssl, timeout
        self._context: ssl.SSLContext | None = None

    @property
    def context(self) -> ssl.SSLContext:
        # Built once: loading the system's certificate authorities costs tens of milliseconds.
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def connect(self) -> smtplib.SMTP:
        """A connected, secured and authenticated client."""
        if self.use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.server, self.port, timeout=self.timeout,
                                                  context=self.context)
        else:
            smtp = smtplib.SMTP(self.server, self.port, timeout=self.timeout)
        try:
            if self.use_tls and not self.use_ssl:
                smtp.starttls(context=self.context)
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def session(self) -> SmtpSession:
        return SmtpSession(self)

    def send(self, message: EmailMessage) -> None:
        with self.session() as session:
            session.send(message)


class SmtpSession:
    """One SMTP connection reused for a batch: opened on the first message, opened again when the
    server dropped it. A refused message (sender, recipient, data) fails alone: smtplib resets the
    transaction (RSET) and the connection carries on with the next message."""

    #: Errors after which the connection is gone and the message was certainly not accepted.
    DROPPED = (smtplib.SMTPServerDisconnected, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
    #: Refusals of one message; the connection stays usable.
    REFUSED = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)

    def __init__(self, transport: SmtpTransport) -> None:
        self.transport = transport
        self.smtp: smtplib.SMTP | None = None
        self.connections = 0

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _open(self) -> smtplib.SMTP:
        try:
            self.smtp = self.transport.connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.connections += 1
        return self.smtp

    def send(self, message: EmailMessage) -> None:
        smtp = self.smtp or self._open()
        try:
            smtp.send_message(message)
            return
        except self.DROPPED:
            self._drop()
        except self.REFUSED:
            raise
        except BaseException:
            self._drop()  # e.g. a timeout: the server's state is unknown, start the next message afresh
            raise
        self._open().send_message(message)  # once, on a new connection

    def _drop(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            finally:
                self.smtp = None

    def close(self) -> None:
        """Say goodbye (QUIT) and close; a connection that is already gone is fine."""
        if self.smtp is None:
            return
        try:
            self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self._drop()


@contextmanager
def open_session(transport: Any) -> Iterator[Any]:
    """The transport's batch session when it has one, else the transport itself."""
    factory = getattr(transport, "session", None)
    if factory is None:
        yield transport
        return
    with factory() as session:
        yield session


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


def message_id(row: OutboxMessage, domain: str, app: Flask | None = None) -> str:
    """The row's ``Message-ID``, the same on every attempt: ``<outbox-<id>.<mac>@<domain>>``.

    The MAC (secret key, id, creation time) keeps ids of different databases apart and lets the
    portal recognise its own messages; a receiver that sees the same id twice can drop the copy.
    """
    secret = str((app or current_app).config["SECRET_KEY"]).encode()
    created = row.created_at.isoformat() if row.created_at else ""
    mac = hmac.new(secret, f"outbox:{row.id}:{created}".encode(), hashlib.sha256).hexdigest()[:20]
    return f"<outbox-{row.id}.{mac}@{domain}>"


def build_message(row: OutboxMessage, sender: str) -> EmailMessage:
    """The MIME message of an outbox row: plain text, plus an HTML alternative when there is one.

    A row with a ``thread`` (crm_portal.mailin) also carries ``In-Reply-To``/``References`` to the
    thread's earlier messages with this recipient, ``Reply-To`` the support mailbox
    (``MAILIN_REPLY_TO``) when one is configured, the "reply above this line" marker on top and a
    signed reference to the thread at the foot, so that a reply threads and comes back to it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = message_id(row, parseaddr(sender)[1].rpartition("@")[2] or "localhost")
    message["Content-Language"] = row.language
    message["Auto-Submitted"] = row.auto_submitted or "auto-generated"
    message["X-Outbox-Id"] = str(row.id)
    text, html = row.body_text, row.body_html
    if row.thread:
        from .mailin.outgoing import thread_headers, with_marker

        for name, value in thread_headers(row, parseaddr(sender)[1].rpartition("@")[2] or "localhost").items():
            message[name] = value
        text, html = with_marker(row.thread, text, html)
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


def retry_delay(attempts: int, app: Flask | None = None) -> dt.timedelta:
    """Wait before attempt ``attempts + 1``: ``MAIL_RETRY_DELAY`` doubled per failure, capped."""
    config = (app or current_app).config
    base, cap = int(config["MAIL_RETRY_DELAY"]), int(config["MAIL_RETRY_MAX_DELAY"])
    return dt.timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


def _claim_span() -> dt.timedelta:
    return dt.timedelta(seconds=int(current_app.config["MAIL_CLAIM_SECONDS"]))


def claim(message_ids: Iterable[int], now: dt.datetime) -> tuple[str, list[OutboxMessage]]:
    """Reserve the due ones of ``message_ids`` for ``MAIL_CLAIM_SECONDS``: the claim's token and the
    rows it got (a message another worker holds, or that is not due, is left alone)."""
    ids = list(message_ids)
    token = secrets.token_hex(16)
    with db.atomic():
        (OutboxMessage.update(claim_token=token, next_attempt_at=now + _claim_span())
         .where(OutboxMessage.id.in_(ids) & (OutboxMessage.status == "pending")
                & (OutboxMessage.next_attempt_at <= now))
         .execute())
    rows = list(OutboxMessage.select()
                .where((OutboxMessage.claim_token == token) & (OutboxMessage.status == "pending"))
                .order_by(OutboxMessage.id))
    return token, rows


def renew(token: str, message_ids: Iterable[int], now: dt.datetime) -> set[int]:
    """Extend the claim ``token`` on the messages still unsent; the ids it still holds."""
    ids = list(message_ids)
    held = (OutboxMessage.claim_token == token) & (OutboxMessage.status == "pending") & OutboxMessage.id.in_(ids)
    with db.atomic():
        OutboxMessage.update(next_attempt_at=now + _claim_span()).where(held).execute()
    return {row.id for row in OutboxMessage.select(OutboxMessage.id).where(held)}


def _mark_sent(row: OutboxMessage) -> None:
    with db.atomic():
        OutboxMessage.update(status="sent", sent_at=utcnow(), attempts=OutboxMessage.attempts + 1,
                             last_error=None, claim_token=None).where(OutboxMessage.id == row.id).execute()


def _mark_failed(row: OutboxMessage, exc: BaseException, now: dt.datetime) -> str:
    attempts = row.attempts + 1
    give_up = attempts >= int(current_app.config["MAIL_MAX_ATTEMPTS"])
    error = f"{type(exc).__name__}: {exc}"[:2000]
    with db.atomic():
        OutboxMessage.update(
            attempts=attempts, last_error=error, status="failed" if give_up else "pending",
            next_attempt_at=now + retry_delay(attempts), claim_token=None,
        ).where(OutboxMessage.id == row.id).execute()
    log.warning("email %s to %s: attempt %s failed: %s", row.id, row.to_address, attempts, error)
    return "failed" if give_up else "retry"


class _Run:
    """One delivery run: its clock (``now`` moved on by the time elapsed), its counts and its session."""

    def __init__(self, now: dt.datetime, session: Any) -> None:
        self.now, self.session = now, session
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.unavailable: TransportUnavailable | None = None
        self._start = time.monotonic()
        self.sender = current_app.config["MAIL_FROM"]

    def clock(self) -> dt.datetime:
        return self.now + dt.timedelta(seconds=time.monotonic() - self._start)

    def send_batch(self, token: str, rows: list[OutboxMessage]) -> None:
        """Send a claimed batch; renew the claim when half of it has run out, and leave any message
        the claim lost (to another worker) alone."""
        span = _claim_span()
        expires = self.clock() + span
        queue = list(rows)
        while queue:
            if self.clock() >= expires - span / 2:
                held = renew(token, [row.id for row in queue], self.clock())
                expires = self.clock() + span
                queue = [row for row in queue if row.id in held]
                if not queue:
                    break
            row = queue.pop(0)
            if self.unavailable is not None:
                self.counts[_mark_failed(row, self.unavailable, self.now)] += 1
                continue
            self._send(row)

    def _send(self, row: OutboxMessage) -> None:
        try:
            self.session.send(build_message(row, self.sender))
        except TransportUnavailable as exc:
            # The server is down: this batch fails as a whole, without waiting out a timeout per message.
            self.unavailable = exc
            self.counts[_mark_failed(row, exc, self.now)] += 1
        except Exception as exc:  # noqa: BLE001 - any transport error is a failed attempt of this message
            self.counts[_mark_failed(row, exc, self.now)] += 1
        else:
            try:
                _mark_sent(row)
            except Exception:  # noqa: BLE001 - sent but unmarked: it goes out again when its claim runs out
                log.exception("email %s: sent, but could not be marked as sent", row.id)
                return
            self.counts["sent"] += 1


def _batch_size(batch_size: int | None) -> int:
    return max(1, int(batch_size or current_app.config["MAIL_BATCH_SIZE"]))


def due_ids(now: dt.datetime | None = None, limit: int = 100) -> list[int]:
    """Ids of the pending messages due at ``now``, oldest due first."""
    now = now or utcnow()
    query = (OutboxMessage.select(OutboxMessage.id)
             .where((OutboxMessage.status == "pending") & (OutboxMessage.next_attempt_at <= now))
             .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit))
    return [row.id for row in query]


def deliver_pending(*, now: dt.datetime | None = None, transport: Transport | None = None,
                    batch_size: int | None = None) -> dict[str, int]:
    """Send every message due at ``now``, batch after batch over one connection, until none is due
    (or the server turns out to be unreachable); a count per outcome (``sent``, ``retry``, ``failed``).

    Every message of a batch leaves the due set (sent, rescheduled, or claimed by us or by another
    worker), so the loop ends; messages queued meanwhile have their own delivery request.
    """
    now = now or utcnow()
    size = _batch_size(batch_size)
    with open_session(transport or get_transport()) as session:
        run = _Run(now, session)
        while run.unavailable is None:
            ids = due_ids(now, size)
            if not ids:
                break
            run.send_batch(*claim(ids, now))
    return run.counts


def deliver_ids(message_ids: Iterable[int], *, now: dt.datetime | None = None,
                transport: Transport | None = None, batch_size: int | None = None) -> dict[str, int]:
    """Send these messages if they are due and nobody holds them (the delivery request after a commit)."""
    now = now or utcnow()
    ids = sorted({int(m) for m in message_ids if m is not None})
    size = _batch_size(batch_size)
    with open_session(transport or get_transport()) as session:
        run = _Run(now, session)
        for start in range(0, len(ids), size):
            if run.unavailable is not None:
                break
            run.send_batch(*claim(ids[start:start + size], now))
    return run.counts


def retry(ids: Iterable[Any]) -> int:
    """Put failed (or waiting) messages back in the queue for immediate delivery with a fresh budget;
    the worker is asked to send them once the transaction commits. A message a worker is sending
    right now (claimed) is left to it."""
    from .jobs import kick_delivery

    message_ids = [int(i) for i in ids]
    with db.atomic():
        count = (OutboxMessage.update(status="pending", attempts=0, next_attempt_at=utcnow(), claim_token=None)
                 .where(OutboxMessage.id.in_(message_ids)
                        & ((OutboxMessage.status == "failed")
                           | ((OutboxMessage.status == "pending") & OutboxMessage.claim_token.is_null())))
                 .execute())
        db.after_commit(partial(kick_delivery, message_ids, current_app._get_current_object()))
    return count

