"""Tables of email-in: the mailboxes staff connect, and every message received by any transport."""
from __future__ import annotations

import peewee as pw

from ..db import BaseModel, utcnow

#: How a mailbox reaches its IMAP server.
SECURITY = ("ssl", "starttls", "none")
#: What happens to a message once processed (successfully or for good): moved, or flagged \Seen.
PROCESSED_ACTIONS = ("move", "flag")
#: What to do with mail from an address no contact has.
UNKNOWN_SENDER_POLICIES = ("reject", "ignore", "pending")
#: Where a message ended: a ticket, a comment, a note, nothing (ignored, rejected), or not yet.
STATUSES = ("received", "ticket_created", "comment_added", "note_added", "ignored", "rejected", "held", "failed")
TRANSPORTS = ("imap", "api", "mailgate")


class Mailbox(BaseModel):
    """An IMAP mailbox the worker polls. The password is stored encrypted (:mod:`.secrets`)."""

    name = pw.CharField(max_length=100, unique=True)
    active = pw.BooleanField(default=True)
    host = pw.CharField(max_length=255)
    port = pw.IntegerField(default=993)
    security = pw.CharField(max_length=16, default="ssl", choices=[(s, s) for s in SECURITY])
    username = pw.CharField(max_length=255)
    password_encrypted = pw.TextField(default="")
    folder = pw.CharField(max_length=255, default="INBOX")
    processed_action = pw.CharField(max_length=16, default="move", choices=[(a, a) for a in PROCESSED_ACTIONS])
    processed_folder = pw.CharField(max_length=255, default="Processed")
    #: Where a message that keeps failing is moved after MAILIN_MAX_ATTEMPTS; empty: it stays (unseen).
    failed_folder = pw.CharField(max_length=255, default="")
    unknown_sender = pw.CharField(max_length=16, default="reject",
                                  choices=[(p, p) for p in UNKNOWN_SENDER_POLICIES])
    last_poll_at = pw.DateTimeField(null=True)
    last_success_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "core_mailbox"

    def __str__(self) -> str:
        return self.name


class InboundMessage(BaseModel):
    """One message received (by IMAP, the inbound API or the mailgate), kept with its raw bytes so
    that staff can read the original and retry it. ``message_id`` is the sender's ``Message-ID``
    (or ``<sha256…@hash>`` when there is none): a second delivery of it is a duplicate."""

    message_id = pw.CharField(max_length=255, unique=True)
    transport = pw.CharField(max_length=16, choices=[(t, t) for t in TRANSPORTS])
    mailbox = pw.ForeignKeyField(Mailbox, null=True, backref="messages", on_delete="SET NULL", index=True)
    sender = pw.CharField(max_length=254, default="", index=True)
    subject = pw.CharField(max_length=300, default="")
    #: The message as received (``None`` when it was too large to keep).
    raw_message = pw.BlobField(null=True)
    size = pw.IntegerField(default=0)
    status = pw.CharField(max_length=16, default="received", index=True, choices=[(s, s) for s in STATUSES])
    #: Why it ended as it did (a stable code: ``automatic``, ``loop``, ``unknown_sender`` …).
    reason = pw.CharField(max_length=64, null=True)
    #: The detail staff read (the header that made it automatic, the error).
    detail = pw.TextField(null=True)
    #: What the message is about, as in ``OutboxMessage.thread`` (``tickets:<id>``).
    thread = pw.CharField(max_length=64, null=True, index=True)
    ticket_id = pw.IntegerField(null=True, index=True)
    comment_id = pw.IntegerField(null=True)
    contact_id = pw.IntegerField(null=True)
    #: The body as received (before the quoted history was cut), for staff.
    original_text = pw.TextField(null=True)
    #: An explanatory reply was sent to the sender (rejections are answered at most once a window).
    replied = pw.BooleanField(default=False)
    attempts = pw.IntegerField(default=0)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    processed_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "core_inbound_message"
        indexes = ((("sender", "status", "created_at"), False),)

    def __str__(self) -> str:
        return f"{self.sender}: {self.subject}"


MODELS: list[type[BaseModel]] = [Mailbox, InboundMessage]
