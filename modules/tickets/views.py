"""Customer-side views: the request wizard, the ticket page's actions (comment, private note,
attachments, close with rating, reopen), and the data of the list, the ticket page and the
dashboard panel.

The list, export and detail pages are the host's generic views with this module's templates, fed
by :func:`list_context` and :func:`detail_context`; every record is reached through the scoping
gate (``get_or_404`` / ``visible``).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import peewee as pw
from flask import (
    Flask,
    abort,
    current_app,
    flash,
    has_request_context,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup

from crm_portal.api import (
    Module,
    ModuleBlueprint,
    PortalUser,
    UploadRejected,
    comments_by_email,
    current_module,
    db,
    email_that_opened,
    get_or_404,
    require,
    send_stored,
    visible,
)

from . import opening, workflow
from .forms import CloseForm, CommentForm, ReopenForm, WithdrawForm
from .models import (
    PRIORITIES,
    SEVERITIES,
    TYPES,
    Ticket,
    TicketAttachment,
    TicketComment,
    TicketHistory,
    is_valid_id,
)

bp = ModuleBlueprint("tickets", __name__)

UPLOAD_AREA = opening.UPLOAD_AREA
CHOICES = {"type": TYPES, "priority": PRIORITIES, "severity": SEVERITIES}


# --- formatting (a template filter: no queries) ------------------------------------------------
def choice_label(value: Any, kind: str) -> str:
    """The label of a ticket's ``type``, ``priority`` or ``severity`` value (``tickets_choice`` filter)."""
    label = CHOICES.get(kind, {}).get(value)
    return str(label) if label is not None else ("" if value is None else str(value))


def init_app(app: Flask) -> None:
    """Register the module's formatting filter (portal pages and emails)."""
    app.add_template_filter(choice_label, "tickets_choice")


# --- list --------------------------------------------------------------------------------------
def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value or "").strip()[:10])
    except ValueError:
        return None


#: ``state=`` values of the list beyond open/closed: the dashboard's counters link to them.
STATE_VIEWS = {"waiting": workflow.WAITING_CUSTOMER, "resolved": workflow.RESOLVED}


def filter_list(query: pw.ModelSelect, params: Mapping[str, Any], user: Any) -> pw.ModelSelect:
    """The tickets list's own filters (``TicketsModule.list_params``): ``show`` (mine/all),
    ``state`` (open/closed, or ``waiting`` for the customer's answer, ``resolved`` to confirm),
    ``unread`` (only tickets with news) and the created/closed date ranges (``created_from`` …
    ``closed_to``)."""
    if params.get("show") == "mine":
        query = query.where(Ticket.contact == user.contact_id)
    which = params.get("state")
    if which == "open":
        query = query.where(Ticket.status.in_(workflow.open_keys()))
    elif which == "closed":
        query = query.where(Ticket.status.in_(workflow.final_keys()))
    elif which in STATE_VIEWS:
        query = query.where(Ticket.status == STATE_VIEWS[which])
    if params.get("unread"):
        query = query.where(workflow.has_news(getattr(user, "contact_id", None)))
    for name, field in (("created", Ticket.created_at), ("closed", Ticket.closed_at)):
        start, end = _date(params.get(f"{name}_from")), _date(params.get(f"{name}_to"))
        if start:
            query = query.where(field >= dt.datetime.combine(start, dt.time()))
        if end:  # the whole last day (no "next day": 9999-12-31 has none)
            query = query.where(field <= dt.datetime.combine(end, dt.time.max))
    return query


#: What the list (tickets/list.html) and its exports read of a ticket: its id and the columns of
#: ``TicketsModule.columns`` (keep the three in step), not the other two dozen columns.
LIST_FIELDS = (Ticket.id, Ticket.number, Ticket.title, Ticket.requester_name, Ticket.service_name, Ticket.status,
               Ticket.priority, Ticket.assignee_name, Ticket.updated_at)


def list_rows(query: pw.ModelSelect, user: Any) -> pw.ModelSelect:
    """The rows of the page (:data:`LIST_FIELDS` only) joined with the reader's read state (at
    most one row per ticket), each with ``unread`` (1 or 0): the list marks news in its one page
    query, not a query per row; the count (every matching ticket) never reads the read state."""
    query = workflow.join_reads(query.select(*LIST_FIELDS), getattr(user, "contact_id", None))
    return query.select_extend(pw.Case(None, [(workflow.unread_condition(), 1)], 0).alias("unread"))


def list_context(page: Any, user: PortalUser) -> dict[str, Any]:
    """What the list draws besides its rows: the workflow states (badge colour), and the labels of
    states and priorities in the reader's language, resolved once for the page rather than on
    each row."""
    states = workflow.states()
    return {"states": states, "state_labels": {key: found.label for key, found in states.items()},
            "priority_labels": {key: str(label) for key, label in PRIORITIES.items()}}


# --- ticket page -------------------------------------------------------------------------------
def _may_act(ticket: Ticket, user: PortalUser, actions: frozenset[str]) -> bool:
    """Own tickets always; a colleague's only with ``comment_others``."""
    return ticket.contact_id == user.contact_id or "comment_others" in actions


#: Comments shown at once on the ticket page; older ones come a page at a time.
COMMENTS_PER_PAGE = 20
#: A comments page beyond this is no page of any ticket (keeps the OFFSET a small number).
MAX_COMMENTS_PAGE = 100_000


def comments_page(value: Any) -> int:
    """The conversation page asked for (``?comments_page=``): 1 (the newest) when missing or invalid."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return min(number, MAX_COMMENTS_PAGE) if number > 0 else 1


def conversation(ticket: Ticket, contact_id: int | None, page: int = 1,
                 per_page: int = COMMENTS_PER_PAGE) -> tuple[list[tuple[int | None, TicketComment]], bool]:
    """One page of the conversation ``contact_id`` reads, newest first: public comments with their
    number (1 = the first ever written) and the reader's own private notes (``None``); and whether
    older ones exist. One query whatever the length: the numbers come from a window function over
    the public comments, the page from LIMIT/OFFSET."""
    number = (pw.fn.ROW_NUMBER().over(partition_by=[TicketComment.kind],
                                      order_by=[TicketComment.created_at, TicketComment.id]).alias("number"))
    rows = list(TicketComment.select(TicketComment, number)
                .where((TicketComment.ticket == ticket.id)
                       & ((TicketComment.kind == "public")
                          | ((TicketComment.kind == "private") & (TicketComment.author_contact == contact_id))))
                .order_by(TicketComment.created_at.desc(), TicketComment.id.desc())
                .limit(per_page + 1).offset((page - 1) * per_page))
    older = len(rows) > per_page
    return [(row.number if row.kind == "public" else None, row) for row in rows[:per_page]], older


def conversation_context(ticket: Ticket, user: PortalUser, page: int) -> dict[str, Any]:
    """The data of the conversation partial (``tickets/_comments.html``): one page of comments and
    the page numbers of the "older" and "newer" links (``None`` when there is none)."""
    comments, older = conversation(ticket, user.contact_id, page)
    return {"comments": comments, "comments_page": page,
            "by_email": comments_by_email([c.id for _number, c in comments]),
            "older_page": page + 1 if older else None, "newer_page": page - 1 if page > 1 else None}


def detail_context(ticket: Ticket, user: PortalUser) -> dict[str, Any]:
    """What the ticket page shows to ``user``: one page of the conversation (``?comments_page=``),
    attachments, history, category, the workflow states and the actions allowed now (a constant
    number of queries whatever the length of the conversation). Showing the page marks the
    ticket read for the user's contact."""
    grant = user.grant("tickets")
    actions = grant.action_set if grant else frozenset()
    page = comments_page(request.args.get("comments_page")) if has_request_context() else 1
    history = list(TicketHistory.select().where(TicketHistory.ticket == ticket.id)
                   .order_by(TicketHistory.created_at, TicketHistory.id))
    attachments = list(TicketAttachment.select().where(TicketAttachment.ticket == ticket.id)
                       .order_by(TicketAttachment.created_at, TicketAttachment.id))
    category = workflow.category(ticket.category_id)
    states = workflow.states()
    current = states.get(ticket.status)
    final = bool(current and current.final)
    may_act = _may_act(ticket, user, actions)
    resolved = ticket.status == workflow.RESOLVED
    # Staff viewing the portal as the contact change nothing of theirs, their read state included.
    if user.contact_id is not None and not getattr(user, "viewing_as", False):
        workflow.mark_read(ticket, user.contact_id)
    can_close = resolved and may_act and "close" in actions
    can_reopen = resolved and may_act and "comment" in actions
    can_withdraw = (not final and not resolved and may_act and "close" in actions
                    and workflow.CLOSED in workflow.allowed_targets(ticket, "customer"))
    return {
        **conversation_context(ticket, user, page),
        "public_count": ticket.public_comments, "history": history, "attachments": attachments,
        "opened_by_email": email_that_opened(f"tickets:{ticket.id}") is not None,
        "category": category, "states": states, "state": current, "final": final,
        "can_comment": not final and may_act and "comment" in actions,
        "can_close": can_close, "can_reopen": can_reopen, "can_withdraw": can_withdraw,
        # Only the forms the page offers (each costs its fields and a CSRF token).
        "close_form": CloseForm(formdata=None) if can_close else None,
        "reopen_form": ReopenForm(formdata=None) if can_reopen else None,
        "withdraw_form": WithdrawForm(formdata=None) if can_withdraw else None,
        "max_upload_mb": _max_upload_mb(),
    }


def _max_upload_mb() -> int:
    return round(current_app.config.get("UPLOAD_MAX_BYTES", 0) / 1024 / 1024)


# --- dashboard ---------------------------------------------------------------------------------
def _counts(query: pw.ModelSelect, contact_id: int | None) -> list[tuple[str, bool, int, int]]:
    """(status, is the contact's own, tickets, with news for the contact) over ``query``, in one
    statement: the dashboard's counters and charts all come from it."""
    own = Ticket.contact == contact_id
    news = pw.Case(None, [(own & workflow.has_news(contact_id), 1)], 0)
    # Grouped by position: PostgreSQL would not see the parameterised expression as the same.
    rows = (query.select(Ticket.status, pw.Case(None, [(own, 1)], 0), pw.fn.COUNT(Ticket.id), pw.fn.SUM(news))
            .group_by(pw.SQL("1"), pw.SQL("2")).tuples())
    return [(status, bool(mine), n, int(unread or 0)) for status, mine, n, unread in rows]


def _chart(counts: dict[str, int], states: dict[str, Any]) -> dict[str, Any]:
    bars = [(s, counts.get(k, 0)) for k, s in states.items() if not s.final]
    top = max([n for _, n in bars] or [0])
    total = sum(n for _, n in bars)
    return {"bars": [(s, n, (n / top) if top else 0) for s, n in bars], "total": total}


def dashboard_panel(module: Module) -> Markup | None:
    """The dashboard's tickets panel (``dashboard.after-buttons``): the user's counters (open,
    waiting for their answer, resolved to confirm, with news; each a link to the list showing
    them), their open tickets by state and, with company scope, the company's."""
    grant = current_user.grant("tickets")
    if grant is None:
        return None
    states = workflow.states()
    keys = set(workflow.open_keys())
    rows = _counts(visible(module, query=Ticket.select()), current_user.contact_id)
    mine: dict[str, int] = {}
    everyone: dict[str, int] = {}
    for status, own, n, _news in rows:
        if status in keys:
            everyone[status] = everyone.get(status, 0) + n
            if own:
                mine[status] = n
    unread = sum(news for _status, own, _n, news in rows if own)
    company = None
    if grant.scope == "company" and current_user.company_id is not None:
        company = _chart(everyone, states)
    return Markup(render_template("tickets/_dashboard.html", mine=_chart(mine, states), company=company,
                                  waiting=mine.get(workflow.WAITING_CUSTOMER, 0),
                                  resolved=mine.get(workflow.RESOLVED, 0), unread=unread,
                                  company_scope=grant.scope == "company"))


# --- categories --------------------------------------------------------------------------------
def category_choices() -> list[tuple[int, str]]:
    """(id, label) of the active categories, in the current language."""
    return [(c.id, c.label) for c in opening.active_categories()]


# --- helpers of the routes ---------------------------------------------------------------------
def _actor() -> workflow.Actor:
    return workflow.Actor.customer(current_user.contact)


def _wants_json() -> bool:
    return request.headers.get("X-Requested-With") == "fetch" or request.accept_mimetypes.best == "application/json"


def _ticket_for(record_id: int, action: str) -> tuple[Ticket, Any]:
    """The ticket the current customer may ``action`` (404 out of scope, 403 on a colleague's
    ticket without ``comment_others``) and their grant."""
    module = current_module()
    grant = require(module, "view")
    ticket = get_or_404(module, record_id, action=action)
    if not _may_act(ticket, current_user, grant.action_set):
        abort(403)
    return ticket, grant


def _back(ticket: Ticket, anchor: str = ""):
    return redirect(url_for("tickets.detail", record_id=ticket.id) + anchor)


def _refused(ticket: Ticket, grant: Any, message: str, status: int):
    """The ticket page (or JSON) with ``message`` and ``status``; nothing was changed."""
    if _wants_json():
        return jsonify({"ok": False, "error": message}), status
    module = current_module()
    if status == 409:  # show the ticket as it is now, not the copy the refused change was based on
        ticket = get_or_404(module, ticket.id)
    flash(message, "danger")
    return render_template(module.detail_template, module=module, record=ticket, grant=grant, error=message,
                           **detail_context(ticket, current_user)), status


def _conflict(ticket: Ticket, grant: Any, exc: workflow.TransitionRefused, message: str):
    """409 for a refused change: "changed meanwhile" when another request got there first."""
    if isinstance(exc, workflow.TicketChanged):
        message = _("This request was changed meanwhile: reload the page and try again.")
    elif str(exc) == "closed":
        message = _("This request is closed: it can no longer be changed.")
    return _refused(ticket, grant, message, 409)


def send_attachment(ticket_id: int, attachment_id: int):
    """Download one attachment of a ticket the caller has already been allowed to see (404 otherwise)."""
    if not (is_valid_id(ticket_id) and is_valid_id(attachment_id)):
        abort(404)
    row = TicketAttachment.get_or_none((TicketAttachment.id == attachment_id) & (TicketAttachment.ticket == ticket_id))
    if row is None:
        abort(404)
    try:
        return send_stored(row.stored_name, UPLOAD_AREA, row.original_name, row.mimetype)
    except (FileNotFoundError, ValueError):  # removed between the check and the open
        abort(404)


# --- routes ------------------------------------------------------------------------------------
@bp.route("/new", methods=["GET", "POST"])
def create():
    """The request wizard: service, sub-category (with the services module), then the form."""
    module = current_module()
    grant = require(module, "create")
    services = opening.services_for(current_user)
    service = sub = None
    if services:
        service_id = request.args.get("service", type=int)
        if service_id is None:
            return render_template("tickets/wizard_service.html", module=module, grant=grant, services=services)
        service = next((s for s in services if s.id == service_id), None)
        if service is None:
            abort(404)
        subcategories = list(getattr(service, "subcategories", None) or [])
        if subcategories:
            sub_id = request.args.get("sub", type=int)
            if sub_id is None:
                return render_template("tickets/wizard_subcategory.html", module=module, grant=grant,
                                       service=service, subcategories=subcategories)
            sub = next(((i, n) for i, n in subcategories if i == sub_id), None)
            if sub is None:
                abort(404)
    products = opening.products_for(current_user)
    form, mapped = opening.request_form(service, sub, products)
    status = 200
    upload_error = None
    if form.validate_on_submit():
        try:
            ticket = opening.submit_request(form, _actor(), current_user.contact, service, sub, products)
        except UploadRejected as exc:
            upload_error, status = exc.message, exc.status
        else:
            flash(_("Request %(number)s sent. We will answer as soon as possible.", number=ticket.number), "success")
            return redirect(url_for("tickets.detail", record_id=ticket.id))
    elif request.method == "POST":
        status = 400
    suggest_url = url_for("faq.suggest") if "faq.suggest" in current_app.view_functions else None
    return render_template("tickets/wizard_form.html", module=module, grant=grant, form=form, service=service,
                           sub=sub, services=services, mapped_category=mapped, upload_error=upload_error,
                           suggest_url=suggest_url, max_upload_mb=_max_upload_mb()), status


@bp.post("/<int:record_id>/comment")
def comment(record_id: int):
    """A public comment or a private note to support."""
    ticket, grant = _ticket_for(record_id, "comment")
    form = CommentForm()
    if not form.validate_on_submit():
        return _refused(ticket, grant, _("Please write a comment."), 400)
    kind = "private" if form.kind.data == "private" else "public"
    try:
        with db.atomic():
            workflow.add_comment(ticket, _actor(), form.body.data, kind)
    except workflow.TransitionRefused as exc:
        return _conflict(ticket, grant, exc, _("This request is closed: it can no longer be changed."))
    flash(_("Private note sent to support.") if kind == "private" else _("Comment added."), "success")
    return _back(ticket, "#conversation")


@bp.post("/<int:record_id>/upload")
def upload(record_id: int):
    """Attach one or more files (JSON answer for the page's drop zone)."""
    ticket, grant = _ticket_for(record_id, "comment")
    if workflow.is_final(ticket):
        return _refused(ticket, grant, _("This request is closed: it can no longer be changed."), 409)
    files = request.files.getlist("file")
    if not any(f and f.filename for f in files):
        return _refused(ticket, grant, _("Please choose a file to upload."), 400)
    try:
        stored = opening.store_files(files)
    except UploadRejected as exc:
        return _refused(ticket, grant, exc.message, exc.status)
    try:
        with db.atomic():
            rows = [workflow.attach(ticket, _actor(), item) for item in stored]
    except workflow.TransitionRefused as exc:  # closed after the check above
        opening.discard_files(stored)
        return _conflict(ticket, grant, exc, _("This request is closed: it can no longer be changed."))
    except Exception:
        opening.discard_files(stored)
        raise
    if _wants_json():
        return jsonify({"ok": True, "files": [{"name": r.original_name, "size": r.size} for r in rows]})
    flash(_("File attached.") if len(rows) == 1 else _("%(n)s files attached.", n=len(rows)), "success")
    return _back(ticket, "#attachments")


@bp.get("/<int:record_id>/attachments/<int:attachment_id>")
def download(record_id: int, attachment_id: int):
    """One attachment of a ticket in the user's scope."""
    module = current_module()
    require(module, "view")
    ticket = get_or_404(module, record_id)
    return send_attachment(ticket.id, attachment_id)


@bp.post("/<int:record_id>/close")
def close(record_id: int):
    """"Ok, resolved": close a resolved ticket with a 1–5 rating."""
    ticket, grant = _ticket_for(record_id, "close")
    form = CloseForm()
    if not form.validate_on_submit():
        return _refused(ticket, grant, _("Please choose a rating from 1 to 5."), 400)
    try:
        with db.atomic():
            workflow.close_by_customer(ticket, _actor(), form.rating.data, form.comment.data)
    except workflow.TransitionRefused as exc:
        return _conflict(ticket, grant, exc, _("Only a resolved request can be closed."))
    except ValueError:
        return _refused(ticket, grant, _("Please choose a rating from 1 to 5."), 400)
    flash(_("Thank you: the request is closed."), "success")
    return _back(ticket)


@bp.post("/<int:record_id>/withdraw")
def withdraw(record_id: int):
    """The customer withdraws a ticket support has not resolved yet (closes it), with an optional
    reason that the history keeps for staff."""
    ticket, grant = _ticket_for(record_id, "close")
    form = WithdrawForm()
    if not form.validate_on_submit():
        return _refused(ticket, grant, _("The reason is too long."), 400)
    try:
        with db.atomic():
            workflow.withdraw(ticket, _actor(), form.reason.data)
    except workflow.TicketChanged as exc:
        return _conflict(ticket, grant, exc, "")
    except workflow.TransitionRefused as exc:
        if str(exc) == "closed":
            return _refused(ticket, grant, _("This request is already closed."), 409)
        return _conflict(ticket, grant, exc, _("This request cannot be withdrawn in its present state."))
    flash(_("Request withdrawn: it is now closed."), "success")
    return _back(ticket)


@bp.get("/<int:record_id>/comments")
def comments(record_id: int):
    """One older page of the conversation (``?page=``) as an HTML fragment, for the ticket page's
    "older comments" link (the link itself opens the ticket page on that page)."""
    module = current_module()
    require(module, "view")
    ticket = get_or_404(module, record_id)
    context = conversation_context(ticket, current_user, comments_page(request.args.get("page")))
    return render_template("tickets/_comments.html", record=ticket, fragment=True, **context)


@bp.post("/<int:record_id>/reopen")
def reopen(record_id: int):
    """"It is not resolved": send a resolved ticket back to support with a comment."""
    ticket, grant = _ticket_for(record_id, "comment")
    form = ReopenForm()
    if not form.validate_on_submit():
        return _refused(ticket, grant, _("Please tell us what is still not working."), 400)
    try:
        with db.atomic():
            workflow.reopen(ticket, _actor(), form.body.data)
    except workflow.TransitionRefused as exc:
        return _conflict(ticket, grant, exc, _("Only a resolved request can be sent back to support."))
    flash(_("Sent back to support with your comment."), "success")
    return _back(ticket)
