"""The IMAP transport: the worker polls every active mailbox (imap-tools) each minute.

Unseen messages of the mailbox's folder are fetched without marking them seen and handed to the
pipeline. A message the pipeline dealt with (whatever the outcome: a ticket, a comment, ignored,
rejected) is moved to the processed folder, or flagged seen. A message that could not be
processed now stays unseen in place and is tried again at the next poll; once it has failed
``MAILIN_MAX_ATTEMPTS`` times it is moved to the failed folder (or flagged seen when there is
none), and stays in the admin's list of inbound email for staff to retry. Nothing is deleted.
"""
from __future__ import annotations

import datetime as dt
import imaplib
import logging
import re
import ssl
from typing import Any

from flask import current_app
from imap_tools import AND, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError

from ..db import utcnow
from .crypto import PasswordUnreadable, decrypt
from .models import InboundMessage, Mailbox
from .pipeline import TemporaryFailure, ingest

log = logging.getLogger("crm_portal.mailin.imap")

#: A poll holds its mailbox this long: a second worker does not poll the same mailbox meanwhile.
CLAIM = dt.timedelta(seconds=50)


def connect(mailbox: Mailbox) -> Any:
    """A logged-in imap-tools client on the mailbox's folder."""
    timeout = float(current_app.config["MAILIN_IMAP_TIMEOUT"])
    password = decrypt(mailbox.password_encrypted)
    client: Any
    if mailbox.security == "ssl":
        client = MailBox(mailbox.host, mailbox.port, timeout=timeout, ssl_context=ssl.create_default_context())
    elif mailbox.security == "starttls":
        client = MailBoxStartTls(mailbox.host, mailbox.port, timeout=timeout,
                                 ssl_context=ssl.create_default_context())
    else:
        client = MailBoxUnencrypted(mailbox.host, mailbox.port, timeout=timeout)
    try:
        return client.login(mailbox.username, password, initial_folder=mailbox.folder)
    except BaseException:
        try:
            client.client.shutdown()  # a refused login leaves the connection open
        except (OSError, imaplib.IMAP4.error):
            pass
        raise


def _ensure_folder(client: Any, name: str) -> None:
    if name and not client.folder.exists(name):
        client.folder.create(name)


_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


def _fetch(client: Any, uid: str, what: str) -> tuple[bytes, bytes] | None:
    typ, data = client.client.uid("FETCH", uid, f"({what})")
    if typ != "OK":
        return None
    for item in data or []:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[0], item[1]
        if isinstance(item, bytes):
            return item, b""
    return None


def _raw(client: Any, uid: str, limit: int) -> tuple[bytes, int | None] | None:
    """The message's bytes as stored on the server (``BODY.PEEK[]``: it stays unseen); of a
    message larger than ``limit`` only its header, with its size (it is never downloaded)."""
    found = _fetch(client, uid, "RFC822.SIZE")
    size = _SIZE.search(found[0]) if found else None
    if size is not None and int(size.group(1)) > limit:
        header = _fetch(client, uid, "BODY.PEEK[HEADER]")
        return (header[1] if header else b""), int(size.group(1))
    whole = _fetch(client, uid, "BODY.PEEK[]")
    return (whole[1], None) if whole and whole[1] else None


def _done(client: Any, mailbox: Mailbox, uid: str, failed: bool = False) -> None:
    target = mailbox.failed_folder if failed else (mailbox.processed_folder if mailbox.processed_action == "move"
                                                    else "")
    if target:
        client.move(uid, target)
    else:
        client.flag(uid, "\\Seen", True)


def poll(mailbox: Mailbox) -> dict[str, int]:
    """Fetch and process the mailbox's unseen messages (at most ``MAILIN_POLL_LIMIT``); counts per
    outcome. Connection and login errors are recorded on the mailbox (``last_error``) and raised."""
    counts = {"processed": 0, "retry": 0, "failed": 0}
    limit = int(current_app.config["MAILIN_POLL_LIMIT"])
    max_attempts = int(current_app.config["MAILIN_MAX_ATTEMPTS"])
    with connect(mailbox) as client:
        if mailbox.processed_action == "move":
            _ensure_folder(client, mailbox.processed_folder)
        _ensure_folder(client, mailbox.failed_folder)
        max_bytes = int(current_app.config["MAILIN_MAX_BYTES"])
        for uid in client.uids(AND(seen=False))[:limit]:
            fetched = _raw(client, uid, max_bytes)
            if fetched is None:
                continue
            try:
                row = ingest(fetched[0], "imap", mailbox, size=fetched[1])
            except TemporaryFailure:
                counts["retry"] += 1
                continue  # stays unseen: the next poll tries again
            if row.status == "failed" and row.attempts >= max_attempts:
                counts["failed"] += 1
                _done(client, mailbox, uid, failed=True)
            elif row.status == "failed":
                counts["retry"] += 1
            else:
                counts["processed"] += 1
                _done(client, mailbox, uid)
    return counts


def _claim(mailbox: Mailbox, now: dt.datetime) -> bool:
    """Take the mailbox for this poll (a conditional update: one worker at a time)."""
    free = Mailbox.last_poll_at.is_null() | (Mailbox.last_poll_at <= now - CLAIM)
    return bool(Mailbox.update(last_poll_at=now).where((Mailbox.id == mailbox.id) & free).execute())


def poll_mailbox(mailbox: Mailbox, now: dt.datetime | None = None) -> dict[str, int] | None:
    """Poll one mailbox and record how it went (``last_success_at`` / ``last_error``); ``None``
    when another worker is polling it."""
    now = now or utcnow()
    if not _claim(mailbox, now):
        return None
    try:
        counts = poll(mailbox)
    except (OSError, imaplib.IMAP4.error, MailboxLoginError, PasswordUnreadable, ssl.SSLError) as exc:
        log.warning("mailbox %s: %s", mailbox.name, exc)
        Mailbox.update(last_error=f"{type(exc).__name__}: {exc}"[:2000]).where(Mailbox.id == mailbox.id).execute()
        return {"error": 1}
    except Exception as exc:  # noqa: BLE001 - one broken mailbox never stops the others
        log.exception("mailbox %s: poll failed", mailbox.name)
        Mailbox.update(last_error=f"{type(exc).__name__}: {exc}"[:2000]).where(Mailbox.id == mailbox.id).execute()
        return {"error": 1}
    Mailbox.update(last_success_at=utcnow(), last_error=None).where(Mailbox.id == mailbox.id).execute()
    return counts


def poll_all() -> dict[str, dict[str, int]]:
    """The worker's periodic job: poll every active mailbox; counts per mailbox name."""
    results = {}
    for mailbox in Mailbox.select().where(Mailbox.active == True).order_by(Mailbox.id):  # noqa: E712
        found = poll_mailbox(mailbox)
        if found is not None:
            results[mailbox.name] = found
    return results


def unfinished(mailbox: Mailbox) -> int:
    """Messages of the mailbox still to be processed (received or failed): the admin's figure."""
    return (InboundMessage.select().where((InboundMessage.mailbox == mailbox.id)
                                          & InboundMessage.status.in_(("received", "failed"))).count())
