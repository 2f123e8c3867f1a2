"""Quotes (Preventivi): the quotes we sent the customer, with lines and exact totals.

Customers see every quote but drafts; a quote that is *sent* and not past its ``valid_until`` date
can be accepted or rejected (action ``accept``) with an optional comment. The decision is recorded
(who, when, comment), audited and announced to staff through the outbox (``quotes_decided``).
Quotes awaiting a decision that expire within 30 days appear in the dashboard's "due soon" widget
(``due_items``).
Each quote has a printable page and a PDF (``pdf.py``). Totals follow the rule documented in
``models.py``; the views are in ``views.py``, the staff side in ``admin.py``.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from crm_portal.api import ActionLabel, Button, Column, DemoContext, DueItem, Field, Module, Section, _l, date_badge

from . import admin, demo, views
from .models import CUSTOMER_STATUSES, Quote, QuoteLine
from .views import bp, status_label


class QuotesModule(Module):
    name = "quotes"
    event_name = "quote"
    label = _l("Quotes")
    icon = "file-earmark-text"
    description = _l("Quotes we sent you: review, accept or reject them and download the PDF.")
    position = 20
    models = (Quote, QuoteLine)
    record = Quote
    contact_field = Quote.contact
    company_field = Quote.company
    default_sort = "-date"
    actions = ("view", "accept", "export")
    action_labels = {
        "view": ActionLabel(_l("See quotes"), _l("The quotes we sent, their lines and their PDF.")),
        "accept": ActionLabel(_l("Accept or reject quotes"),
                              _l("Decide on quotes that are sent and still valid, with a comment.")),
        "export": ActionLabel(_l("Export quotes"), _l("Download the list of quotes as a CSV spreadsheet.")),
    }
    detail_template = "quotes/detail.html"
    blueprint = bp
    columns = [
        Column(Quote.number, _l("Number"), search=True, sort=True, link=True),
        Column(Quote.subject, _l("Subject"), search=True, sort=True),
        Column(Quote.date, _l("Date"), sort=True),
        Column(Quote.valid_until, _l("Valid until"), sort=True, badge=date_badge(7, past="secondary")),
        Column(Quote.status, _l("Status"), sort=True, format=status_label),
        Column(Quote.contact, _l("Addressed to"), display="last_name", search=True, sort=True,
               format=lambda contact, row: contact.full_name),
        Column(Quote.gross_total, _l("Total"), sort=True),
    ]
    detail = [
        Section(_l("Quote"), [
            Field("number", _l("Number")),
            Field("subject", _l("Subject")),
            Field("date", _l("Date")),
            Field("valid_until", _l("Valid until")),
            Field("status", _l("Status"), format=status_label),
            Field("company.name", _l("Customer")),
            Field("notes", _l("Notes"), wide=True),
        ]),
    ]

    def scope_query(self, query, user, scope):
        # Drafts never reach customers.
        return super().scope_query(query, user, scope).where(Quote.status.in_(CUSTOMER_STATUSES))

    def buttons(self):
        return [Button("quotes.list", _l("Quotes"), endpoint="quotes.list", icon="file-earmark-text",
                       description=_l("Review and accept our quotes"))]

    def admin_views(self):
        return admin.views(self)

    def detail_context(self, record: Quote, user: Any):
        return views.detail_context(record, user)

    def due_items(self, user: Any, today: dt.date, until: dt.date, limit: int) -> list[DueItem]:
        return views.due_items(self, user, today, until, limit)

    def demo_data(self, ctx: DemoContext) -> None:
        demo.load(ctx)
