"""Operator side (Flask-Admin): the ticket queue, the ticket work page and the workflow settings.

The queue (``/admin/tickets_queue/``) lists every ticket with filters by state, company, assignee
and overdue response; the work page (``/admin/tickets_queue/work/<id>/``) is where an operator
takes charge, assigns, replies publicly, writes internal notes, moves the ticket along the allowed
transitions, plans a date and records hours spent.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

import peewee as pw
from flask import abort, flash, has_request_context, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.peewee.filters import BasePeeweeFilter, FilterEqual, FilterLike
from flask_babel import format_datetime
from flask_babel import gettext as _
from markupsafe import Markup

from crm_portal.api import (
    AdminModelView,
    Company,
    PortalUser,
    StaffUser,
    UploadRejected,
    _l,
    audit,
    comments_by_email,
    current_staff,
    db,
    email_that_opened,
    staff_members,
)

from . import opening, signals, workflow
from .models import (
    COMMENT_KINDS,
    PRIORITIES,
    SEVERITIES,
    TYPES,
    Ticket,
    TicketAttachment,
    TicketCategory,
    TicketComment,
    TicketHistory,
    TicketQuestion,
    TicketState,
    TicketTransition,
    is_valid_id,
)
from .views import _max_upload_mb, send_attachment

#: The names of the helpdesk's fields in the admin (the shared ones come from the portal).
LABELS = {
    "color": _l("Colour"), "final": _l("Final state"), "needs_date": _l("Needs a date"),
    "from_state": _l("From state"), "to_state": _l("To state"), "actor": _l("Who"), "types": _l("Ticket types"),
    "service_id": _l("Service"), "required": _l("Required"), "questions": _l("Guided questions"),
}
#: The badge colours by name.
COLOR_LABELS = {"primary": _l("Blue"), "info": _l("Light blue"), "warning": _l("Yellow"), "indigo": _l("Indigo"),
                "teal": _l("Teal"), "purple": _l("Purple"), "orange": _l("Orange"), "success": _l("Green"),
                "danger": _l("Red"), "secondary": _l("Grey"), "dark": _l("Black"), "pink": _l("Pink")}
#: Who makes a move of the workflow.
ACTOR_LABELS = {"staff": _l("Support"), "customer": _l("Customer"), "system": _l("Automatic (auto-close)")}
AUDIT_LABELS = {"ticket-taken": _l("Ticket taken in charge"), "ticket-assigned": _l("Ticket assigned"),
                "ticket-updated": _l("Ticket updated"), "ticket-opened": _l("Ticket opened"),
                "ticket-opened-for-contact": _l("Ticket opened for a customer"),
                "ticket-opened-by-api": _l("Ticket opened through the API"),
                "ticket-moved": _l("Ticket moved to another state"),
                "ticket-commented": _l("Ticket commented"),
                "ticket-attached": _l("Files attached to a ticket")}


def _state_options():
    if not has_request_context():  # Flask-Admin also builds filters at start-up, before any table exists
        return [(key, spec[0]) for key, spec in workflow.DEFAULT_STATES.items()]
    return [(key, s.label) for key, s in workflow.states().items()]


def _staff_options():
    if not has_request_context():
        return []
    return [(str(s.id), s.name or s.email) for s in staff_members()]


class OverdueFilter(BasePeeweeFilter):
    """Tickets support has not taken charge of by their response-time target."""

    def __init__(self) -> None:
        super().__init__(Ticket.response_due_at, _l("Response overdue"), options=(("1", _l("Yes")),))

    def apply(self, query, value):
        return query.where(Ticket.taken_at.is_null() & (Ticket.response_due_at < workflow.clock())
                           & Ticket.status.in_(workflow.open_keys()))

    def operation(self):
        return _l("is")


class OpenFilter(BasePeeweeFilter):
    def __init__(self) -> None:
        super().__init__(Ticket.status, _l("Open or closed"),
                         options=(("open", _l("Open")), ("closed", _l("Closed"))))

    def apply(self, query, value):
        keys = workflow.open_keys() if value == "open" else workflow.final_keys()
        return query.where(Ticket.status.in_(keys))

    def operation(self):
        return _l("is")


class CompanyFilter(BasePeeweeFilter):
    def __init__(self) -> None:
        super().__init__(Ticket.company, _l("Company"))

    def apply(self, query, value):
        return query.where(Ticket.company.in_(Company.select(Company.id).where(Company.name.contains(value))))

    def operation(self):
        return _l("contains")


class AssigneeFilter(FilterEqual):
    def __init__(self) -> None:
        super().__init__(Ticket.assignee, _l("Assigned to"), options=_staff_options)

    def validate(self, value):
        return value == "none" or is_valid_id(value)  # Flask-Admin drops (and flashes) anything else

    def apply(self, query, value):
        if value == "none":
            return query.where(Ticket.assignee.is_null())
        return query.where(Ticket.assignee == int(value))

    def get_options(self, view):
        return [("none", _l("Nobody"))] + _staff_options()


def _number_link(view, context, model, name):
    return Markup('<a href="{}">{}</a>').format(url_for("tickets_queue.work", id=model.id), model.number)


def _status_badge(view, context, model, name):
    found = workflow.state(model.status)
    if found is None:
        return model.status
    return Markup('<span class="badge" style="background:{};color:#fff">{}</span>').format(found.hex, found.label)


def _due(view, context, model, name):
    if model.response_due_at is None:
        return ""
    text = format_datetime(model.response_due_at, "short")  # in the staff member's zone
    if workflow.is_overdue(model):
        return Markup('<span class="text-danger font-weight-bold" title="{}">⚠ {}</span>').format(
            _("Response overdue"), text)
    return text


def _fields_changed(ticket: Ticket, changes: dict[str, tuple[Any, Any]], staff: StaffUser) -> None:
    """Send ``ticket-updated`` for the fields an operator actually changed (none: nothing)."""
    changed = {name: pair for name, pair in changes.items() if pair[0] != pair[1]}
    if changed:
        signals.ticket_updated.send("tickets", ticket=ticket, changes=changed,
                                    actor=workflow.Actor.for_staff(staff))


class TicketQueueView(AdminModelView):
    """The operators' ticket queue and work page."""

    roles = ("admin", "operator")
    audit_labels = AUDIT_LABELS
    can_create = True  # our own page (create_view): a ticket opened for a customer
    can_edit = False
    can_delete = False
    can_view_details = False
    column_default_sort = ("updated_at", True)
    column_list = ("number", "title", "company", "requester_name", "status", "priority", "assignee_name",
                   "response_due_at", "updated_at")
    column_labels = {"number": _l("Number"), "title": _l("Title"), "company": _l("Company"),
                     "requester_name": _l("Requester"), "status": _l("Status"), "priority": _l("Priority"),
                     "assignee_name": _l("Assigned to"), "response_due_at": _l("Take charge by"),
                     "updated_at": _l("Last update")}
    column_sortable_list = ("title", "status", "priority", "assignee_name", "response_due_at", "updated_at",
                            "requester_name")
    column_searchable_list = ("number", "title", "requester_name")
    column_choices = {"priority": list(PRIORITIES.items()), "type": list(TYPES.items())}
    column_formatters = {"number": _number_link, "status": _status_badge, "response_due_at": _due,
                         "company": lambda v, c, m, n: m.company.name if m.company_id else ""}
    column_export_list = ("number", "title", "requester_name", "status", "priority", "assignee_name",
                          "created_at", "updated_at", "closed_at", "hours_spent", "rating")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.column_filters = [
            FilterEqual(Ticket.status, _l("Status"), options=_state_options),
            OpenFilter(), CompanyFilter(), AssigneeFilter(), OverdueFilter(),
            FilterLike(Ticket.requester_name, _l("Requester")),
        ]
        super().__init__(Ticket, *args, **kwargs)

    @expose("/")
    def index_view(self):
        self._refresh_filters_cache()  # state and operator options come from the database
        return super().index_view()

    def get_query(self):
        return (Ticket.select(Ticket, Company)
                .join(Company, pw.JOIN.LEFT_OUTER, on=(Ticket.company == Company.id))
                .switch(Ticket))

    # --- work page -----------------------------------------------------------------------
    def _ticket(self, ticket_id: int) -> Ticket:
        ticket = Ticket.get_or_none(Ticket.id == ticket_id) if is_valid_id(ticket_id) else None
        if ticket is None:
            abort(404)
        return ticket

    def _staff(self) -> StaffUser:
        staff = current_staff()
        if staff is None:
            abort(403)
        return staff

    @expose("/work/<int:id>/", methods=("GET",))
    def work(self, id: int):
        ticket = self._ticket(id)
        comments = list(TicketComment.select().where(TicketComment.ticket == ticket.id)
                        .order_by(TicketComment.created_at.desc(), TicketComment.id.desc()))
        history = list(TicketHistory.select().where(TicketHistory.ticket == ticket.id)
                       .order_by(TicketHistory.created_at, TicketHistory.id))
        attachments = list(TicketAttachment.select().where(TicketAttachment.ticket == ticket.id)
                           .order_by(TicketAttachment.created_at))
        states = workflow.states()
        targets = [states[k] for k in workflow.allowed_targets(ticket, "staff") if k in states]
        return self.render("admin/tickets/work.html", ticket=ticket, comments=comments, history=history,
                           attachments=attachments, states=states, targets=targets, staff=staff_members(),
                           overdue=workflow.is_overdue(ticket), kinds=COMMENT_KINDS, types=TYPES,
                           priorities=PRIORITIES, severities=SEVERITIES, me=self._staff(),
                           opened_by=StaffUser.get_or_none(StaffUser.id == ticket.opened_by_staff_id)
                           if ticket.opened_by_staff_id else None,
                           opened_by_email=email_that_opened(f"tickets:{ticket.id}"),
                           by_email=comments_by_email([c.id for c in comments]),
                           category=TicketCategory.get_or_none(TicketCategory.id == ticket.category_id)
                           if ticket.category_id else None)

    def _done(self, ticket: Ticket):
        return redirect(url_for(".work", id=ticket.id))

    def _changed(self, ticket: Ticket):
        """Another request changed the ticket after this one read it: nothing was saved."""
        flash(_("This request was changed meanwhile: reload the page and try again."), "error")
        return self._done(ticket)

    @expose("/work/<int:id>/take", methods=("POST",))
    def take(self, id: int):
        ticket = self._ticket(id)
        try:
            with db.atomic():
                before = ticket.assignee_id
                workflow.take_charge(ticket, self._staff())
                audit("ticket-taken", ticket)
                _fields_changed(ticket, {"assignee": (before, ticket.assignee_id)}, self._staff())
        except workflow.TicketChanged:
            return self._changed(ticket)
        flash(_("You are handling %(number)s.", number=ticket.number), "success")
        return self._done(ticket)

    @expose("/work/<int:id>/assign", methods=("POST",))
    def assign(self, id: int):
        ticket = self._ticket(id)
        raw = request.form.get("assignee", "")
        staff = None
        if raw:
            if is_valid_id(raw):
                staff = StaffUser.get_or_none((StaffUser.id == int(raw)) & (StaffUser.active == True))  # noqa: E712
            if staff is None:
                flash(_("Unknown operator."), "error")
                return self._done(ticket)
        try:
            with db.atomic():
                before = ticket.assignee_id
                workflow.assign(ticket, staff)
                audit("ticket-assigned", ticket, details={"assignee": staff.email if staff else None})
                _fields_changed(ticket, {"assignee": (before, ticket.assignee_id)}, self._staff())
        except workflow.TicketChanged:
            return self._changed(ticket)
        flash(_("Assignment saved."), "success")
        return self._done(ticket)

    @expose("/work/<int:id>/update", methods=("POST",))
    def update(self, id: int):
        """Reply (public or internal), change state, plan a date, add hours: one form, one transaction."""
        ticket = self._ticket(id)
        staff = self._staff()
        actor = workflow.Actor.for_staff(staff)
        body = (request.form.get("body") or "").strip()[:20000]
        kind = "internal" if request.form.get("kind") == "internal" else "public"
        target = request.form.get("status") or ""
        planned = request.form.get("planned_for") or ""
        hours_raw = (request.form.get("hours") or "").strip().replace(",", ".")
        planned_for = None
        if planned:
            try:
                planned_for = dt.date.fromisoformat(planned)
            except ValueError:
                flash(_("The planned date is not valid."), "error")
                return self._done(ticket)
        hours = None
        if hours_raw:
            try:
                hours = Decimal(hours_raw)
                if not Decimal("0") < hours <= Decimal("1000"):
                    raise InvalidOperation
            except InvalidOperation:
                flash(_("Hours must be a number between 0 and 1000."), "error")
                return self._done(ticket)
        if not (body or target or hours is not None or planned_for):
            flash(_("Nothing to save."), "warning")
            return self._done(ticket)
        # The state the operator saw on the work page: every write below happens only while the
        # ticket is still in it, so a change made meanwhile (a customer's close or reply) is not
        # answered by a decision taken without seeing it.
        seen = request.form.get("expected_status") or ticket.status
        if seen != ticket.status:
            return self._changed(ticket)
        try:
            with db.atomic():
                before = {"planned_for": ticket.planned_for, "hours_spent": ticket.hours_spent}
                if body:
                    workflow.add_comment(ticket, actor, body, kind, expected=seen)
                if target and target != seen:
                    workflow.change_state(ticket, target, actor, planned_for=planned_for, expected=seen)
                elif planned_for and seen == workflow.PLANNED:
                    workflow.plan(ticket, planned_for, expected=seen)
                if hours is not None:
                    workflow.add_hours(ticket, hours)
                if not (target and target != seen):  # a move announces its own date (status-changed)
                    _fields_changed(ticket, {"planned_for": (before["planned_for"], ticket.planned_for),
                                             "hours_spent": (before["hours_spent"], ticket.hours_spent)}, staff)
                elif hours is not None:
                    _fields_changed(ticket, {"hours_spent": (before["hours_spent"], ticket.hours_spent)}, staff)
                audit("ticket-updated", ticket, details={"status": target or None, "comment": kind if body else None,
                                                         "hours": str(hours) if hours is not None else None})
        except workflow.TicketChanged:
            return self._changed(ticket)
        except workflow.TransitionRefused as exc:
            if str(exc) == "date":
                flash(_("Choose the date the activity is planned for."), "error")
            else:
                flash(_("This change of state is not allowed from the current state."), "error")
            return self._done(ticket)
        flash(_("Saved."), "success")
        return self._done(ticket)

    # --- a ticket opened for a customer (phone, email) ----------------------------------------
    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        """Open a ticket on a contact's behalf: choose the contact, then the same steps and form as
        the customer's wizard (service, sub-category, the request form), offered as the contact
        would be offered them. The contact gets the usual "request received" email."""
        staff = self._staff()
        raw_contact = request.args.get("contact")
        if raw_contact is None:
            return self._pick_contact()
        contact, problem = opening.contact_for_ticket(raw_contact)
        if problem is not None:
            return self._pick_contact(problem)
        assert contact is not None
        user = PortalUser(contact)
        services = opening.services_for(user) or []
        service = sub = None
        if services:
            if request.args.get("service") is None:
                return self._render_new("service", contact, services=services)
            service = opening.find_service(services, request.args.get("service"))
            if service is None:
                return self._render_new("service", contact, services=services,
                                        error=_("Choose one of the contact's services."), status=400)
            if getattr(service, "subcategories", None):
                raw_sub = request.args.get("sub")
                sub = opening.find_subcategory(service, raw_sub) if raw_sub is not None else None
                if sub is None:
                    refused = raw_sub is not None
                    return self._render_new("subcategory", contact, services=services, service=service,
                                            error=_("Choose one of the service's sub-categories.") if refused else None,
                                            status=400 if refused else 200)
        products = opening.products_for(user)
        form, mapped = opening.request_form(service, sub, products)
        status, upload_error = 200, None
        if form.validate_on_submit():
            try:
                ticket = opening.submit_request(
                    form, workflow.Actor.for_staff(staff), contact, service, sub, products,
                    then=lambda ticket: audit("ticket-opened-for-contact", ticket,
                                              details={"contact": contact.email, "number": ticket.number}))
            except UploadRejected as exc:
                upload_error, status = exc.message, exc.status
            else:
                flash(_("Request %(number)s opened for %(name)s.", number=ticket.number, name=contact.full_name),
                      "success")
                return redirect(url_for(".work", id=ticket.id))
        elif request.method == "POST":
            status = 400
        return self._render_new("form", contact, services=services, service=service, sub=sub, form=form,
                                mapped_category=mapped, upload_error=upload_error, status=status)

    def _pick_contact(self, error: str | None = None):
        text = (request.args.get("q") or "").strip()[:200]
        return self._render_new("contact", None, contacts=opening.find_contacts(text), q=text, error=error,
                                status=400 if error else 200)

    def _render_new(self, step: str, contact: Any, *, status: int = 200, **context: Any):
        context.setdefault("error", None)
        return self.render("admin/tickets/new.html", step=step, contact=contact, max_upload_mb=_max_upload_mb(),
                           **context), status

    @expose("/work/<int:id>/attachments/<int:attachment_id>", methods=("GET",))
    def download(self, id: int, attachment_id: int):
        return send_attachment(id, attachment_id)


class StateView(AdminModelView):
    field_labels = LABELS
    choice_labels = {"color": COLOR_LABELS}
    column_list = ("position", "key", "label_en", "label_it", "color", "final", "needs_date")
    column_default_sort = "position"
    column_filters = ()
    form_columns = ("key", "label_en", "label_it", "description_en", "description_it", "color", "position",
                    "final", "needs_date")


class TransitionView(AdminModelView):
    field_labels = LABELS
    choice_labels = {"actor": ACTOR_LABELS}
    column_list = ("from_state", "to_state", "actor", "types")
    column_filters = ("actor",)
    column_searchable_list = ("types",)
    form_columns = ("from_state", "to_state", "actor", "types")
    column_descriptions = {"types": _l("Ticket types (question, problem, request), comma-separated; empty: all."),
                           "actor": _l("Who may make the move: staff, customer or system (auto-close).")}


class CategoryView(AdminModelView):
    field_labels = LABELS
    column_list = ("position", "key", "label_en", "label_it", "active")
    column_default_sort = "position"
    column_filters = ("active",)


class QuestionView(AdminModelView):
    field_labels = LABELS
    column_list = ("category", "service_id", "label_en", "label_it", "required", "active", "position")
    column_filters = ("active", "required")
    column_descriptions = {"service_id": _l("Id of a service (services module): ask only for requests about it.")}


def views(module: Any) -> list[Any]:
    """The module's admin views: the queue and work page, and the workflow settings."""
    category = _l("Helpdesk")
    return [
        TicketQueueView(name=_l("Ticket queue"), category=category, endpoint="tickets_queue"),
        StateView(TicketState, name=_l("Ticket states"), category=category, endpoint="tickets_state"),
        TransitionView(TicketTransition, name=_l("Ticket transitions"), category=category,
                       endpoint="tickets_transition"),
        CategoryView(TicketCategory, name=_l("Ticket categories"), category=category, endpoint="tickets_category"),
        QuestionView(TicketQuestion, name=_l("Guided questions"), category=category, endpoint="tickets_question"),
    ]

