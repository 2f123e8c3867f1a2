"""Deadlines (Scadenze): contract renewals, licence and support expiries, invoices, interventions.

A deadline belongs to a company and may concern one contact. *Own* scope shows the user's
deadlines and the company-wide ones (no contact); *company* scope every deadline of the company.
The list is sorted by date; overdue dates are red and those within 30 days amber. The open ones
due within 30 days, and the overdue ones, appear in the dashboard's "due soon" widget
(``due_items``).

Each user can publish a private iCalendar feed: a secret URL (``/deadlines-feed/<token>.ics``),
stored per contact in :class:`~.models.CalendarToken`, shown, regenerated or revoked on
``/deadlines/calendar`` (``views.py``). The feed needs no login; it answers 404 for an unknown or
revoked token and contains only what the scoping gate gives that contact. Email reminders go out
``DEADLINES_REMIND_DAYS`` (default 7) days ahead, once per deadline and recipient
(:func:`.jobs.queue_due_reminders`, run daily by the worker or by ``crm-portal deadlines-remind``).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from crm_portal.api import (
    ActionLabel,
    Button,
    Column,
    DemoContext,
    DueItem,
    Field,
    Module,
    NotificationEvent,
    Section,
    _l,
    date_badge,
)

from . import admin, demo, jobs, models, views
from .models import KIND_LABELS, SOON_DAYS, STATE_LABELS, CalendarToken, Deadline, DeadlineReminder
from .views import bp


class DeadlinesModule(Module):
    name = "deadlines"
    event_name = "deadline"
    label = _l("Deadlines")
    icon = "calendar-event"
    description = _l("Renewals, expiries, invoices and planned interventions.")
    position = 35
    models = (Deadline, CalendarToken, DeadlineReminder)
    record = Deadline
    sync_type = "deadline"  # a CRM may push them (docs/api.md, CRM sync)
    sync_fields = ("company", "contact", "title", "kind", "due_date", "description", "reference", "done")
    contact_field = Deadline.contact
    company_field = Deadline.company
    default_sort = "due_date"
    actions = ("view", "export")
    action_labels = {
        "view": ActionLabel(_l("See deadlines"), _l("Renewals, expiries and invoices due, as a list and a calendar.")),
        "export": ActionLabel(_l("Export deadlines"), _l("Download the list of deadlines as a CSV spreadsheet.")),
    }
    notifications = [NotificationEvent(jobs.REMINDER, _l("Reminders of upcoming deadlines"))]
    list_template = "deadlines/list.html"
    blueprint = bp
    columns = [
        Column(Deadline.due_date, _l("Date"), sort=True, badge=date_badge(SOON_DAYS)),
        Column(Deadline.title, _l("Deadline"), search=True, sort=True, link=True),
        Column(Deadline.kind, _l("Type"), sort=True, filter=True, choices=KIND_LABELS),
        Column(Deadline.reference, _l("Reference"), search=True),
        Column(Deadline.done, _l("Done"), filter=True, choices={True: _l("Yes"), False: _l("No")}),
    ]
    detail = [
        Section(_l("Deadline"), [
            Field("title", _l("Deadline")),
            Field("kind", _l("Type"), choices=KIND_LABELS),
            Field("due_date", _l("Date")),
            Field("due_date", _l("State"), format=lambda value, row: str(STATE_LABELS[row.state()])),
            Field("reference", _l("Reference")),
            Field("description", _l("Description"), wide=True),
            Field("contact.full_name", _l("Concerns")),
        ]),
    ]

    def scope_query(self, query, user, scope):
        return models.scoped(query, user, scope)

    def buttons(self):
        return [Button("deadlines.list", _l("Deadlines"), endpoint="deadlines.list", icon="calendar-event",
                       description=_l("Renewals, expiries and due dates"))]

    def admin_views(self):
        return admin.views()

    def periodic_tasks(self):
        return jobs.PERIODIC

    def connect_signals(self) -> None:
        jobs.connect()

    def template_hook(self, hook: str, **context: Any) -> Any:
        return views.list_actions() if hook == "list.actions" and context.get("module") is self else None

    def due_items(self, user: Any, today: dt.date, until: dt.date, limit: int) -> list[DueItem]:
        return views.due_items(self, user, today, until, limit)

    def init_app(self, app) -> None:
        jobs.init_app(app)
        views.init_app(app)

    def demo_data(self, ctx: DemoContext) -> None:
        demo.load(ctx)
