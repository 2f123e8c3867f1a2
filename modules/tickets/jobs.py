"""What happens after a ticket changes, and the module's background work.

- **Emails** are receivers of the module's own signals (:mod:`.signals`), queued in the outbox inside
  the transaction of the change they describe. Customers receive the summary on creation, every
  public reply and every state change; support (the assigned operator, else ``SUPPORT_EMAIL``)
  receives customers' comments and private notes. Internal notes are never part of any email.
  Every email is in its recipient's language. Nothing is sent inside ``workflow.quiet()``.
- **"My data" change requests** (host signal ``change_requested``) become support tickets.
- **Auto-close** of resolved tickets: the worker's periodic job, the ``tickets-autoclose`` command
  and, where no worker can run it, a lazy run in web requests.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import click
import peewee as pw
from flask import Flask, current_app, request
from flask.cli import with_appcontext
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm_portal import signals as host_signals
from crm_portal.api import Contact, PortalUser, db, external_url, queue_email

from . import signals, workflow
from .models import Ticket, TicketComment


# --- emails ------------------------------------------------------------------------------------
def _state_label(key: str | None, language: str | None) -> str:
    found = workflow.state(key) if key else None
    return found.label_for(language) if found is not None else (key or "")


def _requester(ticket: Ticket) -> tuple[str | None, str | None, str]:
    """Address, language and name of the requester; no address when they turned notifications off."""
    contact = ticket.contact
    wants = getattr(contact, "notify_by_email", True) is not False
    return (contact.email if wants else None), contact.language, contact.full_name


def email_ticket_created(sender: Any, *, ticket: Ticket, **_extra: Any) -> None:
    """Receiver of ``ticket-created``: the summary, to the requester."""
    if workflow.is_quiet():
        return
    email, language, name = _requester(ticket)
    if not email:
        return
    queue_email(email, "tickets_created", language=language, ticket=ticket, name=name,
                state_label=_state_label(ticket.status, language),
                url=external_url("tickets.detail", record_id=ticket.id))


def email_status_changed(sender: Any, *, ticket: Ticket, old: str | None, new: str,
                         actor: workflow.Actor, **_extra: Any) -> None:
    """Receiver of ``status-changed``: every move (the auto-close included), to the requester."""
    if workflow.is_quiet():
        return
    email, language, name = _requester(ticket)
    if not email:
        return
    queue_email(email, "tickets_status", language=language, ticket=ticket, name=name,
                old_label=_state_label(old, language), new_label=_state_label(new, language), new=new,
                actor_kind=actor.kind, autoclose=actor.kind == "system",
                url=external_url("tickets.detail", record_id=ticket.id))


def email_comment_added(sender: Any, *, ticket: Ticket, comment: TicketComment, actor: workflow.Actor,
                        **_extra: Any) -> None:
    """Receiver of ``comment-added``: a customer's comment or note goes to support, support's public
    reply to the requester; internal notes to nobody."""
    if workflow.is_quiet():
        return
    if actor.kind == "customer":
        _email_support(ticket, comment)
    elif comment.kind == "public":
        _email_reply(ticket, comment)


def _email_reply(ticket: Ticket, comment: TicketComment) -> None:
    email, language, name = _requester(ticket)
    if not email:
        return
    queue_email(email, "tickets_reply", language=language, ticket=ticket, name=name, comment=comment,
                state_label=_state_label(ticket.status, language),
                url=external_url("tickets.detail", record_id=ticket.id))


def _email_support(ticket: Ticket, comment: TicketComment) -> None:
    assignee = ticket.assignee if ticket.assignee_id else None
    if assignee is not None and assignee.active and assignee.email:
        to, language = assignee.email, assignee.language
    else:
        to, language = current_app.config.get("SUPPORT_EMAIL"), None
    if not to:
        return
    queue_email(to, "tickets_customer_comment", language=language, ticket=ticket, comment=comment,
                state_label=_state_label(ticket.status, language),
                url=external_url("tickets_queue.work", id=ticket.id))


# --- "My data" change requests -----------------------------------------------------------------
FIELD_LABELS = {
    "name": _l("Name"), "email": _l("Email"), "office": _l("Office"), "role": _l("Role"),
    "company": _l("Company"), "profile": _l("Profile"), "other": _l("Something else"),
}


def open_change_request(sender: Any, *, contact: Contact, field: str, message: str, **_extra: Any) -> Ticket | None:
    """Receiver of the host's ``change_requested``: open a "request" ticket for the contact, in
    their language, when this application runs the tickets module and their profile lets them
    open and follow tickets; otherwise ``None``, so the host emails support instead."""
    # Receivers are connected once per process: an application without tickets must not open one.
    if "tickets" not in current_app.extensions["crm_portal"].modules:
        return None
    user = PortalUser(contact)
    if not (user.can("tickets", "view") and user.can("tickets", "create")):
        return None
    with force_locale(contact.language or "it"):
        title = _("Change of my data: %(field)s", field=str(FIELD_LABELS.get(field, field)))
    with db.atomic():
        return workflow.create_ticket(workflow.Actor.customer(contact), contact, title=title[:200],
                                      description=message, type="request")


def connect() -> None:
    """Connect this module's receivers. Called for every application: blinker keeps one
    connection per receiver (module-level functions, referenced for the life of the process), so
    connecting again changes nothing and every change sends one email."""
    signals.ticket_created.connect(email_ticket_created)
    signals.status_changed.connect(email_status_changed)
    signals.comment_added.connect(email_comment_added)
    host_signals.change_requested.connect(open_change_request)


# --- auto-close --------------------------------------------------------------------------------
def autoclose() -> list[str]:
    """The worker's periodic job: close resolved tickets nobody answered in time."""
    return workflow.autoclose()


PERIODIC = [("autoclose", "*/10 * * * *", autoclose)]


@click.command("tickets-autoclose")
@click.option("--days", type=float, default=None, help="Days after resolution (default TICKETS_AUTOCLOSE_DAYS).")
@with_appcontext
def autoclose_command(days: float | None) -> None:
    """Close resolved tickets nobody answered for TICKETS_AUTOCLOSE_DAYS days."""
    with db.connection_context():
        workflow.install_defaults()
        closed = workflow.autoclose(days=days)
    click.echo(f"closed {len(closed)} ticket(s)" + (f": {', '.join(closed)}" if closed else ""))


_SETTING_WORDS = {"auto": None, "true": True, "yes": True, "on": True, "1": True,
                  "false": False, "no": False, "off": False, "0": False}


def autoclose_setting(app: Flask) -> bool | None:
    """TICKETS_AUTOCLOSE_IN_REQUESTS as True, False or None ("auto"); ValueError when unknown."""
    value = app.config.get("TICKETS_AUTOCLOSE_IN_REQUESTS", "auto")
    if isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key not in _SETTING_WORDS:
        raise ValueError(f"TICKETS_AUTOCLOSE_IN_REQUESTS = {value!r}: use \"auto\", true or false")
    return _SETTING_WORDS[key]


def autoclose_in_requests(app: Flask) -> bool:
    """Whether web requests run the auto-close. "auto": only when no worker can run the periodic
    job, i.e. the task queue runs in this process (immediate or in-memory huey, as in tests and
    development without a worker); with a real queue the worker closes tickets and customers'
    requests never pay for it."""
    setting = autoclose_setting(app)
    if setting is not None:
        return setting
    from huey import MemoryHuey

    huey = app.extensions.get("huey")
    return huey is None or bool(huey.immediate) or isinstance(huey, MemoryHuey)


def ensure_installed(state: dict[str, Any]) -> None:
    """Seed the default workflow once per process (idempotent; tables may not exist yet)."""
    try:
        workflow.install_defaults()
        state["installed"] = True
    except (pw.OperationalError, pw.ProgrammingError, pw.IntegrityError, pw.InternalError):
        current_app.logger.debug("tickets: defaults not installed yet", exc_info=True)


def lazy_autoclose(app: Flask, state: dict[str, Any]) -> None:
    """Run the auto-close at most once per TICKETS_AUTOCLOSE_INTERVAL seconds per process, in the
    request that happens to come first (cheap: one indexed query when nothing is due)."""
    now = time.monotonic()
    if now - state["last_autoclose"] < app.config["TICKETS_AUTOCLOSE_INTERVAL"]:
        return
    if not state["lock"].acquire(blocking=False):
        return
    try:
        state["last_autoclose"] = now
        workflow.autoclose(limit=50)
    except Exception:  # never break the user's request for housekeeping
        app.logger.exception("tickets: lazy auto-close failed")
    finally:
        state["lock"].release()


def init_app(app: Flask) -> None:
    """Settings, the per-request housekeeping (default workflow, lazy auto-close) and the command."""
    app.config.setdefault("TICKETS_AUTOCLOSE_DAYS", 3)
    app.config.setdefault("TICKETS_RESPONSE_HOURS", 8)
    app.config.setdefault("TICKETS_AUTOCLOSE_INTERVAL", 60)
    app.config.setdefault("TICKETS_AUTOCLOSE_IN_REQUESTS", "auto")
    autoclose_setting(app)  # a misspelt value stops the start-up, not every request
    app.extensions["tickets"] = {"installed": False, "last_autoclose": 0.0, "lock": threading.Lock()}
    app.before_request(housekeeping)
    app.cli.add_command(autoclose_command)


def housekeeping() -> None:
    """Before each request of the application (static files aside): seed the default workflow
    once, and run the lazy auto-close where no worker does."""
    if request.endpoint and request.endpoint.endswith("static"):
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = app.extensions["tickets"]
    if not state["installed"]:
        ensure_installed(state)
    if autoclose_in_requests(app):
        lazy_autoclose(app, state)
