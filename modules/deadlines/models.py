"""Deadlines' data: the deadlines, the calendar feed secrets and the reminders already queued."""
from __future__ import annotations

import datetime as dt
from typing import Any

import peewee as pw

from crm_portal.api import BaseModel, Company, Contact, _l, utcnow

KINDS = ("renewal", "licence", "support", "invoice", "intervention", "other")
KIND_LABELS = {
    "renewal": _l("Contract renewal"),
    "licence": _l("Licence expiry"),
    "support": _l("Support expiry"),
    "invoice": _l("Invoice due"),
    "intervention": _l("Planned intervention"),
    "other": _l("Other"),
}
#: A deadline within this many days is "soon" (amber in the list).
SOON_DAYS = 30
STATE_LABELS = {
    "done": _l("Done"),
    "overdue": _l("Overdue"),
    "soon": _l("Within 30 days"),
    "later": _l("Scheduled"),
}


class Deadline(BaseModel):
    company = pw.ForeignKeyField(Company, backref="deadlines", on_delete="CASCADE", index=True)
    #: The contact concerned (own scope); empty: the whole company.
    contact = pw.ForeignKeyField(Contact, backref="deadlines", null=True, on_delete="CASCADE", index=True)
    title = pw.CharField(max_length=200)
    kind = pw.CharField(max_length=20, default="other", index=True, choices=[(k, k) for k in KINDS])
    due_date = pw.DateField(index=True)
    description = pw.TextField(null=True)
    reference = pw.CharField(max_length=100, null=True)
    done = pw.BooleanField(default=False, index=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "deadlines_deadline"

    def state(self, today: dt.date | None = None) -> str:
        """``done``, ``overdue``, ``soon`` (within 30 days) or ``later``."""
        today = today or dt.date.today()
        if self.done:
            return "done"
        if self.due_date < today:
            return "overdue"
        if self.due_date <= today + dt.timedelta(days=SOON_DAYS):
            return "soon"
        return "later"


class CalendarToken(BaseModel):
    """The secret of a contact's calendar feed; deleting the row revokes the feed."""

    contact = pw.ForeignKeyField(Contact, backref="calendar_tokens", unique=True, on_delete="CASCADE")
    token = pw.CharField(max_length=64, unique=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "deadlines_calendar_token"


class DeadlineReminder(BaseModel):
    """A reminder already queued: one per deadline, recipient and due date (a moved date reminds again)."""

    deadline = pw.ForeignKeyField(Deadline, backref="reminders", on_delete="CASCADE")
    contact = pw.ForeignKeyField(Contact, on_delete="CASCADE", index=True)
    due_date = pw.DateField()
    sent_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "deadlines_reminder"
        indexes = ((("deadline", "contact", "due_date"), True),)


def scoped(query: pw.ModelSelect, user: Any, scope: str) -> pw.ModelSelect:
    """Restrict ``query`` to the deadlines ``user`` may see: *own*, theirs and the company-wide
    ones (no contact); *company*, every deadline of their company."""
    if scope == "company" and user.company_id is not None:
        return query.where(Deadline.company == user.company_id)
    mine = Deadline.contact == user.contact_id
    if user.company_id is not None:
        mine = mine | ((Deadline.company == user.company_id) & Deadline.contact.is_null())
    return query.where(mine)
