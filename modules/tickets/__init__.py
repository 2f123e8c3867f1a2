"""Tickets: the helpdesk. Customers open requests through a guided form, follow the conversation
with support, attach files, and close resolved requests with a rating; operators work the queue in
the admin. See docs/tickets.md."""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import peewee as pw
from flask import current_app, has_request_context, request

from crm_portal.api import Button, Column, Module, _l, db

from . import workflow
from .migrations import MIGRATIONS
from .models import MODELS, PRIORITIES, SEVERITIES, TYPES, Ticket, TicketCategory



def state_labels() -> dict[str, str]:
    """State key → label in the current language, from the state table."""
    return {key: state.label for key, state in workflow.states().items()}


def state_colour(key: str, row: Any = None) -> str | None:
    state = workflow.states().get(key)
    return state.color if state is not None else None


def parse_date(value: Any):
    import datetime as dt

    try:
        return dt.date.fromisoformat(str(value or "").strip()[:10])
    except ValueError:
        return None


def list_filters(query: pw.ModelSelect, args: Mapping[str, Any], user: Any) -> pw.ModelSelect:
    """The tickets list's own filters (``TicketsModule.list_params``): ``show`` (mine/all),
    ``state`` (open/closed) and the created/closed date ranges (``created_from`` … ``closed_to``)."""
    import datetime as dt

    if args.get("show") == "mine":
        query = query.where(Ticket.contact == user.contact_id)
    which = args.get("state")
    if which == "open":
        query = query.where(Ticket.status.in_(workflow.open_keys()))
    elif which == "closed":
        query = query.where(Ticket.status.in_(workflow.final_keys()))
    for name, field in (("created", Ticket.created_at), ("closed", Ticket.closed_at)):
        start, end = parse_date(args.get(f"{name}_from")), parse_date(args.get(f"{name}_to"))
        if start:
            query = query.where(field >= dt.datetime.combine(start, dt.time()))
        if end:  # the whole last day (no "next day": 9999-12-31 has none)
            query = query.where(field <= dt.datetime.combine(end, dt.time.max))
    return query


class TicketsModule(Module):
    name = "tickets"
    label = _l("Support requests")
    icon = "life-preserver"
    description = _l("Ask support for help and follow your requests.")
    position = 10
    models = MODELS
    record = Ticket
    contact_field = Ticket.contact
    company_field = Ticket.company
    actions = ("view", "create", "comment", "comment_others", "close", "export")
    default_sort = "-updated_at"
    #: The list template (tickets/list.html) draws these cells itself; keep the two in step.
    columns = [
        Column(Ticket.number, _l("Number"), search=True, link=True),
        Column(Ticket.title, _l("Title"), search=True, sort=True, link=True),
        Column(Ticket.requester_name, _l("Requester"), search=True, sort=True),
        Column(Ticket.service_name, _l("Service"), search=True, sort=True),
        Column(Ticket.status, _l("Status"), sort=True, filter=True, choices=state_labels, badge=state_colour),
        Column(Ticket.priority, _l("Priority"), sort=True, filter=True, choices=PRIORITIES),
        Column(Ticket.assignee_name, _l("Assigned to"), sort=True),
        Column(Ticket.updated_at, _l("Last update"), sort=True),
    ]
    list_template = "tickets/list.html"
    #: The global search reads one lower-cased column (number, title, requester and service).
    search_field = Ticket.search_text
    list_params = ("show", "state", "created_from", "created_to", "closed_from", "closed_to")
    migrations = MIGRATIONS
    detail_template = "tickets/detail.html"

    # --- scoping -----------------------------------------------------------------------------
    def filter_list(self, query: pw.ModelSelect, params: Mapping[str, str], user: Any) -> pw.ModelSelect:
        return list_filters(query, params, user)

    def base_query(self) -> pw.ModelSelect:
        if has_request_context():
            if request.endpoint == "tickets.detail":
                return (Ticket.select(Ticket, TicketCategory)
                        .join(TicketCategory, pw.JOIN.LEFT_OUTER, on=(Ticket.category == TicketCategory.id))
                        .switch(Ticket))
        return Ticket.select()

    # --- hooks -------------------------------------------------------------------------------
    def buttons(self):
        return [
            Button("tickets.new", _l("New request"), endpoint="tickets.create", icon="plus-circle",
                   description=_l("Ask support for help")),
            Button("tickets.list", _l("My requests"), endpoint="tickets.list", icon="life-preserver",
                   description=_l("Follow your support requests"), style="secondary"),
        ]

    def register_views(self, blueprint) -> None:
        from .views import register

        register(self, blueprint)

    def admin_views(self):
        from .admin import admin_views

        return admin_views(self)

    def connect_signals(self) -> None:
        from crm_portal import signals

        from .change_requests import open_change_request

        signals.change_requested.connect(open_change_request, weak=False)

    def template_hook(self, hook: str, **context: Any) -> Any:
        if hook == "dashboard.after-buttons":
            from .views import dashboard_panel

            return dashboard_panel(self)
        return None

    def periodic_tasks(self):
        return [("autoclose", "*/10 * * * *", workflow.autoclose)]

    def demo_data(self, ctx) -> None:
        from .demo import load

        load(ctx)

    def init_app(self, app) -> None:
        import click
        from flask.cli import with_appcontext

        app.config.setdefault("TICKETS_AUTOCLOSE_DAYS", 3)
        app.config.setdefault("TICKETS_RESPONSE_HOURS", 8)
        app.config.setdefault("TICKETS_AUTOCLOSE_INTERVAL", 60)
        app.config.setdefault("TICKETS_AUTOCLOSE_IN_REQUESTS", "auto")
        autoclose_setting(app)  # a misspelt value stops the start-up, not every request
        state = {"installed": False, "last_autoclose": 0.0, "lock": threading.Lock()}
        app.extensions["tickets"] = state

        @app.before_request
        def _tickets_housekeeping():
            if request.endpoint and request.endpoint.endswith("static"):
                return None
            if not state["installed"]:
                ensure_installed(state)
            if autoclose_in_requests(app):
                lazy_autoclose(app, state)
            return None

        from .views import jinja_helpers

        app.jinja_env.globals.update(jinja_helpers())

        @click.command("tickets-autoclose")
        @click.option("--days", type=float, default=None, help="Days after resolution (default TICKETS_AUTOCLOSE_DAYS).")
        @with_appcontext
        def autoclose_command(days: float | None) -> None:
            """Close resolved tickets nobody answered for TICKETS_AUTOCLOSE_DAYS days."""
            with db.connection_context():
                workflow.install_defaults()
                closed = workflow.autoclose(days=days)
            click.echo(f"closed {len(closed)} ticket(s)" + (f": {', '.join(closed)}" if closed else ""))

        app.cli.add_command(autoclose_command)


def ensure_installed(state: dict[str, Any]) -> None:
    """Seed the default workflow once per process (idempotent; tables may not exist yet)."""
    try:
        workflow.install_defaults()
        state["installed"] = True
    except (pw.OperationalError, pw.ProgrammingError, pw.IntegrityError, pw.InternalError):
        current_app.logger.debug("tickets: defaults not installed yet", exc_info=True)


_SETTING_WORDS = {"auto": None, "true": True, "yes": True, "on": True, "1": True,
                  "false": False, "no": False, "off": False, "0": False}


def autoclose_setting(app) -> bool | None:
    """TICKETS_AUTOCLOSE_IN_REQUESTS as True, False or None ("auto"); ValueError when unknown."""
    value = app.config.get("TICKETS_AUTOCLOSE_IN_REQUESTS", "auto")
    if isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key not in _SETTING_WORDS:
        raise ValueError(f"TICKETS_AUTOCLOSE_IN_REQUESTS = {value!r}: use \"auto\", true or false")
    return _SETTING_WORDS[key]


def autoclose_in_requests(app) -> bool:
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


def lazy_autoclose(app, state: dict[str, Any]) -> None:
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


__all__ = ["TicketsModule", "TYPES", "PRIORITIES", "SEVERITIES"]
