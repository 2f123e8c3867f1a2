"""Optimistic concurrency of the API's writes: a strong ``ETag`` per record, ``If-Match`` on updates.

``GET`` of a record answers its ``ETag``; a ``PATCH`` sent with ``If-Match`` is applied only if the
record is still the one the client read (else 412), and answers the new ``ETag``. ``If-Match`` is
optional (without it, the last write wins); ``If-Match: *`` matches any existing record.
"""
from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
from typing import Any

from flask import abort, request
from flask_babel import gettext as _


def _value(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, bytes, memoryview)):
        return str(bytes(value) if isinstance(value, memoryview) else value)
    return value


def etag_of(row: Any) -> str:
    """The strong ETag of ``row`` (quoted, as sent in the header): a digest of its table, id and every
    column's value, so it is the same for the same stored record and changes with any update
    (``updated_at``, a counter or any field)."""
    meta = row._meta
    values = {name: _value(row.__data__.get(name)) for name in meta.sorted_field_names}
    raw = json.dumps([meta.table_name, _value(row.get_id()), values], sort_keys=True, default=str)
    return '"' + hashlib.sha256(raw.encode()).hexdigest()[:32] + '"'


def check_if_match(row: Any) -> None:
    """412 (JSON error) when the request has ``If-Match`` and none of its tags is ``row``'s current
    ETag (strong comparison: a weak ``W/"…"`` tag never matches); ``*`` and no header pass."""
    if "If-Match" not in request.headers:
        return
    wanted = request.if_match
    if wanted.star_tag:
        return
    if not wanted.contains(etag_of(row).strip('"')):
        abort(412, _("The record was changed since you read it (If-Match does not match its ETag): "
                     "read it again and retry."))
