"""Tables of the tickets module: tickets, their conversation, history and attachments, and the
admin-configurable workflow (states, transitions), categories and guided questions."""
from __future__ import annotations

import json

import peewee as pw

from crm_portal.api import BaseModel, Company, Contact, Localized, StaffUser, _l, utcnow

TYPES = {"question": _l("Question"), "problem": _l("Problem / anomaly"), "request": _l("Request")}
PRIORITIES = {"urgent": _l("Urgent"), "medium": _l("Medium"), "low": _l("Not urgent")}
SEVERITIES = {"blocking": _l("Blocking"), "non_blocking": _l("Non-blocking")}
COMMENT_KINDS = {"public": _l("Public"), "private": _l("Private note to support"), "internal": _l("Internal note")}
ACTOR_TYPES = ("customer", "staff", "system")
#: Badge/chart colours: Bootstrap's, plus a few the module's stylesheet adds (text-bg-<name>).
COLORS = {"primary": "#0d6efd", "info": "#0dcaf0", "warning": "#ffc107", "indigo": "#6610f2",
          "teal": "#20c997", "purple": "#6f42c1", "orange": "#fd7e14", "success": "#198754",
          "danger": "#dc3545", "secondary": "#6c757d", "dark": "#212529", "pink": "#d63384"}


#: Ids are INTEGER columns (32 bits on PostgreSQL): a larger number in a URL or form names no row,
#: and handing it to the database would fail ("integer out of range", SQLite's OverflowError).
MAX_ID = 2**31 - 1


def is_valid_id(value: object) -> bool:
    """Whether ``value`` (an int or a string of digits) can be the id of a row."""
    try:
        number = int(str(value).strip())
    except ValueError:
        return False
    return 0 < number <= MAX_ID


class TicketState(Localized, BaseModel):
    """A workflow state. ``final`` states (closed, discarded) accept no change from customers."""

    key = pw.CharField(max_length=32, unique=True)
    label_en = pw.CharField(max_length=100)
    label_it = pw.CharField(max_length=100, null=True)
    description_en = pw.CharField(max_length=255, null=True)
    description_it = pw.CharField(max_length=255, null=True)
    #: Colour of the badge and of the dashboard charts (a name of :data:`COLORS`).
    color = pw.CharField(max_length=32, default="secondary", choices=[(c, c) for c in COLORS])
    position = pw.IntegerField(default=0)
    final = pw.BooleanField(default=False)
    #: Moving into this state asks the operator for a date (Planned).
    needs_date = pw.BooleanField(default=False)

    class Meta:
        table_name = "tickets_state"

    @property
    def hex(self) -> str:
        return COLORS.get(self.color, COLORS["secondary"])

    def description_for(self, language: str | None) -> str:
        value = getattr(self, f"description_{language}", None) if language else None
        return value or self.description_en or ""


class TicketTransition(BaseModel):
    """An allowed move ``from_state`` → ``to_state`` for an ``actor`` (staff, customer or system),
    for the ticket ``types`` listed (comma-separated; empty: every type)."""

    from_state = pw.ForeignKeyField(TicketState, backref="transitions_out", on_delete="CASCADE")
    to_state = pw.ForeignKeyField(TicketState, backref="transitions_in", on_delete="CASCADE")
    actor = pw.CharField(max_length=16, default="staff", choices=[(a, a) for a in ACTOR_TYPES])
    types = pw.CharField(max_length=100, default="")

    class Meta:
        table_name = "tickets_transition"
        indexes = ((("from_state", "to_state", "actor"), True),)

    def __str__(self) -> str:
        return f"{self.from_state_id} → {self.to_state_id} ({self.actor})"


class TicketCategory(Localized, BaseModel):
    key = pw.CharField(max_length=64, unique=True)
    label_en = pw.CharField(max_length=100)
    label_it = pw.CharField(max_length=100, null=True)
    position = pw.IntegerField(default=0)
    active = pw.BooleanField(default=True)

    class Meta:
        table_name = "tickets_category"


class TicketQuestion(Localized, BaseModel):
    """An extra question asked in the request form for a category and/or a service (both empty:
    every request)."""

    category = pw.ForeignKeyField(TicketCategory, backref="questions", null=True, on_delete="CASCADE")
    service_id = pw.IntegerField(null=True, index=True)
    label_en = pw.CharField(max_length=255)
    label_it = pw.CharField(max_length=255, null=True)
    required = pw.BooleanField(default=False)
    position = pw.IntegerField(default=0)
    active = pw.BooleanField(default=True)

    class Meta:
        table_name = "tickets_question"


class TicketCounter(BaseModel):
    """The last number given (one row per ``name``); incremented in the creating transaction."""

    name = pw.CharField(max_length=32, unique=True)
    value = pw.IntegerField(default=0)

    class Meta:
        table_name = "tickets_counter"


class Ticket(BaseModel):
    seq = pw.IntegerField(unique=True)
    number = pw.CharField(max_length=20, unique=True)
    title = pw.CharField(max_length=200)
    description = pw.TextField()
    type = pw.CharField(max_length=16, default="question", choices=list(TYPES.items()))
    category = pw.ForeignKeyField(TicketCategory, null=True, on_delete="SET NULL", index=True)
    priority = pw.CharField(max_length=16, default="medium", choices=list(PRIORITIES.items()))
    severity = pw.CharField(max_length=16, default="non_blocking", choices=list(SEVERITIES.items()))
    status = pw.CharField(max_length=32, default="open", index=False)
    # Indexed together with updated_at/status below (the list and dashboard queries).
    # RESTRICT: a contact with tickets cannot be deleted (deactivate them instead); the history stays.
    contact = pw.ForeignKeyField(Contact, backref="tickets", on_delete="RESTRICT", index=False)
    company = pw.ForeignKeyField(Company, backref="tickets", null=True, on_delete="SET NULL", index=False)
    requester_name = pw.CharField(max_length=200, default="")
    # Other modules' records are kept as a plain id plus the name at the time of the request.
    service_id = pw.IntegerField(null=True)
    service_name = pw.CharField(max_length=200, null=True)
    subcategory_id = pw.IntegerField(null=True)
    subcategory_name = pw.CharField(max_length=200, null=True)
    product_id = pw.IntegerField(null=True)
    product_name = pw.CharField(max_length=200, null=True)
    #: JSON list of {"question": label, "answer": text}: the guided questions as asked.
    answers = pw.TextField(null=True)
    assignee = pw.ForeignKeyField(StaffUser, null=True, on_delete="SET NULL", index=True)
    assignee_name = pw.CharField(max_length=200, null=True)
    planned_for = pw.DateField(null=True)
    hours_spent = pw.DecimalField(max_digits=8, decimal_places=2, default=0)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    response_due_at = pw.DateTimeField(null=True)
    taken_at = pw.DateTimeField(null=True)
    resolved_at = pw.DateTimeField(null=True)
    closed_at = pw.DateTimeField(null=True)
    rating = pw.SmallIntegerField(null=True)
    rating_comment = pw.TextField(null=True)
    public_comments = pw.IntegerField(default=0)
    #: Incremented by every change a customer should be told about (a public reply by support, a
    #: state change): a contact has news when it is above the ``seen_seq`` of their
    #: :class:`TicketRead` row. A counter, not a time, so that two changes in the same instant count.
    news_seq = pw.IntegerField(default=0)
    #: The staff member who opened the ticket on the customer's behalf (phone, email); empty when
    #: the customer opened it themselves.
    opened_by_staff = pw.ForeignKeyField(StaffUser, null=True, on_delete="SET NULL", index=False,
                                         backref="tickets_opened")
    #: The integration (its name) that opened the ticket through the REST API, on the contact's
    #: behalf or acting as them; empty for tickets opened in the portal or the admin.
    opened_by_integration = pw.CharField(max_length=100, null=True)
    #: Lower-case number, title, requester and service: what the list's global search reads (one
    #: LIKE per row instead of one per column).
    search_text = pw.TextField(default="")

    class Meta:
        table_name = "tickets_ticket"
        indexes = (
            (("company", "updated_at", "id"), False),
            (("contact", "updated_at", "id"), False),
            (("company", "status", "updated_at"), False),
            (("contact", "status", "updated_at"), False),
            (("status", "resolved_at"), False),
            (("status", "response_due_at"), False),
            (("updated_at", "id"), False),
            # Covers the global search's count: the company's rows are read from the index alone.
            (("company", "search_text"), False),
        )

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    def refresh_search_text(self) -> None:
        parts = (self.number, self.title, self.requester_name, self.service_name, self.subcategory_name)
        self.search_text = " ".join(str(p) for p in parts if p).lower()

    @property
    def answer_list(self) -> list[dict[str, str]]:
        try:
            data = json.loads(self.answers or "[]")
        except ValueError:
            return []
        return [a for a in data if isinstance(a, dict)]


class TicketComment(BaseModel):
    """One message of a ticket's conversation. ``public``: customer and support; ``private``: a
    customer's note only support (and its author) reads; ``internal``: staff only."""

    ticket = pw.ForeignKeyField(Ticket, backref="comments", on_delete="CASCADE", index=False)
    kind = pw.CharField(max_length=16, default="public", choices=list(COMMENT_KINDS.items()))
    body = pw.TextField()
    author_contact = pw.ForeignKeyField(Contact, null=True, on_delete="SET NULL", index=True)
    author_staff = pw.ForeignKeyField(StaffUser, null=True, on_delete="SET NULL", index=True)
    author_name = pw.CharField(max_length=200, default="")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "tickets_comment"
        indexes = ((("ticket", "created_at"), False),)


class TicketHistory(BaseModel):
    """One state change: who, when, from, to."""

    ticket = pw.ForeignKeyField(Ticket, backref="history", on_delete="CASCADE", index=False)
    from_state = pw.CharField(max_length=32, null=True)
    to_state = pw.CharField(max_length=32)
    actor_type = pw.CharField(max_length=16, choices=[(a, a) for a in ACTOR_TYPES])
    actor_name = pw.CharField(max_length=200, default="")
    #: Why the change was made, when its author said so (the customer's reason for withdrawing).
    note = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "tickets_history"
        indexes = ((("ticket", "created_at"), False),)


class TicketAttachment(BaseModel):
    #: The stored files of these rows are removed after the commit that deletes them (crm_portal.uploads).
    file_area = "tickets"
    file_fields = ("stored_name",)

    ticket = pw.ForeignKeyField(Ticket, backref="attachments", on_delete="CASCADE", index=False)
    stored_name = pw.CharField(max_length=255, unique=True)
    original_name = pw.CharField(max_length=255)
    size = pw.BigIntegerField(default=0)
    mimetype = pw.CharField(max_length=128, default="application/octet-stream")
    kind = pw.CharField(max_length=32, null=True)
    uploaded_by = pw.CharField(max_length=200, default="")
    author_contact = pw.ForeignKeyField(Contact, null=True, on_delete="SET NULL")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "tickets_attachment"
        indexes = ((("ticket", "created_at"), False),)


class TicketRead(BaseModel):
    """How far a contact has read a ticket: the ticket's ``news_seq`` when they last opened it."""

    ticket = pw.ForeignKeyField(Ticket, backref="reads", on_delete="CASCADE", index=False)
    contact = pw.ForeignKeyField(Contact, backref="ticket_reads", on_delete="CASCADE", index=True)
    seen_seq = pw.IntegerField(default=0)
    seen_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "tickets_read"
        # One row per ticket and contact: the list joins it on both without multiplying rows.
        indexes = ((("ticket", "contact"), True),)


MODELS = [TicketState, TicketTransition, TicketCategory, TicketQuestion, TicketCounter, Ticket,
          TicketComment, TicketHistory, TicketAttachment, TicketRead]
