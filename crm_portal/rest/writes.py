"""The API's writes: JSON bodies, records locked through the gate, and ``POST /<module>`` /
``PATCH /<module>/{id}`` for every module that declares portal forms (``Module.create_form``,
``Module.edit_form``), validated by those very forms.

A module's write routes need ``<module>:write``. An integration acting as a contact
(``X-Act-As-Contact``) writes exactly as that contact would in the portal: their ``create`` /
``edit`` grant, their scope (404 outside it); alone, it creates a record for the contact named by
``contact_id`` or ``contact_email`` and edits any record. Every write runs in one transaction,
sends ``record_created`` / ``record_updated`` with ``user`` = the acting principal and is audited
with the integration as actor.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import marshmallow as ma
from flask import Flask, abort, current_app, request, url_for
from flask_babel import gettext as _
from flask_smorest import Blueprint
from flask_smorest import abort as abort_with
from peewee import IntegrityError, fn
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, FileField
from wtforms.fields.core import UnboundField

from .. import signals
from ..api import Module
from ..auth import PortalUser
from ..db import db, is_postgres
from ..models import Contact
from ..scoping import IntegrationPrincipal, get_or_404, require
from .auth import acting_user, audit_integration, scoped
from .concurrency import check_if_match, etag_of
from .records import api_fields, as_dict, hidden_columns, record_schema

#: Body fields naming the contact a record is created for (an integration not acting as one).
OWNER_FIELDS = ("contact_id", "contact_email")
ETAG_HEADER = {"ETag": {"description": "the record's ETag: send it as If-Match to update it safely",
                        "schema": {"type": "string"}}}
IF_MATCH_PARAMETER = {"in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"},
                      "description": "Apply only if the record's ETag is still this one (else 412); optional."}


# --- request bodies ------------------------------------------------------------------------------
def invalid(errors: Mapping[str, Any], message: str | None = None) -> NoReturn:
    """422 with field errors (field → list of messages); nothing has been written."""
    abort_with(422, message=message or _("Some values are not valid."),
               errors={k: [str(m) for m in (v if isinstance(v, (list, tuple)) else [v])] for k, v in errors.items()})


def json_object() -> dict[str, Any]:
    """The request's JSON object: 415 for another content type, 422 for invalid JSON or not an object."""
    if not request.is_json:
        abort(415, _("Send a JSON object with Content-Type: application/json."))
    try:
        data = json.loads(request.get_data(cache=True) or b"")
    except (ValueError, UnicodeDecodeError):
        invalid({}, _("The body is not valid JSON."))
    if not isinstance(data, dict):
        invalid({}, _("The body must be a JSON object."))
    return data


def load(schema: ma.Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` checked by ``schema`` (types, unknown fields): 422 with its messages."""
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        invalid({k: _flatten(v) for k, v in messages.items()})


def _flatten(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [m for v in value.values() for m in _flatten(v)]
    if isinstance(value, (list, tuple)):
        return [m for v in value for m in _flatten(v)]
    return [str(value)]


# --- records ---------------------------------------------------------------------------------------
def get_for_update(module: Module | str, record_id: Any, user: Any, action: str = "view") -> Any:
    """The record through the gate (404 outside scope, 403 without ``action``), its row locked
    until the transaction ends on PostgreSQL (SQLite's write transaction already serialises
    writers): the If-Match check and the write see the same row."""
    if isinstance(module, str):
        module = current_app.extensions["crm_portal"].modules[module]
    query = module.base_query()
    if is_postgres():
        query = query.for_update(of=module.record)
    return get_or_404(module, record_id, user=user, action=action, query=query)


def record_answer(module: Module, row: Any, user: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The record as stored (read again: the values a later GET reads, and so its ETag) as the API
    shows it to ``user``, with its ETag."""
    record = module.record
    assert record is not None
    row = module.base_query().where(record._meta.primary_key == row.get_id()).first() or row
    body = as_dict(row, api_fields(module), hidden_columns(module, user))
    return body, status, {"ETag": etag_of(row), **(headers or {})}


def contact_named(data: dict[str, Any]) -> Contact:
    """The contact of ``contact_id`` or ``contact_email`` (taken out of ``data``): 422 if neither
    names one."""
    raw_id = data.pop("contact_id", None)
    raw_email = data.pop("contact_email", None)
    contact = None
    if raw_id is not None:
        if isinstance(raw_id, bool) or not isinstance(raw_id, int) or not 0 < raw_id < 2**31:
            invalid({"contact_id": [_("Give the id of a contact.")]})
        contact = Contact.get_or_none(Contact.id == raw_id)
    elif raw_email is not None:
        if not isinstance(raw_email, str) or len(raw_email) > 254:
            invalid({"contact_email": [_("Give the email address of a contact.")]})
        contact = Contact.get_or_none(fn.LOWER(Contact.email) == raw_email.strip().lower())
    else:
        invalid({"contact_id": [_("Name the contact with contact_id or contact_email (or act as them with "
                                  "X-Act-As-Contact).")]})
    if contact is None:
        invalid({"contact_id" if raw_id is not None else "contact_email": [_("No such contact.")]})
    return contact


# --- module forms ----------------------------------------------------------------------------------
def _form_fields(form: Any) -> dict[str, Any]:
    """The form's fields a JSON body may set (not the CSRF token, not file uploads)."""
    return {f.name: f for f in form if f.name != "csrf_token" and not isinstance(f, FileField)}


def _as_formdata(form: Any, data: Mapping[str, Any], current: Any = None) -> MultiDict:
    """``data`` as the form data ``form`` parses, checked field by field: 422 for unknown fields
    and values that are not a single string, number, boolean or null. With ``current`` (a form
    filled from the record), the fields ``data`` leaves out keep their values (PATCH)."""
    fields = _form_fields(form)
    errors: dict[str, list[str]] = {}
    for name in data:
        if name not in fields:
            errors[name] = [_("Unknown field.")]
    for name, value in data.items():
        if name in fields and not (value is None or isinstance(value, (str, int, float, bool))):
            errors[name] = [_("Give a single value (text, number, true/false or null).")]
        elif name in fields and isinstance(value, bool) != isinstance(fields[name], BooleanField) and value is not None:
            errors[name] = [_("Give true or false.") if isinstance(fields[name], BooleanField)
                            else _("Give a value, not true or false.")]
    if errors:
        invalid(errors)
    out = MultiDict()
    for name in fields:
        if name in data:
            value = data[name]
        elif current is not None:
            value = _current_value(current[name])
        else:
            continue
        if value is True:
            out.add(name, "y")
        elif value is not False:
            out.add(name, "" if value is None else str(value))
    return out


def _current_value(fld: Any) -> Any:
    """A filled field's value as its form data would give it back (a PATCH keeps it)."""
    if isinstance(fld, BooleanField):
        return bool(fld.data)
    if hasattr(fld, "_value"):
        return fld._value()
    return None if fld.data is None else str(fld.data)


def _validated(form_class: type, data: Mapping[str, Any], record: Any = None) -> Any:
    """The module's own form, filled from ``data`` and validated (422 with its messages)."""
    meta = {"csrf": False}
    current = form_class(formdata=None, obj=record, meta=meta) if record is not None else None
    probe = current if current is not None else form_class(formdata=None, meta=meta)
    form = form_class(formdata=_as_formdata(probe, data, current), obj=record, meta=meta)
    if not form.validate():
        invalid(dict(form.errors))
    return form


def refused() -> NoReturn:
    """422 for values the form accepted but the database refuses (a required column left empty, a
    duplicate): the transaction rolled back, nothing was written."""
    invalid({}, _("These values cannot be saved (a required value is missing or one is already taken)."))


def _changes(form: Any, record: Any) -> dict[str, tuple[Any, Any]]:
    from ..views.records import _changes as portal_changes  # the portal's edit view computes them so

    return portal_changes(form, record)


def _add_module_writes(bp: Blueprint, module: Module) -> None:
    from . import ApiErrorSchema, _doc, _errors

    name = module.name
    scope = f"{name}:write"
    item = record_schema(module)
    more = {409: "The record changed meanwhile.", 412: "If-Match does not match the record's ETag.",
            415: "The body is not JSON.", 422: "Invalid JSON, unknown fields or values the form refuses."}

    def more_errors(view: Any) -> Any:
        for status, description in more.items():
            view = bp.alt_response(status, schema=ApiErrorSchema, description=description)(view)
        return view

    def body_doc(form_class: type, owner: bool) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for attr in dir(form_class):
            unbound = getattr(form_class, attr, None)
            if not isinstance(unbound, UnboundField) or issubclass(unbound.field_class, FileField):
                continue
            boolean = issubclass(unbound.field_class, BooleanField)
            properties[attr] = {"type": "boolean"} if boolean else {"type": ["string", "number", "null"]}
        if owner:
            properties["contact_id"] = {"type": "integer", "description": "the contact the record is for"}
            properties["contact_email"] = {"type": "string", "description": "or the contact's email"}
        return {"content": {"application/json": {"schema": {"type": "object", "properties": properties,
                                                            "additionalProperties": False}}}}

    if module.create_form is not None:
        form_class = module.create_form
        owned = module.contact_field is not None or module.company_field is not None

        @bp.route(f"/{name}", endpoint=f"{name}_create", methods=["POST"])
        @bp.response(201, item, headers=ETAG_HEADER)
        @more_errors
        @_errors(bp)
        @bp.doc(**_doc(scope, f"Create one of {name}"), tags=[name], requestBody=body_doc(form_class, owned))
        @scoped(scope)
        def create_view() -> Any:
            user = acting_user()
            data = json_object()
            if isinstance(user, IntegrationPrincipal):
                owner: Any = PortalUser(contact_named(data)) if owned else user
            else:
                require(module, "create", user)
                owner = user
            form = _validated(form_class, data)
            record = module.record()
            form.populate_obj(record)
            module.prepare_new(record, owner)
            try:
                with db.atomic():
                    record.save()
                    signals.record_created.send(module.name, module=module, record=record, user=user)
                    audit_integration("created", record, details={"acting_as": getattr(user, "contact_id", None)})
            except IntegrityError:
                refused()
            location = url_for(f"api_v1.{name}_detail", record_id=record.get_id())
            return record_answer(module, record, user, 201, {"Location": location})

    if module.edit_form is not None:
        edit_class = module.edit_form

        @bp.route(f"/{name}/<int(signed=True):record_id>", endpoint=f"{name}_update", methods=["PATCH"])
        @bp.response(200, item, headers=ETAG_HEADER)
        @more_errors
        @_errors(bp)
        @bp.doc(**_doc(scope, f"Change one of {name}"), tags=[name], requestBody=body_doc(edit_class, False))
        @bp.doc(parameters=[IF_MATCH_PARAMETER])
        @scoped(scope)
        def update_view(record_id: int) -> Any:
            user = acting_user()
            data = json_object()
            try:
                with db.atomic():
                    record = get_for_update(module, record_id, user, action="edit")
                    check_if_match(record)
                    form = _validated(edit_class, data, record)
                    changes = _changes(form, record)
                    form.populate_obj(record)
                    record.save()
                    signals.record_updated.send(module.name, module=module, record=record, user=user,
                                                changes=changes)
                    audit_integration("updated", record,
                                      details={k: [str(a), str(b)] for k, (a, b) in changes.items()})
            except IntegrityError:
                refused()
            return record_answer(module, record, user)


def add_routes(bp: Blueprint, app: Flask) -> None:
    """The write routes of every module of ``app`` that declares portal forms."""
    for module in app.extensions["crm_portal"].modules.values():
        if module.record is not None and (module.create_form is not None or module.edit_form is not None):
            _add_module_writes(bp, module)
