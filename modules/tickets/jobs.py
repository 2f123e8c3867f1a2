"""What happens after a ticket changes, and the module's background work.

- **Emails** are receivers of the module's own signals (:mod:`.signals`), queued in the outbox inside
  the transaction of the change they describe. The requester hears of support's public replies
  and of state changes, and (if they ask) gets a confirmation of the requests they open;
  colleagues who chose to follow the company's requests hear of those they can see. Nobody is
  emailed about their own action, and a reply with the state it sets is one email (``coalesce``).
  Each contact chooses these events in "My data". Support (the assigned operator, else
  ``SUPPORT_EMAIL``) receives customers' comments and private notes. Internal notes are never part
  of any email. Every email is in its recipient's language. Nothing is sent inside
  ``workflow.quiet()``.
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
from crm_portal.api import (
    Contact,
    PortalUser,
    db,
    external_url,
    is_answering_mail,
    notify_contact,
    queue_email,
    visible,
    wants_notification,
)

from . import signals, workflow
from .models import Ticket, TicketComment

# --- emails ------------------------------------------------------------------------------------
#: The notification events of the module (declared in ``TicketsModule.notifications``).
REPLY, STATUS, CREATED, COLLEAGUES = "tickets.reply", "tickets.status", "tickets.created", "tickets.colleagues"


def _state_label(key: str | None, language: str | None) -> str:
    found = workflow.state(key) if key else None
    return found.label_for(language) if found is not None else (key or "")


def _colleagues(ticket: Ticket, exclude: set[int | None]) -> list[Contact]:
    """Contacts of the ticket's company who chose to hear of their colleagues' requests and can
    see this one (through the scoping gate), other than ``exclude``."""
    if not ticket.company_id:
        return []
    # A cheap first sieve in SQL (the choice is stored only when it differs from the default, off).
    candidates = (Contact.select().where((Contact.company == ticket.company_id) & (Contact.portal_access == True)  # noqa: E712
                                         & (Contact.notify_by_email == True)  # noqa: E712
                                         & Contact.notification_events.contains(f'"{COLLEAGUES}": true'))
                  .order_by(Contact.id))
    found = []
    for contact in candidates:
        if contact.id in exclude or not wants_notification(contact, COLLEAGUES):
            continue
        user = PortalUser(contact)
        if user.can("tickets", "view") and visible("tickets", user=user).where(Ticket.id == ticket.id).exists():
            found.append(contact)
    return found


def _recipients(ticket: Ticket, actor: workflow.Actor, event: str,
                *, receipt: bool = False) -> list[tuple[Contact, str]]:
    """Who hears of a change: the requester (event ``event``) and the colleagues who asked to,
    never the contact who made the change, unless ``receipt``: the requester asked for a copy of
    their own action (the confirmation of a new request)."""
    actor_id = actor.contact.id if actor.contact is not None else None
    requester = ticket.contact
    out = [] if requester.id == actor_id and not receipt else [(requester, event)]
    out += [(colleague, COLLEAGUES) for colleague in _colleagues(ticket, {requester.id, actor_id})]
    return out


def _merge_update(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two news of one ticket in one transaction (a reply and the state it sets; two moves): one
    email, from the first state to the last, with the reply."""
    merged = {**earlier, **later}
    if "old" in earlier:
        merged["old"], merged["old_label"] = earlier["old"], earlier["old_label"]
    if later.get("comment") is None and earlier.get("comment") is not None:
        merged["comment"] = earlier["comment"]
    return merged


def _notify_update(ticket: Ticket, actor: workflow.Actor, event: str, **news: Any) -> None:
    """The ``tickets_update`` email (a reply, a change of state or both) to whoever wants it, one
    per recipient and ticket per transaction."""
    for contact, key in _recipients(ticket, actor, event):
        language = contact.language
        labels = {"state_label": _state_label(ticket.status, language)}
        if "new" in news:
            labels.update(old_label=_state_label(news["old"], language), new_label=_state_label(news["new"], language))
        notify_contact(contact, key, "tickets_update", coalesce=f"tickets:{ticket.id}", merge=_merge_update,
                       thread=f"tickets:{ticket.id}",
                       ticket=ticket, requester=None if contact.id == ticket.contact_id else ticket.requester_name,
                       url=external_url("tickets.detail", record_id=ticket.id), **labels, **news)


def email_ticket_created(sender: Any, *, ticket: Ticket, actor: workflow.Actor, **_extra: Any) -> None:
    """Receiver of ``ticket-created``: the summary, to the requester who asked for a confirmation
    of their own requests, or who was not the one opening it (support, on their behalf: news they
    hear of as of a reply), and to the colleagues who follow the company's requests."""
    if workflow.is_quiet():
        return
    own = actor.contact is not None and actor.contact.id == ticket.contact_id
    # A request sent by email is answered as a reply (the ticket's number, a thread to reply in):
    # the sender has no page confirming it, unlike the wizard's.
    event = CREATED if own and not is_answering_mail() else REPLY
    for contact, key in _recipients(ticket, actor, event, receipt=True):
        notify_contact(contact, key, "tickets_created", ticket=ticket, thread=f"tickets:{ticket.id}",
                       requester=None if contact.id == ticket.contact_id else ticket.requester_name,
                       state_label=_state_label(ticket.status, contact.language),
                       url=external_url("tickets.detail", record_id=ticket.id))


def email_status_changed(sender: Any, *, ticket: Ticket, old: str | None, new: str,
                         actor: workflow.Actor, **_extra: Any) -> None:
    """Receiver of ``status-changed``: every move (the auto-close included) but the customer's own."""
    if workflow.is_quiet():
        return
    _notify_update(ticket, actor, STATUS, old=old, new=new, autoclose=actor.kind == "system")


def email_comment_added(sender: Any, *, ticket: Ticket, comment: TicketComment, actor: workflow.Actor,
                        **_extra: Any) -> None:
    """Receiver of ``comment-added``: a customer's comment or note goes to support, support's public
    reply to the requester; internal notes to nobody."""
    if workflow.is_quiet():
        return
    if actor.kind == "customer":
        _email_support(ticket, comment)
    elif comment.kind == "public":
        _notify_update(ticket, actor, REPLY, comment=comment)


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
    "name": _l("Name"), "email": _l("Email"), "phone": _l("Phone"), "mobile": _l("Mobile"),
    "office": _l("Office"), "role": _l("Role"),
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
