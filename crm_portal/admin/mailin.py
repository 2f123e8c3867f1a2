"""Email-in in the admin: the IMAP mailboxes (administrators: connection, policy, last poll and
error; the password is written encrypted and never shown), and every inbound message (staff:
where it ended and why, the original to read or download, a retry)."""
from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from wtforms import PasswordField
from wtforms.validators import Optional

from ..mailin.models import InboundMessage, Mailbox
from ..uploads import content_disposition
from .views import AdminModelView

LABELS = {
    "host": _l("IMAP server"),
    "port": _l("Port"),
    "security": _l("Connection security"),
    "username": _l("User name"),
    "password": _l("Password"),
    "folder": _l("Folder to read"),
    "processed_action": _l("Processed mail"),
    "processed_folder": _l("Folder for processed mail"),
    "failed_folder": _l("Folder for mail that keeps failing"),
    "unknown_sender": _l("Mail from unknown senders"),
    "last_poll_at": _l("Last poll"),
    "last_success_at": _l("Last successful poll"),
    "message_id": _l("Message-ID"),
    "transport": _l("Received by"),
    "mailbox": _l("Mailbox"),
    "sender": _l("Sender"),
    "reason": _l("Reason"),
    "detail": _l("Details"),
    "thread": _l("Thread"),
    "ticket_id": _l("Ticket"),
    "comment_id": _l("Comment"),
    "contact_id": _l("Contact person"),
    "original_text": _l("Text as received"),
    "replied": _l("Sender answered"),
    "processed_at": _l("Processed"),
    "size": _l("Size (bytes)"),
    "raw_message": _l("Original message"),
}
STATUS_LABELS = {
    "received": _l("Received"), "ticket_created": _l("Ticket created"), "comment_added": _l("Comment added"),
    "note_added": _l("Note added"), "ignored": _l("Ignored"), "rejected": _l("Rejected"),
    "held": _l("Held for approval"), "failed": _l("Failed"),
}
REASON_LABELS = {
    "automatic": _l("Automatic mail"), "own_mail": _l("Our own email"), "bounce": _l("Delivery failure report"),
    "loop": _l("Mail loop: too many requests from this sender"), "unknown_sender": _l("Unknown sender"),
    "not_allowed": _l("The contact may not do this by email"), "pending_contact": _l("New contact to approve"),
    "no_access": _l("The contact has no portal access"),
    "unauthenticated": _l("Sender not authenticated (DMARC, DKIM, SPF)"),
    "too_large": _l("Too large"), "malformed": _l("Not a readable email"), "no_sender": _l("No sender"),
    "no_tickets": _l("Support requests are switched off"), "error": _l("Processing error"),
}
#: Outcomes a retry would apply twice.
DONE = ("ticket_created", "comment_added", "note_added")


class MailboxView(AdminModelView):
    """The IMAP mailboxes the worker polls every minute; *Poll now* polls the selected ones."""

    column_list = ("name", "active", "host", "username", "folder", "last_poll_at", "last_success_at", "last_error")
    column_details_list = ("name", "active", "host", "port", "security", "username", "folder", "processed_action",
                           "processed_folder", "failed_folder", "unknown_sender", "last_poll_at",
                           "last_success_at", "last_error", "created_at")
    column_export_list = column_details_list
    column_searchable_list = ["name", "host", "username"]
    column_filters = ["active"]
    form_columns = ("name", "active", "host", "port", "security", "username", "password", "folder",
                    "processed_action", "processed_folder", "failed_folder", "unknown_sender")
    form_extra_fields = {"password": PasswordField(validators=[Optional()])}
    field_labels = LABELS
    choice_labels = {
        "security": {"ssl": _l("TLS (IMAPS, port 993)"), "starttls": _l("STARTTLS (port 143)"),
                     "none": _l("None (local server only)")},
        "processed_action": {"move": _l("Move to the folder for processed mail"), "flag": _l("Mark as read")},
        "unknown_sender": {"reject": _l("Reject with an explanatory answer"), "ignore": _l("Ignore"),
                           "pending": _l("New contact for staff to approve")},
    }
    form_args = {"password": {"description": _l("Stored encrypted. Leave empty to keep the current one.")}}

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        from ..mailin.crypto import encrypt

        super().on_model_change(form, model, is_created)
        if form.password.data:
            model.password_encrypted = encrypt(form.password.data)

    @action("poll", _l("Poll now"), _l("Read the selected mailboxes now?"))
    def action_poll(self, ids: Any) -> None:
        from ..mailin.imap import poll_mailbox

        for mailbox in Mailbox.select().where(Mailbox.id.in_([int(i) for i in ids])):
            Mailbox.update(last_poll_at=None).where(Mailbox.id == mailbox.id).execute()
            counts = poll_mailbox(mailbox)
            if counts and "error" in counts:
                flash(_("%(name)s: the mailbox could not be read (see its last error).", name=mailbox.name), "error")
            elif counts is not None:
                flash(_("%(name)s: %(count)d messages processed.", name=mailbox.name,
                        count=counts.get("processed", 0)), "success")


def _ticket_link(view: Any, context: Any, model: InboundMessage, name: str) -> Any:
    if not model.ticket_id:
        return ""
    try:
        return Markup('<a href="{}">#{}</a>').format(url_for("tickets_queue.work", id=model.ticket_id),
                                                     model.ticket_id)
    except Exception:  # noqa: BLE001 - the tickets module is off: the plain id
        return model.ticket_id


def _reason(view: Any, context: Any, model: InboundMessage, name: str) -> Any:
    return REASON_LABELS.get(model.reason or "", model.reason or "")


def _raw(view: Any, context: Any, model: InboundMessage, name: str) -> Any:
    if model.raw_message is None:
        return _("Not kept (too large).")
    link = url_for(".original", id=model.id)
    text = bytes(model.raw_message)[:100_000].decode("utf-8", errors="replace")
    return Markup('<p><a href="{}">{}</a></p><pre style="white-space:pre-wrap;max-height:30em;overflow:auto">{}</pre>'
                  ).format(link, _("Download the original (.eml)"), text)


class InboundMessageView(AdminModelView):
    """Every message received by email-in: where it ended and why; *Retry* processes the selected
    ones again (not those that already made a ticket, comment or note); *Release as sender*
    processes those held because their sender was not authenticated as the sender's."""

    roles = ("admin", "operator")
    can_create = can_edit = can_delete = False
    column_list = ("created_at", "transport", "sender", "subject", "status", "reason", "ticket_id", "attempts")
    column_details_list = ("created_at", "transport", "mailbox", "message_id", "sender", "subject", "size", "status",
                           "reason", "detail", "ticket_id", "replied", "attempts", "processed_at", "original_text",
                           "raw_message")
    column_export_list = ("created_at", "transport", "mailbox", "message_id", "sender", "subject", "size", "status",
                          "reason", "detail", "ticket_id", "attempts", "processed_at")
    column_searchable_list = ["sender", "subject", "message_id"]
    column_filters = ["status", "transport", "reason", "created_at"]
    column_default_sort = ("id", True)
    field_labels = LABELS
    choice_labels = {"status": STATUS_LABELS, "transport": {"imap": "IMAP", "api": "API", "mailgate": "mailgate"}}
    column_formatters = {"ticket_id": _ticket_link, "reason": _reason}
    column_formatters_detail = {"ticket_id": _ticket_link, "reason": _reason, "raw_message": _raw}
    audit_labels = {"mailin.release_as_sender": _l("Email released as written by its sender")}

    @expose("/original/<int:id>")
    def original(self, id: int) -> Response:
        """The message as received, as an .eml download (never rendered by the browser)."""
        row = InboundMessage.get_or_none(InboundMessage.id == id)
        if row is None or row.raw_message is None:
            abort(404)
        response = Response(bytes(row.raw_message), mimetype="message/rfc822")
        response.headers["Content-Disposition"] = content_disposition(f"message-{row.id}.eml")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @action("retry", _l("Retry"), _l("Process the selected messages again?"))
    def action_retry(self, ids: Any) -> None:
        from ..mailin.pipeline import TemporaryFailure, reprocess

        done = 0
        rows = InboundMessage.select().where(InboundMessage.id.in_([int(i) for i in ids])
                                             & InboundMessage.status.not_in(DONE))
        for row in rows:
            try:
                reprocess(row)
            except TemporaryFailure:
                continue
            done += 1
        flash(_("Messages processed again: %(count)d.", count=done), "success")

    @action("release", _l("Release as sender"),
            _l("Process the selected held messages as written by their senders? Do it only for messages you "
               "know the contact sent: nothing proves it."))
    def action_release(self, ids: Any) -> None:
        """Messages held because their sender was not authenticated, processed as the sender's
        after a staff member checked with them: every other check still applies (portal access,
        grants, threading). Audited with the staff member."""
        from flask_login import current_user

        from ..audit import audit
        from ..mailin.pipeline import TemporaryFailure, reprocess

        staff = current_user.staff.email
        done = 0
        rows = InboundMessage.select().where(InboundMessage.id.in_([int(i) for i in ids])
                                             & (InboundMessage.status == "held")
                                             & (InboundMessage.reason == "unauthenticated"))
        for row in rows:
            audit("mailin.release_as_sender", row, details={"sender": row.sender, "subject": row.subject,
                                                            "verdict": row.detail})
            try:
                reprocess(row, released_by=staff)
            except TemporaryFailure:
                continue
            done += 1
        flash(_("Messages released as their senders': %(count)d.", count=done), "success")


def views() -> list[Any]:
    category = _l("Email-in")
    return [MailboxView(Mailbox, name=_l("Mailboxes"), category=category, endpoint="core_mailbox"),
            InboundMessageView(InboundMessage, name=_l("Inbound email"), category=category,
                               endpoint="core_inbound_message")]
