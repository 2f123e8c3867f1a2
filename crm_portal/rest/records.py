"""What a record looks like in the API, and the cursor pages of a module's records.

A record shows its id, the module's declared list columns and the detail fields that are columns of
the record itself (a dotted path would cost a query per row), plus ``created_at`` / ``updated_at``.
Values a portal user must never receive are left out whatever a module declares.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import weakref
from collections.abc import Sequence
from typing import Any

import marshmallow as ma
import peewee as pw
from flask import abort
from flask_babel import gettext as _

from ..api import Module

#: Columns never serialised: credentials and session data, whatever a module declares.
SECRET_NAME_RE = re.compile(r"password|secret|token|session|hash|nonce|otp", re.IGNORECASE)
DEFAULT_LIMIT = 50
MAX_LIMIT = 100



class UtcDateTime(ma.fields.DateTime):
    """A time as RFC 3339 ``date-time`` (what the OpenAPI document promises): the database's naive
    UTC values get a ``Z``, as in webhook bodies. Every time an API answer carries uses it."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat() + "Z"


class DecimalString(ma.fields.Decimal):
    """An exact decimal sent as a JSON string (``"1595.15"``: a float would round it), documented
    as ``type: string, format: decimal`` (registered with the API's document)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(as_string=True, **kwargs)


_FIELD_TYPES: list[tuple[type[pw.Field], type[ma.fields.Field]]] = [
    (pw.BooleanField, ma.fields.Boolean),
    (pw.DateTimeField, UtcDateTime),
    (pw.DateField, ma.fields.Date),
    (pw.DecimalField, DecimalString),
    (pw.FloatField, ma.fields.Float),
    (pw.ForeignKeyField, ma.fields.Integer),
    (pw.IntegerField, ma.fields.Integer),
    (pw.AutoField, ma.fields.Integer),
]


def api_fields(module: Module) -> list[pw.Field]:
    """The record's fields the API shows for ``module``, in declaration order, without secrets."""
    record = module.record
    assert record is not None
    pk: Any = record._meta.primary_key
    names: list[str] = [pk.name]
    names += [c.field.name for c in module.columns]
    names += [f.name for section in module.detail for f in section.fields]
    names += ["created_at", "updated_at"]
    found: dict[str, pw.Field] = {}
    for name in names:
        fld = record._meta.fields.get(name)
        if fld is not None and name not in found and not SECRET_NAME_RE.search(name):
            found[name] = fld
    return list(found.values())


def _ma_field(fld: pw.Field) -> ma.fields.Field:
    kind: type[ma.fields.Field] = ma.fields.String
    for peewee_type, ma_type in _FIELD_TYPES:
        if isinstance(fld, peewee_type):
            kind = ma_type
            break
    description = "id of the related record" if isinstance(fld, pw.ForeignKeyField) else None
    return kind(allow_none=True, dump_only=True, metadata={"description": description} if description else {})


#: One schema class per module object: the read and write routes share it (one name in the document).
_SCHEMAS: weakref.WeakKeyDictionary[Module, type[ma.Schema]] = weakref.WeakKeyDictionary()


def record_schema(module: Module) -> type[ma.Schema]:
    """The marshmallow schema of ``module``'s records (named after the module in the document)."""
    if module in _SCHEMAS:
        return _SCHEMAS[module]
    attrs: dict[str, Any] = {fld.name: _ma_field(fld) for fld in api_fields(module)}
    name = "".join(part.title() for part in module.name.split("_")) + "Record"
    schema = _SCHEMAS[module] = ma.Schema.from_dict(attrs, name=name)
    return schema


def page_schema(module: Module, item: type[ma.Schema]) -> type[ma.Schema]:
    name = "".join(part.title() for part in module.name.split("_")) + "Page"
    return ma.Schema.from_dict({
        "items": ma.fields.List(ma.fields.Nested(item)),
        "next_cursor": ma.fields.String(allow_none=True,
                                        metadata={"description": "give as ?cursor= for the next page"}),
        "has_more": ma.fields.Boolean(),
    }, name=name)


def as_dict(row: Any, fields: Sequence[pw.Field], hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``row``'s values of ``fields`` (a foreign key as the related id: no query)."""
    return {fld.name: row.__data__.get(fld.name) for fld in fields if fld.name not in hidden}


def hidden_columns(module: Module, user: Any) -> frozenset[str]:
    """Declared columns ``user`` may not see (``Module.list_columns``): left out of their records."""
    shown = {c.name for c in module.list_columns(user)}
    return frozenset(c.name for c in module.columns if c.name not in shown)


# --- cursor pagination --------------------------------------------------------------------------
def order_field(module: Module) -> pw.Field | None:
    """What pages follow: ``updated_at`` if the record has it, else ``created_at`` (with the id as
    tie-break); ``None``: the id alone."""
    record = module.record
    assert record is not None
    for name in ("updated_at", "created_at"):
        fld = record._meta.fields.get(name)
        if isinstance(fld, pw.DateTimeField) and not fld.null:
            return fld
    return None


def encode_cursor(row: Any, fld: pw.Field | None) -> str:
    stamp = getattr(row, fld.name) if fld is not None else None
    raw = json.dumps([stamp.isoformat() if stamp is not None else None, row.get_id()])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fld: pw.Field | None) -> tuple[dt.datetime | None, int]:
    """The (timestamp, id) a cursor holds; 422 for anything this API did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, record_id = json.loads(raw)
        if not isinstance(record_id, int) or isinstance(record_id, bool) or not -(2**31) <= record_id < 2**31:
            raise ValueError("id")
        if (stamp is None) != (fld is None):
            raise ValueError("kind")
        when = dt.datetime.fromisoformat(stamp) if stamp is not None else None
        if when is not None and when.tzinfo is not None:
            raise ValueError("zone")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        abort(422, description=_("The cursor is not valid: give the next_cursor of a previous page."))
    return when, record_id


def page(module: Module, query: pw.ModelSelect, *, limit: int, cursor: str | None,
         updated_since: dt.datetime | None) -> tuple[list[Any], str | None, bool]:
    """One page of ``query`` (already through the gate) in (order field, id) order."""
    record = module.record
    assert record is not None
    pk = record._meta.primary_key
    fld = order_field(module)
    if updated_since is not None:
        if fld is None:
            abort(422, description=_("These records carry no date: updated_since does not apply."))
        if updated_since.tzinfo is not None:
            updated_since = updated_since.astimezone(dt.UTC).replace(tzinfo=None)
        query = query.where(fld >= updated_since)
    if cursor:
        when, last_id = decode_cursor(cursor, fld)
        if fld is None:
            query = query.where(pk > last_id)
        else:
            query = query.where((fld > when) | ((fld == when) & (pk > last_id)))
    order = [fld, pk] if fld is not None else [pk]
    rows = list(query.order_by(*order).limit(limit + 1))
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1], fld) if has_more and rows else None
    return rows, next_cursor, has_more


# --- the module's list filters ------------------------------------------------------------------
def filter_fields(module: Module) -> dict[str, ma.fields.Field]:
    """Query parameters of ``GET /api/v1/<module>`` beyond the page's, named as the portal's list
    names them: ``q`` (every word must match), ``s_<column>`` (a column's search), ``f_<column>``
    (one of the values; repeat the parameter for several) and the module's own ``list_params``."""
    from ..listing import MAX_TERM

    def text(description: str) -> ma.fields.String:
        return ma.fields.String(load_default=None, validate=ma.validate.Length(max=MAX_TERM),
                                metadata={"description": description})

    found: dict[str, ma.fields.Field] = {}
    if module.search_field is not None or any(c.search for c in module.columns):
        found["q"] = text("words to find (each must match), as the portal list's search box")
    for col in module.columns:
        if col.search:
            found[f"s_{col.name}"] = text(f"text to find in {col.name}")
        if col.filter:
            found[f"f_{col.name}"] = ma.fields.List(
                ma.fields.String(validate=ma.validate.Length(max=MAX_TERM)), load_default=None,
                metadata={"description": f"only records whose {col.name} is one of these values "
                                         "(repeat the parameter)"})
    for name in module.list_params:
        found[name] = text(f"the list's own filter '{name}' (see the module's documentation)")
    return found


def filtered(module: Module, query: pw.ModelSelect, args: Any, user: Any) -> pw.ModelSelect:
    """``query`` (through the gate) narrowed by the list filters of ``args``, exactly as the
    portal's list applies them (``crm_portal.listing``)."""
    from ..listing import ListQuery, ListRequest

    req = ListRequest.parse(module, args)
    if not (req.q or req.searches or req.filters or req.extra):
        return query
    return ListQuery(module, query).apply(req, user)
