"""The tickets' write side of the API: open a ticket for a contact, change its fields, move it
through the workflow, and read and write its comments and attachments.

Everything goes through the tickets module's own code: the request form and submission of the
portal's wizard (:mod:`~crm_portal.modules.tickets.opening`), the workflow's changes and their
signals, the portal's upload rules. An integration alone works a ticket as support does (actor
kind "staff", named after the integration); acting as a contact (``X-Act-As-Contact``) it does
exactly what that contact may do in the portal, with their grants and scope (404 outside it).
Reads need ``tickets:read``, writes ``tickets:write``.
"""
from __future__ import annotations

from typing import Any, NoReturn

import marshmallow as ma
from flask import Flask, abort, current_app, g, request, url_for
from flask_babel import gettext as _
from flask_smorest import Blueprint
from flask_smorest import abort as abort_with
from werkzeug.datastructures import MultiDict

from ..auth import PortalUser
from ..db import db
from ..models import StaffUser
from ..scoping import IntegrationPrincipal, get_or_404, require
from ..uploads import UploadRejected
from .auth import acting_user, audit_integration, scoped
from .concurrency import check_if_match
from .records import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from .writes import (
    ETAG_HEADER,
    IF_MATCH_PARAMETER,
    contact_named,
    get_for_update,
    invalid,
    json_object,
    load,
    record_answer,
)

NAME = "tickets"
READ = "tickets:read"
WRITE = "tickets:write"
#: Files in one upload request (each is checked against the portal's size and type rules).
MAX_FILES = 10


# --- schemas -------------------------------------------------------------------------------------
class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class TicketCreateArgs(_Strict):
    contact_id = ma.fields.Integer(strict=True, metadata={"description": "the contact the ticket is for"})
    contact_email = ma.fields.String(metadata={"description": "or the contact's email"})
    service_id = ma.fields.Integer(strict=True, allow_none=True, metadata={
        "description": "one of the contact's services (required when they have any)"})
    subcategory_id = ma.fields.Integer(strict=True, allow_none=True, metadata={
        "description": "one of the service's sub-categories (required when it has any)"})
    title = ma.fields.String(metadata={"description": "required, at most 200 characters"})
    description = ma.fields.String(metadata={"description": "required"})
    type = ma.fields.String(metadata={"description": "question, problem or request"})
    category = ma.fields.Integer(strict=True, allow_none=True, metadata={
        "description": "id of an active category (fixed by the service's mapping, if any)"})
    priority = ma.fields.String(metadata={"description": "urgent, medium or low"})
    severity = ma.fields.String(metadata={"description": "blocking or non_blocking"})
    product = ma.fields.Integer(strict=True, allow_none=True,
                                metadata={"description": "id of one of the contact's products"})
    answers = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(allow_none=True),
                             metadata={"description": "guided question id → answer"})


class TicketUpdateArgs(_Strict):
    assignee_id = ma.fields.Integer(strict=True, allow_none=True,
                                    metadata={"description": "an active operator, or null"})
    priority = ma.fields.String(metadata={"description": "urgent, medium or low"})
    category_id = ma.fields.Integer(strict=True, allow_none=True,
                                    metadata={"description": "an active category, or null"})
    planned_for = ma.fields.Date(allow_none=False, metadata={"description": "only in a state that asks for a date"})


class TicketTransitionArgs(_Strict):
    to = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=32),
                          metadata={"description": "the key of the target state"})
    comment = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=20000),
                               metadata={"description": "kept on the history row; a contact's reopening needs it"})
    planned_for = ma.fields.Date(metadata={"description": "for a state that asks for a date"})
    rating = ma.fields.Integer(strict=True, validate=ma.validate.Range(1, 5),
                               metadata={"description": "1–5: a contact closing a resolved ticket"})


class TicketCommentArgs(_Strict):
    body = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=20000))
    kind = ma.fields.String(load_default="public",
                            metadata={"description": "public; internal (integration) or private (acting as a contact)"})


class TicketCommentSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    body = ma.fields.String()
    author_name = ma.fields.String()
    author_contact_id = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.DateTime()


class TicketCommentPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TicketCommentSchema))
    next_cursor = ma.fields.String(allow_none=True)
    has_more = ma.fields.Boolean()


class TicketAttachmentSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String(attribute="original_name")
    size = ma.fields.Integer()
    mimetype = ma.fields.String()
    uploaded_by = ma.fields.String()
    created_at = ma.fields.DateTime()


class TicketAttachmentList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TicketAttachmentSchema))


class TicketCommentListArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=DEFAULT_LIMIT, validate=ma.validate.Range(1, MAX_LIMIT))
    cursor = ma.fields.String(load_default=None, validate=ma.validate.Length(max=200))


class TicketUploadArgs(ma.Schema):
    file = ma.fields.Raw(metadata={"type": "string", "format": "binary", "description": f"1 to {MAX_FILES} files"})


# --- helpers -------------------------------------------------------------------------------------
def _tickets() -> Any:
    """The application's tickets module (the routes exist only when it is enabled)."""
    return current_app.extensions["crm_portal"].modules[NAME]


def _integration_name() -> str:
    return g.api_principal.integration.name


def _actor(user: Any) -> Any:
    from crm_portal.modules.tickets import workflow

    contact = user.contact if isinstance(user, PortalUser) else None
    return workflow.Actor.for_integration(_integration_name(), contact)


def _conflict(message: str) -> NoReturn:
    abort(409, message)


def _may_act(ticket: Any, user: Any, action: str) -> None:
    """A contact's right to ``action`` on ``ticket``, as in the portal: the grant (403), and their
    own ticket or a colleague's with ``comment_others`` (403). An integration alone may."""
    if isinstance(user, IntegrationPrincipal):
        return
    grant = require(NAME, action, user)
    if ticket.contact_id != user.contact_id and "comment_others" not in grant.action_set:
        abort(403, _("This contact may not act on a colleague's request."))


def _refused(exc: Exception) -> NoReturn:
    from crm_portal.modules.tickets import workflow

    if isinstance(exc, workflow.TicketChanged):
        _conflict(_("This request was changed meanwhile: read it again and retry."))
    if str(exc) == "closed":
        _conflict(_("This request is closed: it can no longer be changed."))
    _conflict(_("The workflow does not allow this change in the request's present state."))


# --- create --------------------------------------------------------------------------------------
def _service_choice(user: Any, data: dict[str, Any]) -> tuple[Any, Any]:
    """The service and sub-category the wizard would ask ``user`` for (422 when missing or not theirs)."""
    from crm_portal.modules.tickets import opening

    services = opening.services_for(user) or []
    raw_service, raw_sub = data.get("service_id"), data.get("subcategory_id")
    if not services:
        if raw_service is not None or raw_sub is not None:
            invalid({"service_id": [_("This contact has no services to choose from.")]})
        return None, None
    if raw_service is None:
        invalid({"service_id": [_("Choose one of the contact's services.")]})
    service = opening.find_service(services, raw_service)
    if service is None:
        invalid({"service_id": [_("Choose one of the contact's services.")]})
    sub = None
    if getattr(service, "subcategories", None):
        sub = opening.find_subcategory(service, raw_sub) if raw_sub is not None else None
        if sub is None:
            invalid({"subcategory_id": [_("Choose one of the service's sub-categories.")]})
    elif raw_sub is not None:
        invalid({"subcategory_id": [_("This service has no sub-categories.")]})
    return service, sub


def _request_form(data: dict[str, Any], service: Any, sub: Any, products: list[Any]) -> Any:
    """The wizard's request form filled from ``data`` and validated (422 with its messages; a
    guided question's errors under ``answers.<id>``)."""
    from crm_portal.modules.tickets import opening

    formdata = MultiDict()
    for name in ("title", "description", "type", "priority", "severity", "category", "product"):
        value = data.get(name)
        if value is not None:
            formdata.add(name, str(value))
    answers = data.get("answers") or {}
    for key, value in answers.items():
        formdata.add(f"q_{key}", value or "")
    form, _mapped = opening.request_form(service, sub, products, formdata=formdata, meta={"csrf": False})
    known = {name for name, _question in form.question_fields}
    unknown = {f"answers.{key}": [_("No such question for this request.")]
               for key in answers if f"q_{key}" not in known}
    if "product" in data and data["product"] is not None and getattr(form, "product", None) is None:
        unknown["product"] = [_("This contact has no products to choose from.")]
    valid = form.validate()
    errors = {(f"answers.{name[2:]}" if name.startswith("q_") else name): messages
              for name, messages in form.errors.items()}
    if unknown or not valid:
        invalid({**errors, **unknown})
    return form


def _create() -> Any:
    from crm_portal.modules.tickets import opening

    module = _tickets()
    user = acting_user()
    data = load(TicketCreateArgs(), json_object())
    if isinstance(user, IntegrationPrincipal):
        contact = contact_named({k: data[k] for k in ("contact_id", "contact_email") if k in data})
        contact, problem = opening.contact_for_ticket(contact.id)
        if problem is not None:
            invalid({"contact_id": [problem]})
        offered_to: Any = PortalUser(contact)  # offered exactly what the contact's wizard offers
    else:
        require(module, "create", user)
        if "contact_id" in data or "contact_email" in data:
            invalid({"contact_id": [_("Acting as a contact, the request is opened for that contact.")]})
        contact, offered_to = user.contact, user
    service, sub = _service_choice(offered_to, data)
    products = opening.products_for(offered_to)
    form = _request_form(data, service, sub, products)
    try:
        ticket = opening.submit_request(
            form, _actor(user), contact, service, sub, products,
            then=lambda t: audit_integration("ticket-opened-by-api", t,
                                             details={"contact": contact.email, "number": t.number}))
    except UploadRejected as exc:  # no files in a JSON body; kept for a multipart client
        abort(exc.status, exc.message)
    return record_answer(module, ticket, user, 201,
                         {"Location": url_for("api_v1.tickets_detail", record_id=ticket.id)})


# --- update ----------------------------------------------------------------------------------------
def _update(record_id: int) -> Any:
    from crm_portal.modules.tickets import workflow
    from crm_portal.modules.tickets.models import PRIORITIES, TicketCategory, is_valid_id

    module = _tickets()
    user = acting_user()
    if not isinstance(user, IntegrationPrincipal):
        get_or_404(module, record_id, user=user)  # 404 outside the contact's scope first
        abort(403, _("Contacts cannot change these fields of a request, in the portal or here."))
    data = load(TicketUpdateArgs(), json_object())
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    if "assignee_id" in data:
        staff = None
        if data["assignee_id"] is not None:
            raw = data["assignee_id"]
            staff = (StaffUser.get_or_none((StaffUser.id == raw) & (StaffUser.active == True))  # noqa: E712
                     if is_valid_id(raw) else None)
            if staff is None:
                errors["assignee_id"] = [_("Unknown operator.")]
        values["assignee"] = staff
    if "priority" in data:
        if data["priority"] not in PRIORITIES:
            errors["priority"] = [_("Give one of: %(choices)s.", choices=", ".join(PRIORITIES))]
        values["priority"] = data["priority"]
    if "category_id" in data:
        raw = data["category_id"]
        if raw is not None and not (is_valid_id(raw) and TicketCategory.get_or_none(
                (TicketCategory.id == raw) & (TicketCategory.active == True))):  # noqa: E712
            errors["category_id"] = [_("Unknown or inactive category.")]
        values["category"] = raw
    if "planned_for" in data:
        values["planned_for"] = data["planned_for"]
    if errors:
        invalid(errors)
    with db.atomic():
        ticket = get_for_update(module, record_id, user)
        check_if_match(ticket)
        try:
            changes = workflow.update_fields(ticket, _actor(user), values)
        except workflow.TicketChanged as exc:
            _refused(exc)
        except workflow.TransitionRefused:
            invalid({"planned_for": [_("Only a request in a state with a planned date takes one.")]})
        if changes:
            audit_integration("ticket-updated", ticket, details={k: [str(a), str(b)] for k, (a, b) in changes.items()})
    return record_answer(module, ticket, user)


# --- transitions -----------------------------------------------------------------------------------
def _transition(record_id: int) -> Any:
    from crm_portal.modules.tickets import workflow

    module = _tickets()
    user = acting_user()
    data = load(TicketTransitionArgs(), json_object())
    target, comment = data["to"], (data.get("comment") or "").strip() or None
    if target not in workflow.states():
        invalid({"to": [_("Unknown state.")]})
    actor = _actor(user)
    with db.atomic():
        ticket = get_for_update(module, record_id, user)
        check_if_match(ticket)
        try:
            if isinstance(user, IntegrationPrincipal):
                workflow.change_state(ticket, target, actor, planned_for=data.get("planned_for"), note=comment)
            else:
                _customer_move(ticket, user, actor, target, comment, data.get("rating"))
        except workflow.TransitionRefused as exc:
            if str(exc) == "date":
                invalid({"planned_for": [_("Choose the date the activity is planned for.")]})
            if isinstance(exc, workflow.TicketChanged) or str(exc) == "closed":
                _refused(exc)
            allowed = workflow.allowed_targets(ticket, actor.kind)
            _conflict(_("The workflow does not allow moving this request from %(old)s to %(new)s (allowed: "
                        "%(allowed)s).", old=ticket.status, new=target, allowed=", ".join(allowed) or "—"))
        audit_integration("ticket-moved", ticket,
                          details={"to": target, "acting_as": getattr(user, "contact_id", None)})
    return record_answer(module, ticket, user)


def _customer_move(ticket: Any, user: Any, actor: Any, target: str, comment: str | None, rating: int | None) -> None:
    """The moves the portal offers a contact: close a resolved request with a rating, send it back
    to support with a comment, withdraw an open one (with an optional reason)."""
    from crm_portal.modules.tickets import workflow

    if target == workflow.CLOSED and ticket.status == workflow.RESOLVED:
        _may_act(ticket, user, "close")
        if rating is None:
            invalid({"rating": [_("Please choose a rating from 1 to 5.")]})
        workflow.close_by_customer(ticket, actor, rating, comment)
    elif target == workflow.CLOSED:
        _may_act(ticket, user, "close")
        workflow.withdraw(ticket, actor, comment)
    elif target == workflow.WAITING_SUPPORT and ticket.status == workflow.RESOLVED:
        _may_act(ticket, user, "comment")
        if not comment:
            invalid({"comment": [_("Please tell us what is still not working.")]})
        workflow.reopen(ticket, actor, comment)
    else:
        raise workflow.TransitionRefused(target)


# --- comments ----------------------------------------------------------------------------------------
def _visible_comments(ticket: Any, user: Any) -> Any:
    """The comments ``user`` reads: all of them for an integration alone; for a contact, the public
    ones and their own private notes (never internal notes), as in the portal."""
    from crm_portal.modules.tickets.models import TicketComment

    query = TicketComment.select().where(TicketComment.ticket == ticket.id)
    if not isinstance(user, IntegrationPrincipal):
        query = query.where((TicketComment.kind == "public")
                            | ((TicketComment.kind == "private") & (TicketComment.author_contact == user.contact_id)))
    return query


def _comment_dict(row: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "body": row.body, "author_name": row.author_name,
            "author_contact_id": row.author_contact_id, "created_at": row.created_at}


def _comments(record_id: int, limit: int, cursor: str | None) -> dict[str, Any]:
    from crm_portal.modules.tickets.models import TicketComment

    user = acting_user()
    ticket = get_or_404(_tickets(), record_id, user=user)
    query = _visible_comments(ticket, user)
    stamp = TicketComment.created_at
    if cursor:
        when, last_id = decode_cursor(cursor, stamp)
        query = query.where((stamp > when) | ((stamp == when) & (TicketComment.id > last_id)))
    rows = list(query.order_by(stamp, TicketComment.id).limit(limit + 1))
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [_comment_dict(r) for r in rows], "has_more": has_more,
            "next_cursor": encode_cursor(rows[-1], stamp) if has_more and rows else None}


def _add_comment(record_id: int) -> Any:
    from crm_portal.modules.tickets import workflow

    user = acting_user()
    data = load(TicketCommentArgs(), json_object())
    kinds = ("public", "internal") if isinstance(user, IntegrationPrincipal) else ("public", "private")
    if data["kind"] not in kinds:
        invalid({"kind": [_("Give one of: %(choices)s.", choices=", ".join(kinds))]})
    if not data["body"].strip():
        invalid({"body": [_("Please write a comment.")]})
    with db.atomic():
        ticket = get_for_update(_tickets(), record_id, user)
        _may_act(ticket, user, "comment")
        try:
            comment = workflow.add_comment(ticket, _actor(user), data["body"], data["kind"])
        except workflow.TransitionRefused as exc:
            _refused(exc)
        audit_integration("ticket-commented", ticket, details={"kind": comment.kind, "comment": comment.id})
    return _comment_dict(comment), 201


# --- attachments -----------------------------------------------------------------------------------
def _attachments(record_id: int) -> dict[str, Any]:
    from crm_portal.modules.tickets.models import TicketAttachment

    ticket = get_or_404(_tickets(), record_id, user=acting_user())
    rows = list(TicketAttachment.select().where(TicketAttachment.ticket == ticket.id)
                .order_by(TicketAttachment.created_at, TicketAttachment.id))
    return {"items": rows}


def _upload(record_id: int) -> Any:
    from crm_portal.modules.tickets import opening, workflow

    user = acting_user()
    module = _tickets()
    ticket = get_or_404(module, record_id, user=user)
    _may_act(ticket, user, "comment")
    if request.mimetype != "multipart/form-data":
        abort(415, _("Send the files as multipart/form-data in the field \"file\"."))
    unknown = [name for name in list(request.files) + list(request.form) if name != "file"]
    if unknown:
        invalid({name: [_("Unknown field.")] for name in unknown})
    files = [f for f in request.files.getlist("file") if f and f.filename]
    if not files:
        invalid({"file": [_("Please choose a file to upload.")]})
    if len(files) > MAX_FILES:
        invalid({"file": [_("At most %(n)s files at a time.", n=MAX_FILES)]})
    actor = _actor(user)
    if actor.kind == "customer" and workflow.is_final(ticket):
        _conflict(_("This request is closed: it can no longer be changed."))
    try:
        stored = opening.store_files(files)
    except UploadRejected as exc:
        abort_with(exc.status, message=exc.message, errors={"file": [exc.message]})
    try:
        with db.atomic():
            ticket = get_for_update(module, record_id, user)
            rows = [workflow.attach(ticket, actor, item) for item in stored]
            audit_integration("ticket-attached", ticket, details={"files": [r.original_name for r in rows]})
    except workflow.TransitionRefused as exc:
        opening.discard_files(stored)
        _refused(exc)
    except BaseException:
        opening.discard_files(stored)
        raise
    return {"items": rows}, 201


def _download(record_id: int, attachment_id: int) -> Any:
    from crm_portal.modules.tickets import views

    ticket = get_or_404(_tickets(), record_id, user=acting_user())
    return views.send_attachment(ticket.id, attachment_id)


# --- routes ------------------------------------------------------------------------------------------
def add_routes(bp: Blueprint, app: Flask) -> None:
    """Mount the tickets' write routes when the application has the tickets module."""
    if NAME not in app.extensions["crm_portal"].modules:
        return
    from . import ApiErrorSchema, _doc, _errors
    from .records import record_schema

    item = record_schema(app.extensions["crm_portal"].modules[NAME])
    tags = [NAME]

    def more(*statuses: int) -> Any:
        texts = {409: "The workflow does not allow it, the request is closed, or it changed meanwhile.",
                 412: "If-Match does not match the ticket's ETag.", 413: "A file is too large.",
                 415: "Wrong content type (JSON, or multipart for files; or a file type not allowed).",
                 422: "Invalid JSON, unknown fields or values the request form refuses (field errors)."}

        def decorate(view: Any) -> Any:
            for status in statuses:
                view = bp.alt_response(status, schema=ApiErrorSchema, description=texts[status])(view)
            return view
        return decorate

    @bp.route(f"/{NAME}", endpoint="tickets_create", methods=["POST"])
    @bp.response(201, item, headers=ETAG_HEADER)
    @more(415, 422)
    @_errors(bp)
    @bp.doc(**_doc(WRITE, "Open a ticket for a contact"), tags=tags,
            requestBody={"content": {"application/json": {"schema": TicketCreateArgs}}})
    @scoped(WRITE)
    def create() -> Any:
        return _create()

    @bp.route(f"/{NAME}/<int(signed=True):record_id>", endpoint="tickets_update", methods=["PATCH"])
    @bp.response(200, item, headers=ETAG_HEADER)
    @more(409, 412, 415, 422)
    @_errors(bp)
    @bp.doc(**_doc(WRITE, "Change a ticket's assignee, priority, category or planned date"), tags=tags,
            requestBody={"content": {"application/json": {"schema": TicketUpdateArgs}}})
    @bp.doc(parameters=[IF_MATCH_PARAMETER])
    @scoped(WRITE)
    def update(record_id: int) -> Any:
        return _update(record_id)

    @bp.route(f"/{NAME}/<int(signed=True):record_id>/transitions", endpoint="tickets_transition", methods=["POST"])
    @bp.response(200, item, headers=ETAG_HEADER)
    @more(409, 412, 415, 422)
    @_errors(bp)
    @bp.doc(**_doc(WRITE, "Move a ticket to another workflow state"), tags=tags,
            requestBody={"content": {"application/json": {"schema": TicketTransitionArgs}}})
    @bp.doc(parameters=[IF_MATCH_PARAMETER])
    @scoped(WRITE)
    def transition(record_id: int) -> Any:
        return _transition(record_id)

    @bp.route(f"/{NAME}/<int(signed=True):record_id>/comments", endpoint="tickets_comments", methods=["GET"])
    @bp.arguments(TicketCommentListArgs, location="query", as_kwargs=True)
    @bp.response(200, TicketCommentPage)
    @_errors(bp)
    @bp.doc(**_doc(READ, "A ticket's comments, oldest first"), tags=tags)
    @scoped(READ)
    def comments(record_id: int, limit: int, cursor: str | None) -> Any:
        return _comments(record_id, limit, cursor)

    @bp.route(f"/{NAME}/<int(signed=True):record_id>/comments", endpoint="tickets_comment", methods=["POST"])
    @bp.response(201, TicketCommentSchema)
    @more(409, 415, 422)
    @_errors(bp)
    @bp.doc(**_doc(WRITE, "Add a comment to a ticket"), tags=tags,
            requestBody={"content": {"application/json": {"schema": TicketCommentArgs}}})
    @scoped(WRITE)
    def comment(record_id: int) -> Any:
        return _add_comment(record_id)

    @bp.route(f"/{NAME}/<int(signed=True):record_id>/attachments", endpoint="tickets_attachments", methods=["GET"])
    @bp.response(200, TicketAttachmentList)
    @_errors(bp)
    @bp.doc(**_doc(READ, "A ticket's attachments"), tags=tags)
    @scoped(READ)
    def attachments(record_id: int) -> Any:
        return _attachments(record_id)

    @bp.route(f"/{NAME}/<int(signed=True):record_id>/attachments", endpoint="tickets_upload", methods=["POST"])
    @bp.response(201, TicketAttachmentList)
    @more(409, 413, 415, 422)
    @_errors(bp)
    @bp.doc(**_doc(WRITE, "Attach files to a ticket (the portal's upload rules)"), tags=tags,
            requestBody={"content": {"multipart/form-data": {"schema": TicketUploadArgs}}})
    @scoped(WRITE)
    def upload(record_id: int) -> Any:
        return _upload(record_id)

    @bp.route(f"/{NAME}/<int(signed=True):record_id>/attachments/<int(signed=True):attachment_id>",
              endpoint="tickets_download", methods=["GET"])
    @bp.response(200, description="The file, as stored.", content_type="application/octet-stream")
    @_errors(bp)
    @bp.doc(**_doc(READ, "Download one attachment of a ticket"), tags=tags)
    @scoped(READ)
    def download(record_id: int, attachment_id: int) -> Any:
        return _download(record_id, attachment_id)
