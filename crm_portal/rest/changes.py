"""``GET /api/v1/changes``: what changed since a cursor, for a CRM catching up (crm_portal.changes).

Any valid key may ask; it sees the changes of the modules it holds ``<module>:read`` for, and
nothing of the others (not even that they changed).
"""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import abort, current_app
from flask_babel import gettext as _
from flask_smorest import Blueprint

from .. import changes
from .auth import current_key
from .records import UtcDateTime

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


class ChangeArgs(ma.Schema):
    since = ma.fields.String(load_default=None, validate=ma.validate.Length(max=200),
                             metadata={"description": "the next_cursor of the previous answer; none: from the "
                                                      "oldest change kept"})
    limit = ma.fields.Integer(load_default=DEFAULT_LIMIT, validate=ma.validate.Range(1, MAX_LIMIT),
                              metadata={"description": f"changes per page (1–{MAX_LIMIT})"})


class ChangeSchema(ma.Schema):
    type = ma.fields.String(metadata={"description": "the module: read the record at /api/v1/<type>/<id>"})
    id = ma.fields.Integer(metadata={"description": "the record's id"})
    change = ma.fields.String(metadata={"description": "upsert (created or changed) or delete"})
    at = UtcDateTime(metadata={"description": "when the change was made"})


class ChangePageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ChangeSchema))
    next_cursor = ma.fields.String(allow_none=True, metadata={"description": "give as ?since= next time "
                                                                              "(also when has_more is false)"})
    has_more = ma.fields.Boolean()


def readable_types() -> list[str]:
    """The modules whose changes the current key may see (it holds their read scope)."""
    scopes = current_key().scope_set
    modules = current_app.extensions["crm_portal"].modules
    return [name for name, module in modules.items() if module.record is not None and f"{name}:read" in scopes]


def add_routes(bp: Blueprint, bearer: str, errors: Any, error_schema: Any) -> None:
    """The change feed on the API's blueprint."""

    @bp.route("/changes", endpoint="changes", methods=["GET"])
    @bp.arguments(ChangeArgs, location="query", as_kwargs=True)
    @bp.response(200, ChangePageSchema)
    @bp.alt_response(410, schema=error_schema, description="The cursor is older than the changes kept "
                                                         "(CHANGES_KEEP_DAYS): read everything again, then "
                                                         "follow the changes from the new cursor.")
    @errors(bp)
    @bp.doc(summary="Changes of records since a cursor",
            description="Any key; it sees the changes of the modules it has `<module>:read` for.",
            security=[{bearer: []}], tags=["changes"])
    def change_feed(since: str | None, limit: int) -> dict[str, Any]:
        try:
            found = changes.page(readable_types(), since, limit)
        except changes.CursorInvalid:
            abort(422, _("The cursor is not valid: give the next_cursor of a previous answer."))
        except changes.CursorAhead:
            abort(410, _("This cursor points past the last change recorded here (the portal's database was "
                         "restored or replaced): read the records again from the start, then follow the changes "
                         "from the new cursor."))
        except changes.CursorExpired:
            abort(410, _("This cursor is older than the %(days)s days of changes kept: read the records "
                         "again from the start, then follow the changes from the new cursor.",
                         days=current_app.config["CHANGES_KEEP_DAYS"]))
        return {"items": found.items, "next_cursor": found.next_cursor, "has_more": found.has_more}
