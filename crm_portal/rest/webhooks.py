"""``/api/v1/webhooks``: an integration manages its own webhook endpoints (scope ``webhooks:manage``).

Another integration's endpoints and deliveries answer 404, like records outside a scope. The
signing secret is in the answers that create it (creation, rotation) only.
"""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import abort
from flask_babel import gettext as _
from flask_smorest import Blueprint
from flask_smorest import abort as abort_with

from .. import webhooks
from ..db import db
from ..models import WebhookDelivery, WebhookEndpoint
from .auth import audit_integration, current_key, scoped
from .records import UtcDateTime

SCOPE = "webhooks:manage"
MAX_DELIVERIES = 100
#: More event types than any portal has (each module has a few).
MAX_EVENTS = 500
EVENTS_HELP = ("event types: <prefix>.created and <prefix>.updated of every module (ticket, contact, company, "
               "quote, document …; a partner's module: its name), ticket.status_changed, ticket.comment_added, "
               "ticket.closed, contact.change_requested, quote.accepted, quote.rejected (docs/api.md)")


class EndpointSchema(ma.Schema):
    id = ma.fields.Integer()
    url = ma.fields.String()
    events = ma.fields.List(ma.fields.String())
    active = ma.fields.Boolean()
    disabled_reason = ma.fields.String(allow_none=True)
    failure_count = ma.fields.Integer(metadata={"description": "consecutive failed delivery attempts"})
    created_at = UtcDateTime()


class NewEndpointSchema(EndpointSchema):
    secret = ma.fields.String(metadata={"description": "whsec_…: shown in this answer only"})


class EndpointListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(EndpointSchema))


class CreateArgs(ma.Schema):
    url = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))
    events = ma.fields.List(ma.fields.String(validate=ma.validate.Length(max=60)), required=True,
                            validate=ma.validate.Length(min=1, max=MAX_EVENTS), metadata={"description": EVENTS_HELP})


class UpdateArgs(ma.Schema):
    url = ma.fields.String(validate=ma.validate.Length(min=1, max=2000))
    events = ma.fields.List(ma.fields.String(validate=ma.validate.Length(max=60)),
                            validate=ma.validate.Length(min=1, max=MAX_EVENTS), metadata={"description": EVENTS_HELP})
    active = ma.fields.Boolean(metadata={"description": "true switches a disabled endpoint on again"})


class DeliverySchema(ma.Schema):
    id = ma.fields.Integer()
    event_type = ma.fields.String()
    webhook_id = ma.fields.String()
    status = ma.fields.String(metadata={"description": "pending, delivered or failed"})
    attempts = ma.fields.Integer()
    next_attempt_at = UtcDateTime()
    last_status = ma.fields.Integer(allow_none=True, metadata={"description": "HTTP status of the last attempt"})
    last_error = ma.fields.String(allow_none=True)
    delivered_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime()


class DeliveryListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DeliverySchema))
    next_cursor = ma.fields.String(allow_none=True, metadata={"description": "give as before_id"})


class DeliveryArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(1, MAX_DELIVERIES))
    before_id = ma.fields.Integer(load_default=None, validate=ma.validate.Range(1, 2**62),
                                  metadata={"description": "deliveries older than this id (the next page)"})


def _as_dict(endpoint: WebhookEndpoint, secret: bool = False) -> dict[str, Any]:
    found = {"id": endpoint.id, "url": endpoint.url, "events": sorted(endpoint.event_set),
             "active": endpoint.active, "disabled_reason": endpoint.disabled_reason,
             "failure_count": endpoint.failure_count, "created_at": endpoint.created_at}
    if secret:
        found["secret"] = endpoint.secret
    return found


def _own(endpoint_id: int) -> WebhookEndpoint:
    """The calling integration's endpoint, else 404 (another integration's included)."""
    endpoint = WebhookEndpoint.get_or_none((WebhookEndpoint.id == endpoint_id)
                                           & (WebhookEndpoint.integration == current_key().integration_id))
    if endpoint is None:
        abort(404)
    return endpoint


def _refused(field: str, exc: webhooks.WebhookRefused) -> Any:
    abort_with(422, errors={field: [str(exc)]})


def _check(url: str | None, events: list[str] | None) -> None:
    try:
        if events is not None:
            chosen = webhooks.parse_events(events)
            # An event carries its object: only a key that may read it may subscribe to it.
            missing = sorted({webhooks.read_scope(e) for e in chosen} - current_key().scope_set)
            if missing:
                raise webhooks.WebhookRefused(_("These events carry records this key may not read; it needs "
                                                "the scopes: %(scopes)s.", scopes=", ".join(missing)))
    except webhooks.WebhookRefused as exc:
        _refused("events", exc)
    try:
        if url is not None:
            webhooks.resolve(url)
    except webhooks.WebhookRefused as exc:
        _refused("url", exc)


def add_routes(bp: Blueprint, doc: Any, errors: Any) -> None:
    """The webhook endpoints on the API's blueprint (``doc`` and ``errors`` as for the records)."""

    def described(summary: str) -> dict[str, Any]:
        found = doc(SCOPE, summary)
        found.pop("parameters", None)  # X-Act-As-Contact means nothing here
        return found

    @bp.route("/webhooks", endpoint="webhooks_create", methods=["POST"])
    @bp.arguments(CreateArgs)
    @bp.response(201, NewEndpointSchema)
    @errors(bp)
    @bp.doc(**described("Create a webhook endpoint (its secret is shown once)"), tags=["webhooks"])
    @scoped(SCOPE)
    def create(args: dict[str, Any]) -> dict[str, Any]:
        _check(args["url"], args["events"])
        with db.atomic():
            try:
                endpoint = webhooks.create_endpoint(current_key().integration, args["url"], args["events"])
            except webhooks.WebhookRefused as exc:  # the name resolved otherwise a moment later
                _refused("url", exc)
            audit_integration("webhook.created", endpoint, details={"url": endpoint.url})
        return _as_dict(endpoint, secret=True)

    @bp.route("/webhooks", endpoint="webhooks_list", methods=["GET"])
    @bp.response(200, EndpointListSchema)
    @errors(bp)
    @bp.doc(**described("The integration's webhook endpoints"), tags=["webhooks"])
    @scoped(SCOPE)
    def list_view() -> dict[str, Any]:
        rows = (WebhookEndpoint.select().where(WebhookEndpoint.integration == current_key().integration_id)
                .order_by(WebhookEndpoint.id))
        return {"items": [_as_dict(row) for row in rows]}

    @bp.route("/webhooks/<int:endpoint_id>", endpoint="webhooks_detail", methods=["GET"])
    @bp.response(200, EndpointSchema)
    @errors(bp)
    @bp.doc(**described("One webhook endpoint"), tags=["webhooks"])
    @scoped(SCOPE)
    def detail(endpoint_id: int) -> dict[str, Any]:
        return _as_dict(_own(endpoint_id))

    @bp.route("/webhooks/<int:endpoint_id>", endpoint="webhooks_update", methods=["PATCH"])
    @bp.arguments(UpdateArgs)
    @bp.response(200, EndpointSchema)
    @errors(bp)
    @bp.doc(**described("Change a webhook endpoint's address, events or state"), tags=["webhooks"])
    @scoped(SCOPE)
    def update(args: dict[str, Any], endpoint_id: int) -> dict[str, Any]:
        endpoint = _own(endpoint_id)
        _check(args.get("url"), args.get("events"))
        with db.atomic():
            if "url" in args:
                endpoint.url = args["url"]
            if "events" in args:
                endpoint.events = " ".join(webhooks.parse_events(args["events"]))
            if "active" in args:
                if args["active"] and not endpoint.active:
                    endpoint.failure_count, endpoint.disabled_reason = 0, None
                endpoint.active = args["active"]
            endpoint.save()
            audit_integration("webhook.updated", endpoint, details={k: args[k] for k in sorted(args)})
        return _as_dict(endpoint)

    @bp.route("/webhooks/<int:endpoint_id>", endpoint="webhooks_delete", methods=["DELETE"])
    @bp.response(204)
    @errors(bp)
    @bp.doc(**described("Delete a webhook endpoint and its delivery log"), tags=["webhooks"])
    @scoped(SCOPE)
    def delete(endpoint_id: int) -> None:
        endpoint = _own(endpoint_id)
        with db.atomic():
            WebhookDelivery.delete().where(WebhookDelivery.endpoint == endpoint.id).execute()
            endpoint.delete_instance()
            audit_integration("webhook.deleted", object_type=WebhookEndpoint._meta.table_name,
                              object_id=endpoint_id)

    @bp.route("/webhooks/<int:endpoint_id>/rotate-secret", endpoint="webhooks_rotate", methods=["POST"])
    @bp.response(200, NewEndpointSchema)
    @errors(bp)
    @bp.doc(**described("A new signing secret; the old one also signs for 24 hours"), tags=["webhooks"])
    @scoped(SCOPE)
    def rotate(endpoint_id: int) -> dict[str, Any]:
        endpoint = _own(endpoint_id)
        with db.atomic():
            webhooks.rotate_secret(endpoint)
            audit_integration("webhook.secret_rotated", endpoint)
        return _as_dict(endpoint, secret=True)

    @bp.route("/webhooks/<int:endpoint_id>/deliveries", endpoint="webhooks_deliveries", methods=["GET"])
    @bp.arguments(DeliveryArgs, location="query", as_kwargs=True)
    @bp.response(200, DeliveryListSchema)
    @errors(bp)
    @bp.doc(**described("An endpoint's deliveries, newest first"), tags=["webhooks"])
    @scoped(SCOPE)
    def deliveries(endpoint_id: int, limit: int, before_id: int | None) -> dict[str, Any]:
        endpoint = _own(endpoint_id)
        query = (WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint.id)
                 .order_by(WebhookDelivery.id.desc()).limit(limit + 1))
        if before_id is not None:
            query = query.where(WebhookDelivery.id < before_id)
        rows = list(query)
        more = len(rows) > limit
        rows = rows[:limit]
        items = [{name: getattr(row, name) for name in DeliverySchema._declared_fields} for row in rows]
        return {"items": items, "next_cursor": str(rows[-1].id) if more else None}

    @bp.route("/webhooks/deliveries/<int:delivery_id>/redeliver", endpoint="webhooks_redeliver",
              methods=["POST"])
    @bp.response(202, DeliverySchema)
    @errors(bp)
    @bp.doc(**described("Send a delivery again (same webhook-id and body)"), tags=["webhooks"])
    @scoped(SCOPE)
    def redeliver(delivery_id: int) -> dict[str, Any]:
        delivery = (WebhookDelivery.select().join(WebhookEndpoint)
                    .where((WebhookDelivery.id == delivery_id)
                           & (WebhookEndpoint.integration == current_key().integration_id)).first())
        if delivery is None:
            abort(404)
        if not delivery.endpoint.active:
            abort(409, _("The endpoint is switched off: switch it on first."))
        with db.atomic():
            webhooks.redeliver(delivery)
            audit_integration("webhook.redelivered", delivery)
        delivery = WebhookDelivery.get_by_id(delivery_id)
        return {name: getattr(delivery, name) for name in DeliverySchema._declared_fields}
