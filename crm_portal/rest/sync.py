"""CRM sync endpoints (scope ``sync:write``): ``PUT``/``DELETE /sync/{type}/{external_id}`` and
``POST /sync/{type}/batch``, for the types of :func:`crm_portal.sync.types.sync_types`.

A sync writes as the integration itself: ``X-Act-As-Contact`` is refused (403). See
:mod:`crm_portal.sync` for what a push does.
"""
from __future__ import annotations

from typing import Any

import marshmallow as ma
import peewee as pw
from flask import abort, g, request
from flask_babel import gettext as _
from flask_smorest import Blueprint
from flask_smorest import abort as abort_with

from ..crm_records import RecordInvalid
from ..db import db
from ..sync import deletion, ownership
from ..sync.files import PushFiles
from ..sync.types import build
from ..sync.upsert import Outcome, RefCache, check_external_id, upsert
from .auth import ACT_AS_HEADER, ACT_AS_MARK, current_key, scoped

SCOPE = "sync:write"
MAX_BATCH = 500


class OutcomeSchema(ma.Schema):
    external_id = ma.fields.String()
    status = ma.fields.String(metadata={"description": "created, updated, unchanged, conflict or error"})
    id = ma.fields.Integer(allow_none=True, metadata={"description": "our record's id"})
    changes = ma.fields.List(ma.fields.String(), metadata={"description": "the fields written"})
    linked = ma.fields.Boolean(metadata={"description": "true: this push found the record by its attributes "
                                                        "and wrote the reference"})
    candidates = ma.fields.List(ma.fields.Integer(), metadata={"description": "conflict: the records that "
                                                                              "matched"})
    errors = ma.fields.Dict(metadata={"description": "error: field name → messages"})


class BatchItem(ma.Schema):
    external_id = ma.fields.String(required=True)
    data = ma.fields.Dict(required=True)


class BatchArgs(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(BatchItem), required=True,
                           validate=ma.validate.Length(min=1, max=MAX_BATCH))


class BatchResult(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(OutcomeSchema))
    counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())


class DeletionSchema(ma.Schema):
    external_id = ma.fields.String()
    id = ma.fields.Integer()
    policy = ma.fields.String(metadata={"description": "ignore, deactivate or delete"})
    status = ma.fields.String(metadata={"description": "ignored, deactivated or scheduled"})
    delete_after = ma.fields.DateTime(metadata={"description": "scheduled: when the record is deleted"})


def _no_acting_as() -> None:
    if request.headers.get(ACT_AS_HEADER, "").strip():
        abort(403, _("Sync writes as the integration itself: leave out %(header)s.", header=ACT_AS_HEADER))


def _external_id(value: str) -> str:
    try:
        return check_external_id(value)
    except RecordInvalid as exc:
        abort_with(422, errors=exc.errors)
        raise  # unreachable: abort raises


def push(kind: str, external_id: str, data: Any, refs: RefCache, kept: PushFiles | None = None) -> Outcome:
    """One push in its own savepoint: refused values and database refusals roll back this item only,
    and the files it stored go with them. Once the savepoint holds, the files it replaced are removed
    after the commit and those it stored are handed to ``kept`` (a batch's, should it roll back)."""
    files = PushFiles()
    try:
        with db.atomic():
            outcome = upsert(g.api_key.integration, kind, external_id, data, refs=refs, user=g.api_principal,
                             files=files)
    except RecordInvalid as exc:
        files.discard()
        refs.forget()
        return Outcome(str(external_id), "error", errors=exc.errors)
    except pw.IntegrityError:  # the same email written by another request a moment ago
        files.discard()
        refs.forget()
        return Outcome(str(external_id), "error", errors={"_schema": [_("Another record holds these values "
                                                                           "now; push it again.")]})
    except BaseException:
        files.discard()
        raise
    files.settle(into=kept)
    return outcome


def add_crm_routes(bp: Blueprint, doc: Any, errors: Any, app: Any) -> None:
    """Company and contact writes and the sync endpoints on the API's blueprint."""
    from .companies_contacts import add_routes as add_write_routes

    add_write_routes(bp, doc, errors, app)
    add_routes(bp, doc, errors, app)


def add_routes(bp: Blueprint, doc: Any, errors: Any, app: Any) -> None:
    """The sync endpoints on the API's blueprint; refuses to start with a bad sync setting."""
    ownership.check_config(app)
    deletion.check_config(app)

    def described(summary: str, kind: str) -> dict[str, Any]:
        found = doc(SCOPE, summary)
        found.pop(ACT_AS_MARK, None)
        keys = ", ".join(f"`{k}`" for k in sorted(_keys(app, kind)))
        found["description"] += f" Fields the CRM owns ({kind}): {keys}."
        return found

    for kind in build(app):
        _add_type(bp, kind, described, errors)


def _keys(app: Any, kind: str) -> frozenset[str]:
    from ..sync.upsert import allowed_keys

    with app.app_context():
        return allowed_keys(kind)


def _add_type(bp: Blueprint, kind: str, described: Any, errors: Any) -> None:
    tag = "sync"

    @bp.route(f"/sync/{kind}/<string:external_id>", endpoint=f"sync_{kind}_put", methods=["PUT"])
    @bp.response(200, OutcomeSchema, description="updated or unchanged")
    @bp.alt_response(201, schema=OutcomeSchema, description="created")
    @bp.alt_response(409, schema=OutcomeSchema, description="conflict: several records match; staff choose")
    @bp.alt_response(422, description="Invalid values, a field the CRM does not own, or an unknown "
                                      "external id of a referenced record; nothing was written.")
    @errors(bp)
    @bp.doc(**described(f"Create or update a {kind} by its external id", kind), tags=[tag],
            requestBody={"required": True, "description": "the fields to write (a JSON object)",
                         "content": {"application/json": {"schema": {"type": "object"}}}})
    @scoped(SCOPE)
    def put(external_id: str) -> Any:
        _no_acting_as()
        external_id = _external_id(external_id)
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            abort_with(422, errors={"_schema": [_("Give a JSON object.")]})
        outcome = push(kind, external_id, data, RefCache(current_key().integration))
        if outcome.status == "error":
            abort_with(422, errors=outcome.errors)
        if outcome.status == "conflict":
            body = {"code": "conflict", "errors": {}, **outcome.as_dict(),
                    "message": _("Several records match: our staff will choose the right one.")}
            return body, 409
        return outcome.as_dict(), 201 if outcome.status == "created" else 200

    @bp.route(f"/sync/{kind}/batch", endpoint=f"sync_{kind}_batch", methods=["POST"])
    @bp.arguments(BatchArgs)
    @bp.response(200, BatchResult)
    @errors(bp)
    @bp.doc(**described(f"Create or update up to {MAX_BATCH} {kind} records; each item's outcome", kind),
            tags=[tag])
    @scoped(SCOPE)
    def batch(args: dict[str, Any]) -> Any:
        _no_acting_as()
        refs = RefCache(current_key().integration)
        items = args["items"]
        ids = [i["external_id"].strip() for i in items if isinstance(i["external_id"], str)]
        refs.prefetch(kind, ids)
        if kind == "contact":
            refs.prefetch("company", sorted({str(i["data"].get("company_external_id")).strip() for i in items
                                             if isinstance(i["data"].get("company_external_id"), str)}))
        outcomes = []
        stored = PushFiles()
        try:
            with db.atomic():
                for item in items:
                    outcomes.append(push(kind, item["external_id"], item["data"], refs, stored).as_dict())
        except BaseException:
            stored.discard()  # the batch rolled back: no row holds the files its items stored
            raise
        counts = dict.fromkeys(("created", "updated", "unchanged", "conflict", "error"), 0)
        for found in outcomes:
            counts[found["status"]] += 1
        return {"items": outcomes, "counts": counts}

    @bp.route(f"/sync/{kind}/<string:external_id>", endpoint=f"sync_{kind}_delete", methods=["DELETE"])
    @bp.response(200, DeletionSchema)
    @errors(bp)
    @bp.doc(**described(f"The CRM deleted a {kind}: apply the deletion policy", kind), tags=[tag])
    @scoped(SCOPE)
    def delete(external_id: str) -> Any:
        _no_acting_as()
        external_id = _external_id(external_id)
        refs = RefCache(current_key().integration)
        ref = refs.get(kind, external_id)
        if ref is None:
            abort(404)
        with db.atomic():
            return deletion.delete(current_key().integration, kind, ref, user=g.api_principal)
