"""Tickets: the helpdesk. Customers open requests through a guided form, follow the conversation
with support, attach files, and close resolved requests with a rating; operators work the queue in
the admin. See docs/tickets.md."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import peewee as pw

from crm_portal.api import ActionLabel, Button, Column, Field, Module, NotificationEvent, Section, _l

from . import admin, demo, jobs, views, workflow
from .migrations import MIGRATIONS
from .models import MODELS, PRIORITIES, Ticket


class TicketsModule(Module):
    name = "tickets"
    event_name = "ticket"
    label = _l("Support requests")
    icon = "life-preserver"
    description = _l("Ask support for help and follow your requests.")
    position = 10
    demo_after = ("services",)  # demo tickets are about the demo contracts
    models = MODELS
    record = Ticket
    contact_field = Ticket.contact
    company_field = Ticket.company
    actions = ("view", "create", "comment", "comment_others", "close", "export")
    action_labels = {
        "view": ActionLabel(_l("See requests"), _l("The list of requests and each one with its conversation.")),
        "create": ActionLabel(_l("Open new requests"), _l("Ask support for help with the guided form.")),
        "comment": ActionLabel(_l("Reply"), _l("Write in the conversation of their own requests and attach files.")),
        "comment_others": ActionLabel(_l("Reply to colleagues' requests"),
                                      _l("Also write in requests opened by colleagues (whole company scope).")),
        "close": ActionLabel(_l("Close requests"), _l("Close resolved requests and rate the support received.")),
        "export": ActionLabel(_l("Export requests"), _l("Download the list of requests as a CSV spreadsheet.")),
    }
    notifications = [
        NotificationEvent(jobs.REPLY, _l("Replies from support to my requests")),
        NotificationEvent(jobs.STATUS, _l("Changes of state of my requests"),
                          _l("Taken in charge, waiting for you, resolved, closed …")),
        NotificationEvent(jobs.CREATED, _l("A confirmation of each request I open"), default=False),
        NotificationEvent(jobs.COLLEAGUES, _l("News on my colleagues' requests"),
                          _l("New requests, replies and changes of state, for the requests of colleagues "
                             "you can see."), default=False),
    ]
    default_sort = "-updated_at"
    #: The list template (tickets/list.html) draws these cells itself; keep the two in step.
    columns = [
        Column(Ticket.number, _l("Number"), search=True, link=True),
        # Names sort case-insensitively ("acme" beside "Acme"), states in the workflow's order.
        Column(Ticket.title, _l("Title"), search=True, sort=True, link=True, sort_by=pw.fn.LOWER(Ticket.title)),
        Column(Ticket.requester_name, _l("Requester"), search=True, sort=True,
               sort_by=pw.fn.LOWER(Ticket.requester_name)),
        Column(Ticket.service_name, _l("Service"), search=True, sort=True, sort_by=pw.fn.LOWER(Ticket.service_name)),
        Column(Ticket.status, _l("Status"), sort=True, filter=True, choices=workflow.state_labels,
               badge=workflow.state_colour, sort_by=workflow.state_order),
        Column(Ticket.priority, _l("Priority"), sort=True, filter=True, choices=PRIORITIES,
               sort_by=pw.Case(Ticket.priority, [(key, rank) for rank, key in enumerate(PRIORITIES)], len(PRIORITIES))),
        Column(Ticket.assignee_name, _l("Assigned to"), sort=True, sort_by=pw.fn.LOWER(Ticket.assignee_name)),
        Column(Ticket.updated_at, _l("Last update"), sort=True),
    ]
    #: The ticket page draws itself (tickets/detail.html); these fields are what the REST API shows
    #: of a ticket besides the columns (and what its PATCH changes: category, planned date, assignee).
    detail = [
        Section(_l("Request"), [
            Field("type", _l("Type")), Field("category", _l("Category")), Field("severity", _l("Severity")),
            Field("planned_for", _l("Planned for")), Field("assignee", _l("Assigned to")),
            Field("contact", _l("Requester")), Field("company", _l("Company")),
            Field("description", _l("Description"), wide=True),
        ]),
    ]
    list_template = "tickets/list.html"
    #: The global search reads one lower-cased column (number, title, requester and service).
    search_field = Ticket.search_text
    list_params = ("show", "state", "unread", "created_from", "created_to", "closed_from", "closed_to")
    detail_template = "tickets/detail.html"
    blueprint = views.bp
    migrations = MIGRATIONS

    def buttons(self):
        return [
            Button("tickets.new", _l("New request"), endpoint="tickets.create", icon="plus-circle",
                   description=_l("Ask support for help")),
            Button("tickets.list", _l("My requests"), endpoint="tickets.list", icon="life-preserver",
                   description=_l("Follow your support requests"), style="secondary"),
        ]

    def filter_list(self, query: pw.ModelSelect, params: Mapping[str, str], user: Any) -> pw.ModelSelect:
        return views.filter_list(query, params, user)

    def list_rows(self, query: pw.ModelSelect, user: Any) -> pw.ModelSelect:
        return views.list_rows(query, user)

    def list_context(self, page: Any, user: Any) -> Mapping[str, Any]:
        return views.list_context(page, user)

    def detail_context(self, record: Any, user: Any) -> Mapping[str, Any]:
        return views.detail_context(record, user)

    def template_hook(self, hook: str, **context: Any) -> Any:
        return views.dashboard_panel(self) if hook == "dashboard.after-buttons" else None

    def category_choices(self) -> list[tuple[int, str]]:
        """The active ticket categories as (id, label): what the services admin maps services and
        sub-categories to (looked up through the registry)."""
        return views.category_choices()

    def admin_views(self):
        return admin.views(self)

    def connect_signals(self) -> None:
        jobs.connect()

    def periodic_tasks(self):
        return jobs.PERIODIC

    def demo_data(self, ctx) -> None:
        demo.load(ctx)

    def init_app(self, app) -> None:
        jobs.init_app(app)
        views.init_app(app)
