"""The ticket workflow: default states and transitions, numbering, and every change a ticket goes
through (creation, comments, state changes, customer close, auto-close).

Each function that changes a ticket expects to run inside ``db.atomic()`` and sends the module's
signals (:mod:`.signals`) there: the change, its history row and whatever the receivers write (the
emails queued in the outbox by :mod:`.jobs`) commit or roll back together. The state keys below
have a built-in meaning; admins may relabel them, recolour them, add states and edit transitions.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from flask import current_app, g, has_app_context, has_request_context
from peewee import JOIN, Case, fn

from crm_portal.api import Contact, ProcessCache, StaffUser, WorkingHours, db, utcnow

from . import signals
from .models import (
    Ticket,
    TicketAttachment,
    TicketCategory,
    TicketComment,
    TicketCounter,
    TicketHistory,
    TicketRead,
    TicketState,
    TicketTransition,
)

log = logging.getLogger("crm_portal.tickets")

OPEN = "open"
WAITING_SUPPORT = "waiting_support"
WAITING_CUSTOMER = "waiting_customer"
IN_PROGRESS = "in_progress"
PLANNED = "planned"
WAITING_DEV = "waiting_dev"
RESOLVED = "resolved"
CLOSED = "closed"
BLOCKED = "blocked"
DISCARDED = "discarded"

# key: (English, Italian, colour, final, needs date, English description, Italian description)
DEFAULT_STATES: dict[str, tuple[str, str, str, bool, bool, str, str]] = {
    OPEN: ("Open", "Aperto", "primary", False, False, "New request", "Nuova richiesta"),
    WAITING_SUPPORT: ("Waiting for support", "Attesa supporto", "info", False, False,
                      "Support is working on an answer", "In attesa di risposta dell'assistenza"),
    WAITING_CUSTOMER: ("Waiting for customer", "Attesa cliente", "warning", False, False,
                       "Support asked you for more information", "L'assistenza ha chiesto altre informazioni"),
    IN_PROGRESS: ("In progress", "In corso", "indigo", False, False,
                  "An activity is needed and under way", "È necessaria un'attività, in lavorazione"),
    PLANNED: ("Planned", "Pianificato", "teal", False, True,
              "Activity planned for an agreed date", "Attività pianificata a una data concordata"),
    WAITING_DEV: ("Waiting for development", "Attesa programmazione", "purple", False, False,
                  "With the analysis and development team", "In gestione al settore analisi e sviluppo"),
    RESOLVED: ("Resolved", "Risolto", "success", False, False,
               "Resolved: please confirm or tell us it is not",
               "Risolto: conferma la chiusura o segnalaci il contrario"),
    CLOSED: ("Closed", "Chiuso", "secondary", True, False, "Closed", "Chiuso"),
    BLOCKED: ("Blocked", "Bloccato", "danger", False, False,
              "Administrative block: please contact our administration",
              "Blocco amministrativo: contattare l'amministrazione"),
    DISCARDED: ("Discarded", "Non considerare", "dark", True, False,
                "Duplicate or not a support request", "Duplicato o richiesta non di assistenza"),
}

_ALL = ""
_PR = "problem,request"
_Q = "question"
# (from, to, actor, types)
DEFAULT_TRANSITIONS: list[tuple[str, str, str, str]] = [
    (OPEN, WAITING_SUPPORT, "staff", _ALL),
    (OPEN, WAITING_CUSTOMER, "staff", _ALL),
    (WAITING_SUPPORT, RESOLVED, "staff", _Q),
    (WAITING_SUPPORT, WAITING_CUSTOMER, "staff", _ALL),
    (WAITING_SUPPORT, IN_PROGRESS, "staff", _PR),
    (WAITING_SUPPORT, WAITING_DEV, "staff", _PR),
    (WAITING_CUSTOMER, WAITING_SUPPORT, "staff", _ALL),
    (WAITING_CUSTOMER, WAITING_SUPPORT, "customer", _ALL),
    (WAITING_CUSTOMER, RESOLVED, "staff", _Q),
    (IN_PROGRESS, PLANNED, "staff", _PR),
    (IN_PROGRESS, WAITING_DEV, "staff", _PR),
    (IN_PROGRESS, WAITING_CUSTOMER, "staff", _PR),
    (IN_PROGRESS, RESOLVED, "staff", _PR),
    (PLANNED, IN_PROGRESS, "staff", _PR),
    (PLANNED, RESOLVED, "staff", _PR),
    (PLANNED, WAITING_CUSTOMER, "staff", _PR),
    (WAITING_DEV, IN_PROGRESS, "staff", _PR),
    (WAITING_DEV, PLANNED, "staff", _PR),
    (WAITING_DEV, RESOLVED, "staff", _PR),
    (RESOLVED, CLOSED, "customer", _ALL),
    (RESOLVED, WAITING_SUPPORT, "customer", _ALL),
    (RESOLVED, CLOSED, "system", _ALL),
    (RESOLVED, CLOSED, "staff", _ALL),
    (RESOLVED, WAITING_SUPPORT, "staff", _ALL),
    (BLOCKED, WAITING_SUPPORT, "staff", _ALL),
]
# An operator can block or discard any ticket that is not finished.
for _key in (OPEN, WAITING_SUPPORT, WAITING_CUSTOMER, IN_PROGRESS, PLANNED, WAITING_DEV):
    DEFAULT_TRANSITIONS.append((_key, BLOCKED, "staff", _ALL))
for _key in (OPEN, WAITING_SUPPORT, WAITING_CUSTOMER, BLOCKED):
    DEFAULT_TRANSITIONS.append((_key, DISCARDED, "staff", _ALL))
#: A customer may withdraw (close) a ticket before support resolves it; a blocked one stays with
#: the administration. Existing installations get these rows from step ``0008_customer_withdraw``.
WITHDRAWABLE = (OPEN, WAITING_SUPPORT, WAITING_CUSTOMER, IN_PROGRESS, PLANNED, WAITING_DEV)
for _key in WITHDRAWABLE:
    DEFAULT_TRANSITIONS.append((_key, CLOSED, "customer", _ALL))

DEFAULT_CATEGORIES = [("payroll", "Payroll", "Paghe"), ("attendance", "Attendance", "Presenze"),
                      ("accounting", "Accounting", "Contabilità"), ("installation", "Installation", "Installazione"),
                      ("other", "Other", "Altro")]


def clock() -> dt.datetime:
    """Naive UTC now; tests replace it to freeze time."""
    return utcnow()


_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("tickets_quiet", default=False)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Make changes without notifying anyone (demo data, imports). Signals are still sent: their
    receivers check :func:`is_quiet` before emailing."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def is_quiet() -> bool:
    """Whether the current changes are made inside :func:`quiet` (no email to send)."""
    return _quiet.get()


class TransitionRefused(Exception):
    """A change the workflow does not allow from the ticket's current state (nothing was changed)."""


class TicketChanged(TransitionRefused):
    """The ticket is no longer as the caller read it (another request changed it meanwhile):
    nothing was changed; reload it and decide again."""


@dataclasses.dataclass
class Actor:
    """Who makes a change: a customer (contact), a staff user, or the system."""

    kind: str
    name: str
    contact: Contact | None = None
    staff: StaffUser | None = None
    #: The integration (its name) making the change through the REST API, alone (kind "staff":
    #: it works the ticket as support does) or acting as a contact (kind "customer").
    integration: str | None = None

    @classmethod
    def customer(cls, contact: Contact) -> Actor:
        return cls("customer", contact.full_name, contact=contact)

    @classmethod
    def for_staff(cls, staff: StaffUser) -> Actor:
        return cls("staff", staff.name or staff.email, staff=staff)

    @classmethod
    def system(cls) -> Actor:
        return cls("system", "")

    @classmethod
    def for_integration(cls, name: str, contact: Contact | None = None) -> Actor:
        """An integration of the REST API: as support (``contact`` None) or acting as ``contact``
        (exactly what that customer may do in the portal)."""
        if contact is not None:
            return cls("customer", contact.full_name, contact=contact, integration=name)
        return cls("staff", name, integration=name)


# --- defaults ----------------------------------------------------------------------------------
def install_defaults() -> list[str]:
    """Create the default states, transitions, categories and the number counter where missing.

    Idempotent, and never touches rows that exist (admins' changes stay)."""
    lines = []
    with db.atomic():
        if TicketState.select().count() == 0:
            for position, (key, (en, it, color, final, needs_date, d_en, d_it)) in enumerate(DEFAULT_STATES.items()):
                TicketState.create(key=key, label_en=en, label_it=it, color=color, final=final,
                                   needs_date=needs_date, description_en=d_en, description_it=d_it,
                                   position=position * 10)
            by_key = {s.key: s.id for s in TicketState.select()}
            TicketTransition.insert_many([
                {"from_state": by_key[a], "to_state": by_key[b], "actor": actor, "types": types}
                for a, b, actor, types in DEFAULT_TRANSITIONS
            ]).execute()
            lines.append("tickets: default workflow")
        if TicketCategory.select().count() == 0:
            for position, (key, en, it) in enumerate(DEFAULT_CATEGORIES):
                TicketCategory.create(key=key, label_en=en, label_it=it, position=position * 10)
            lines.append("tickets: default categories")
        TicketCounter.insert(name="ticket", value=0).on_conflict_ignore().execute()
    _forget_cache()
    return lines


# --- states and transitions --------------------------------------------------------------------
def _load_workflow(key: Any) -> tuple[dict[str, TicketState], list[tuple[str, str, str, frozenset[str]]]]:
    found = {s.key: s for s in TicketState.select().order_by(TicketState.position, TicketState.id)}
    from_alias = TicketState.alias("f")
    to_alias = TicketState.alias("t")
    rows = (TicketTransition.select(TicketTransition.actor, TicketTransition.types,
                                    from_alias.key.alias("from_key"), to_alias.key.alias("to_key"))
            .join_from(TicketTransition, from_alias, on=(TicketTransition.from_state == from_alias.id))
            .join_from(TicketTransition, to_alias, on=(TicketTransition.to_state == to_alias.id))
            .order_by(to_alias.position).dicts())
    moves = [(r["from_key"], r["to_key"], r["actor"],
              frozenset(t.strip() for t in (r["types"] or "").split(",") if t.strip())) for r in rows]
    return found, moves


#: The states and transitions, kept in the process until staff change either table.
workflow_cache = ProcessCache("tickets.workflow", (TicketState._meta.table_name,
                                                   TicketTransition._meta.table_name), _load_workflow)


def _workflow() -> tuple[dict[str, TicketState], list[tuple[str, str, str, frozenset[str]]]]:
    """From the process's cache in a request; outside one, read once per application context
    (a job or a command sees its own changes)."""
    if has_request_context():
        return workflow_cache.get()
    if has_app_context():
        if "_tickets_workflow" not in g:
            g._tickets_workflow = _load_workflow(None)
        return g._tickets_workflow
    return _load_workflow(None)


def _forget_cache() -> None:
    """Read the workflow again at its next use (after changing it in this request or context)."""
    workflow_cache.clear()
    if has_app_context():
        g.pop("_tickets_workflow", None)


def _load_categories(key: Any) -> dict[int, TicketCategory]:
    return {c.id: c for c in TicketCategory.select().order_by(TicketCategory.position, TicketCategory.id)}


#: The categories by id (active or not), kept in the process until staff change them.
category_cache = ProcessCache("tickets.categories", (TicketCategory._meta.table_name,), _load_categories)


def category(category_id: int | None) -> TicketCategory | None:
    """The category of that id (read-only; from the process's cache in a request)."""
    return category_cache.get().get(category_id) if category_id else None


def states() -> dict[str, TicketState]:
    """Every state by key, in order (kept in the process: read-only)."""
    return _workflow()[0]


def state(key: str) -> TicketState | None:
    return states().get(key)


def state_labels() -> dict[str, str]:
    """State key → label in the current language (the list's status column and filter)."""
    return {key: found.label for key, found in states().items()}


def state_colour(key: str, row: Any = None) -> str | None:
    """The badge colour of state ``key`` (``Column.badge``); ``None`` for an unknown key."""
    found = states().get(key)
    return found.color if found is not None else None


def state_order() -> Any:
    """A sort expression ranking ``Ticket.status`` by the workflow's order (the states' positions,
    unknown keys last): the list's ``Column.sort_by`` for the status column."""
    keys = list(states())
    if not keys:
        return Ticket.status
    return Case(Ticket.status, [(key, rank) for rank, key in enumerate(keys)], len(keys))


def open_keys() -> list[str]:
    """Keys of the states a ticket is still open in (not final)."""
    return [k for k, s in states().items() if not s.final]


def final_keys() -> list[str]:
    return [k for k, s in states().items() if s.final]


def _transitions() -> list[tuple[str, str, str, frozenset[str]]]:
    return _workflow()[1]


def allowed_targets(ticket: Ticket, actor_kind: str) -> list[str]:
    """State keys ``actor_kind`` may move ``ticket`` to from its current state."""
    return _targets(ticket.status, ticket.type, actor_kind)


def _targets(from_key: str, ticket_type: str, actor_kind: str) -> list[str]:
    out = []
    for src, dst, actor, types in _transitions():
        if src == from_key and actor == actor_kind and (not types or ticket_type in types) and dst not in out:
            out.append(dst)
    return out


def is_final(ticket: Ticket) -> bool:
    found = state(ticket.status)
    return bool(found and found.final)


# --- numbering ---------------------------------------------------------------------------------
def next_number(name: str = "ticket") -> int:
    """The next number of counter ``name``, taken inside the caller's transaction.

    The counter row is updated first: on PostgreSQL the row lock serialises concurrent creators
    (``UPDATE … RETURNING``), on SQLite the IMMEDIATE transaction already holds the write lock. A
    transaction that rolls back gives its number back, so numbers have no gaps.
    """
    if not db.in_transaction():
        raise RuntimeError("next_number() must run inside db.atomic()")
    database = db.obj
    for _ in range(2):
        update = TicketCounter.update(value=TicketCounter.value + 1).where(TicketCounter.name == name)
        if database.returning_clause:
            row = update.returning(TicketCounter.value).tuples().execute()
            values = [r[0] for r in row]
            if values:
                return int(values[0])
        elif update.execute():
            return int(TicketCounter.select(TicketCounter.value).where(TicketCounter.name == name).scalar())
        TicketCounter.insert(name=name, value=0).on_conflict_ignore().execute()
    raise RuntimeError(f"counter {name!r} unavailable")


def format_number(seq: int) -> str:
    return f"TT{seq}"


# --- changes -----------------------------------------------------------------------------------
# Every change below writes with a conditional UPDATE on the row (``WHERE id = ? AND <what the
# caller expects>``) instead of saving a copy read earlier: a copy can be stale (read before the
# transaction, or before another request committed), and saving it would undo the other change.
# Once that UPDATE succeeded, this transaction holds the row's write lock, so the copy is reloaded
# from the database and every later decision in the same transaction is made on current data.

def response_due(created: dt.datetime) -> dt.datetime | None:
    hours = current_app.config.get("TICKETS_RESPONSE_HOURS", 8) if has_app_context() else 8
    if not hours:
        return None
    try:
        working = WorkingHours.from_config(current_app.config) if has_app_context() else WorkingHours()
    except (ValueError, TypeError, KeyError):
        log.exception("invalid WORKING_HOURS; using Mon-Fri 9-18 Europe/Rome")
        working = WorkingHours()
    return working.add(created, float(hours))


def _reload(ticket: Ticket) -> None:
    """Copy the row's current values into ``ticket`` (the caller's copy may be stale)."""
    fresh = Ticket.get_or_none(Ticket.id == ticket.id)
    if fresh is None:
        raise TicketChanged("deleted")
    assignee = ticket.assignee_id
    ticket.__data__.update(fresh.__data__)
    if ticket.assignee_id != assignee:
        ticket.__rel__.pop("assignee", None)
    ticket._dirty.clear()


def _update_row(ticket: Ticket, values: dict[Any, Any], *conditions: Any,
                refused: type[TransitionRefused] | None = None) -> None:
    """``UPDATE`` ticket's row with ``values`` only where ``conditions`` still hold, then reload it.

    No row matched: ``refused`` (default :class:`TicketChanged`) is raised and nothing was written."""
    if Ticket.update(values).where(Ticket.id == ticket.id, *conditions).execute() == 0:
        raise (refused or TicketChanged)(ticket.status)
    _reload(ticket)


def create_ticket(actor: Actor, contact: Contact, *, title: str, description: str, type: str = "question",
                  category: TicketCategory | int | None = None, priority: str = "medium",
                  severity: str = "non_blocking", service: tuple[int, str] | None = None,
                  subcategory: tuple[int, str] | None = None, product: tuple[int, str] | None = None,
                  answers: Sequence[dict[str, str]] = (), files: Iterable[Any] = ()) -> Ticket:
    """Open a ticket for ``contact`` (run inside ``db.atomic()``). ``files`` are stored uploads
    (``StoredFile``) to attach. A staff ``actor`` opens it on the contact's behalf (recorded in
    ``opened_by_staff``)."""
    now = clock()
    seq = next_number()
    ticket = Ticket(
        seq=seq, number=format_number(seq), title=title.strip(), description=description.strip(), type=type,
        category=category, priority=priority, severity=severity, status=OPEN, contact=contact,
        company=contact.company_id, requester_name=contact.full_name,
        service_id=service[0] if service else None, service_name=service[1] if service else None,
        subcategory_id=subcategory[0] if subcategory else None,
        subcategory_name=subcategory[1] if subcategory else None,
        product_id=product[0] if product else None, product_name=product[1] if product else None,
        answers=json.dumps(list(answers), ensure_ascii=False) if answers else None,
        created_at=now, updated_at=now, response_due_at=response_due(now),
        # Opened on the contact's behalf (by support, by email): news for them until they look.
        news_seq=0 if actor.contact is not None and actor.contact.id == contact.id else 1,
        opened_by_staff=actor.staff if actor.kind == "staff" else None,
        opened_by_integration=actor.integration,
    )
    ticket.refresh_search_text()
    ticket.save(force_insert=True)
    TicketHistory.create(ticket=ticket, from_state=None, to_state=OPEN, actor_type=actor.kind,
                         actor_name=actor.name, created_at=now)
    attachments = [attach(ticket, actor, stored, touch=False) for stored in files]
    signals.ticket_created.send("tickets", ticket=ticket, actor=actor, attachments=attachments)
    return ticket


def _open_for_customer(actor: Actor) -> list[Any]:
    """The row condition a customer's change needs: the ticket is not in a final state."""
    return [Ticket.status.not_in(final_keys())] if actor.kind == "customer" else []


def attach(ticket: Ticket, actor: Actor, stored: Any, *, touch: bool = True) -> TicketAttachment:
    """Record an uploaded file (a ``StoredFile``) on ``ticket``. Customers attach nothing to a
    ticket that is (or meanwhile became) final: TransitionRefused."""
    if actor.kind == "customer" and is_final(ticket):
        raise TransitionRefused("closed")
    now = clock()
    if touch:
        _update_row(ticket, {Ticket.updated_at: now}, *_open_for_customer(actor), refused=TransitionRefused)
    return TicketAttachment.create(ticket=ticket, stored_name=stored.stored_name,
                                   original_name=(stored.original_name or stored.stored_name)[:255],
                                   size=stored.size, mimetype=stored.mimetype or "application/octet-stream",
                                   kind=getattr(stored, "kind", None), uploaded_by=actor.name,
                                   author_contact=actor.contact, created_at=now)


def change_state(ticket: Ticket, to_key: str, actor: Actor, *, planned_for: dt.date | None = None,
                 expected: str | None = None, extra: dict[Any, Any] | None = None,
                 where: Sequence[Any] = (), note: str | None = None) -> TicketHistory:
    """Move ``ticket`` from ``expected`` (default: the state of the caller's copy) to ``to_key``.

    The workflow must allow the move for ``actor`` (else TransitionRefused); the row is written
    only if it is still in ``expected`` and matches the conditions in ``where`` (else
    :class:`TicketChanged`). ``extra`` holds more columns to write in the same statement (the
    customer's rating), ``note`` the reason recorded on the history row.

    Every move is news for the customers following the ticket (``news_seq``), except for the
    customer who made it: they have seen it (:func:`mark_read`)."""
    old = ticket.status if expected is None else expected
    if to_key not in _targets(old, ticket.type, actor.kind):
        raise TransitionRefused(to_key)
    target = state(to_key)
    if target is not None and target.needs_date and planned_for is None:
        raise TransitionRefused("date")
    now = clock()
    values: dict[Any, Any] = {Ticket.status: to_key, Ticket.updated_at: now, Ticket.news_seq: Ticket.news_seq + 1,
                              Ticket.closed_at: now if target is not None and target.final else None}
    if to_key == RESOLVED:
        values[Ticket.resolved_at] = now
    elif old == RESOLVED:
        values[Ticket.resolved_at] = None
    if target is not None and target.needs_date:
        values[Ticket.planned_for] = planned_for
    if actor.kind == "staff":
        # The first operator who moves an untaken ticket takes it (and, if nobody has it, gets it);
        # decided in SQL on the row's current values, not on the copy's.
        untaken = Ticket.taken_at.is_null()
        values[Ticket.taken_at] = fn.COALESCE(Ticket.taken_at, now)
        if actor.staff is not None:
            nobody = untaken & Ticket.assignee.is_null()
            values[Ticket.assignee] = Case(None, [(nobody, actor.staff.id)], Ticket.assignee)
            values[Ticket.assignee_name] = Case(None, [(nobody, actor.name)], Ticket.assignee_name)
    values.update(extra or {})
    _update_row(ticket, values, Ticket.status == old, *where)
    history = TicketHistory.create(ticket=ticket, from_state=old, to_state=to_key, actor_type=actor.kind,
                                   actor_name=actor.name, note=(note or "").strip() or None, created_at=now)
    if actor.contact is not None:
        mark_read(ticket, actor.contact.id)
    signals.status_changed.send("tickets", ticket=ticket, old=old, new=to_key, actor=actor, history=history)
    return history


#: The fields :func:`update_fields` changes, with the column each one writes.
UPDATABLE = ("assignee", "priority", "category", "planned_for")


def update_fields(ticket: Ticket, actor: Actor, values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Change ``ticket``'s fields without a workflow move: ``assignee`` (a StaffUser or None),
    ``priority``, ``category`` (an id or None), ``planned_for`` (a date; only in a state that asks
    for one, else TransitionRefused "date"). Writes only what differs, while the ticket is still in
    the state of the caller's copy (else TicketChanged), and sends ``ticket-updated`` with the
    changes (field → (old, new); the assignee as staff ids). Returns the changes."""
    unknown = set(values) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    current = state(ticket.status)
    if "planned_for" in values and not (current is not None and current.needs_date):
        raise TransitionRefused("date")
    columns: dict[Any, Any] = {}
    changes: dict[str, tuple[Any, Any]] = {}
    if "assignee" in values:
        staff = values["assignee"]
        new_id = staff.id if staff is not None else None
        if new_id != ticket.assignee_id:
            changes["assignee"] = (ticket.assignee_id, new_id)
            columns[Ticket.assignee] = new_id
            columns[Ticket.assignee_name] = (staff.name or staff.email) if staff is not None else None
    for name, column, old in (("priority", Ticket.priority, ticket.priority),
                              ("category", Ticket.category, ticket.category_id),
                              ("planned_for", Ticket.planned_for, ticket.planned_for)):
        if name in values and values[name] != old:
            changes[name] = (old, values[name])
            columns[column] = values[name]
    if not changes:
        return changes
    columns[Ticket.updated_at] = clock()
    _update_row(ticket, columns, Ticket.status == ticket.status)
    signals.ticket_updated.send("tickets", ticket=ticket, changes=changes, actor=actor)
    return changes


def take_charge(ticket: Ticket, staff: StaffUser) -> TicketHistory | None:
    """An operator takes the ticket: it becomes theirs and, when Open, Waiting for support.

    Decided on the caller's copy: if the ticket left Open meanwhile, TicketChanged (and the
    assignment is rolled back with the transaction)."""
    actor = Actor.for_staff(staff)
    was_open = ticket.status == OPEN
    if ticket.assignee_id is None or ticket.assignee_id != staff.id:
        assign(ticket, staff)
    if was_open:
        return change_state(ticket, WAITING_SUPPORT, actor, expected=OPEN)
    return None


def assign(ticket: Ticket, staff: StaffUser | None) -> None:
    """Give the ticket to ``staff`` (None: nobody). Writes only the assignment columns."""
    _update_row(ticket, {Ticket.assignee: staff.id if staff else None,
                         Ticket.assignee_name: (staff.name or staff.email) if staff else None,
                         Ticket.updated_at: clock()})


def plan(ticket: Ticket, planned_for: dt.date, *, expected: str | None = None) -> None:
    """Move the date of a Planned ticket (TicketChanged if it is no longer in ``expected``)."""
    _update_row(ticket, {Ticket.planned_for: planned_for, Ticket.updated_at: clock()},
                Ticket.status == (expected or ticket.status))


def add_hours(ticket: Ticket, hours: Any) -> None:
    """Add ``hours`` to the time spent, in SQL: two operators' hours both count."""
    _update_row(ticket, {Ticket.hours_spent: Ticket.hours_spent + hours, Ticket.updated_at: clock()})


def add_comment(ticket: Ticket, actor: Actor, body: str, kind: str = "public", *,
                expected: str | None = None) -> TicketComment:
    """Add a comment. A customer's comment on a ticket waiting for them or resolved sends it back
    to support; a closed ticket accepts none from customers (TransitionRefused). With
    ``expected``, the comment is written only while the ticket is in that state (else
    TicketChanged). The public comment count is incremented in SQL."""
    body = (body or "").strip()
    if not body:
        raise ValueError("empty comment")
    if actor.kind == "customer":
        if kind not in ("public", "private"):
            raise ValueError("customers write public comments or private notes")
        if is_final(ticket):
            raise TransitionRefused("closed")
    elif kind not in ("public", "internal"):
        raise ValueError("staff write public replies or internal notes")
    now = clock()
    values: dict[Any, Any] = {Ticket.updated_at: now}
    if kind == "public":
        values[Ticket.public_comments] = Ticket.public_comments + 1
        if actor.kind != "customer":  # support's answer is news; a customer's own words are not
            values[Ticket.news_seq] = Ticket.news_seq + 1
    conditions = _open_for_customer(actor)
    if expected is not None:
        conditions.append(Ticket.status == expected)
    try:
        _update_row(ticket, values, *conditions)
    except TicketChanged:
        if expected is None and actor.kind == "customer":  # the ticket was closed meanwhile
            raise TransitionRefused("closed") from None
        raise
    comment = TicketComment.create(ticket=ticket, kind=kind, body=body, author_contact=actor.contact,
                                   author_staff=actor.staff, author_name=actor.name, created_at=now)
    # Sent before the move the comment causes: receivers see the state the comment was written in.
    signals.comment_added.send("tickets", ticket=ticket, comment=comment, actor=actor)
    if (actor.kind == "customer" and ticket.status in (WAITING_CUSTOMER, RESOLVED)
            and WAITING_SUPPORT in allowed_targets(ticket, "customer")):
        change_state(ticket, WAITING_SUPPORT, actor)
    return comment


def reopen(ticket: Ticket, actor: Actor, body: str) -> TicketComment:
    """"Not resolved": the customer's comment sends a Resolved ticket back to support. Refused
    (TicketChanged) when the ticket is no longer Resolved, even if the caller's copy still is."""
    if ticket.status != RESOLVED or WAITING_SUPPORT not in allowed_targets(ticket, actor.kind):
        raise TransitionRefused(WAITING_SUPPORT)
    return add_comment(ticket, actor, body, "public", expected=RESOLVED)


def close_by_customer(ticket: Ticket, actor: Actor, rating: int, comment: str | None = None) -> TicketHistory:
    """'Ok, resolved': the customer closes a resolved ticket with a 1–5 satisfaction rating.

    The rating is written by the same conditional statement as the close: a ticket that left
    Resolved meanwhile keeps its state, its rating and its comments (TicketChanged)."""
    if not 1 <= int(rating) <= 5:
        raise ValueError("rating must be 1 to 5")
    if ticket.status != RESOLVED or CLOSED not in allowed_targets(ticket, "customer"):
        raise TransitionRefused(CLOSED)
    return change_state(ticket, CLOSED, actor, expected=RESOLVED,
                        extra={Ticket.rating: int(rating), Ticket.rating_comment: (comment or "").strip() or None})


def withdraw(ticket: Ticket, actor: Actor, reason: str | None = None) -> TicketHistory:
    """The customer closes ``ticket`` before support resolves it, with an optional ``reason``
    (kept on the history row, which staff read). A ticket already final refuses
    (TransitionRefused "closed"); one the workflow does not let the customer close from its state
    (resolved: that is the close with a rating; blocked) refuses (TransitionRefused "withdraw"); one that
    changed meanwhile raises TicketChanged."""
    if is_final(ticket):
        raise TransitionRefused("closed")
    if ticket.status == RESOLVED or CLOSED not in allowed_targets(ticket, actor.kind):
        raise TransitionRefused("withdraw")
    return change_state(ticket, CLOSED, actor, expected=ticket.status, note=reason)


# --- read state --------------------------------------------------------------------------------
def mark_read(ticket: Ticket, contact_id: int) -> None:
    """Record that ``contact_id`` has seen ``ticket`` as it is now (its ``news_seq``). Writes only
    when that is news (one read when nothing changed); never lowers what was recorded."""
    if not ticket.news_seq:
        return  # nothing has happened that anyone could have missed
    seen = (TicketRead.select(TicketRead.seen_seq)
            .where((TicketRead.ticket == ticket.id) & (TicketRead.contact == contact_id)).scalar())
    if (seen or 0) >= ticket.news_seq:  # nothing new (a ticket without news needs no row)
        return
    record_read(ticket.id, contact_id, ticket.news_seq)


def record_read(ticket_id: int, contact_id: int, seq: int) -> None:
    """Upsert ``contact_id``'s read row of ``ticket_id`` to ``seq``, unless it already records more
    (two requests of the same contact racing: the one that read the older ticket loses)."""
    now = clock()
    with db.atomic():
        (TicketRead.insert(ticket=ticket_id, contact=contact_id, seen_seq=seq, seen_at=now)
         .on_conflict(conflict_target=[TicketRead.ticket, TicketRead.contact],
                      update={TicketRead.seen_seq: seq, TicketRead.seen_at: now},
                      where=(TicketRead.seen_seq < seq))
         .execute())


def unread_condition() -> Any:
    """The SQL condition "the ticket has news for the contact", on a query joined with
    :func:`join_reads` for that contact."""
    return Ticket.news_seq > fn.COALESCE(TicketRead.seen_seq, 0)


def has_news(contact_id: int | None) -> Any:
    """The SQL condition "the ticket has news for ``contact_id``" without a join (filters and
    counts): some news, and no read row of the contact that has seen it all."""
    seen_all = TicketRead.select(TicketRead.id).where(
        (TicketRead.ticket == Ticket.id) & (TicketRead.contact == contact_id)
        & (TicketRead.seen_seq >= Ticket.news_seq))
    return (Ticket.news_seq > 0) & ~fn.EXISTS(seen_all)


def join_reads(query: Any, contact_id: int | None) -> Any:
    """``query`` (on Ticket) LEFT JOINed with ``contact_id``'s read rows: at most one per ticket,
    so the rows (and counts) stay the same."""
    return query.join_from(Ticket, TicketRead, JOIN.LEFT_OUTER,
                           on=((TicketRead.ticket == Ticket.id) & (TicketRead.contact == contact_id)))


def autoclose(now: dt.datetime | None = None, days: float | None = None, limit: int = 500) -> list[str]:
    """Close tickets resolved more than ``days`` ago (default TICKETS_AUTOCLOSE_DAYS, 3) with no
    customer action. Each ticket closes in its own transaction; returns the numbers closed."""
    now = now or clock()
    if days is None:
        days = current_app.config.get("TICKETS_AUTOCLOSE_DAYS", 3) if has_app_context() else 3
    cutoff = now - dt.timedelta(days=float(days))
    due = list(Ticket.select(Ticket.id).where((Ticket.status == RESOLVED) & (Ticket.resolved_at <= cutoff))
               .order_by(Ticket.resolved_at).limit(limit).tuples())
    closed = []
    actor = Actor.system()
    for (ticket_id,) in due:
        with db.atomic():
            ticket = Ticket.get_or_none(Ticket.id == ticket_id)
            if ticket is None or ticket.status != RESOLVED or ticket.resolved_at > cutoff:
                continue  # the customer acted meanwhile
            try:
                change_state(ticket, CLOSED, actor, expected=RESOLVED, where=[Ticket.resolved_at <= cutoff])
            except TicketChanged:
                continue  # the customer or an operator acted after the read above
            except TransitionRefused:
                continue  # an admin removed the automatic close from the workflow
            closed.append(ticket.number)
    if closed:
        log.info("auto-closed %d resolved tickets: %s", len(closed), ", ".join(closed))
    return closed


def is_overdue(ticket: Ticket, now: dt.datetime | None = None) -> bool:
    """Support has not taken charge by the response-time target."""
    return bool(ticket.taken_at is None and ticket.response_due_at is not None
                and ticket.response_due_at < (now or clock()) and not is_final(ticket))
