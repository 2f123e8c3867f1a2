"""The REST API, ``/api/v1``: bearer API keys, scopes derived from the registry, records read
through the visibility gate, cursor pagination, OpenAPI 3.1 at ``/api/v1/openapi.json``.

Built per application (the modules, hence the routes, differ between applications).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask import Flask, current_app, render_template, request
from flask_smorest import Api, Blueprint

from ..api import Module
from ..scoping import get_or_404, visible
from . import errors, idempotency
from . import tickets as ticket_writes
from . import writes as module_writes
from .auth import ACT_AS_MARK, ActAsPlugin, acting_user, authenticate, scoped
from .bodies import refuse_nul
from .changes import add_routes as add_change_routes
from .concurrency import etag_of
from .inbound import add_routes as add_inbound_routes
from .records import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    DecimalString,
    api_fields,
    as_dict,
    filter_fields,
    filtered,
    hidden_columns,
    page,
    page_schema,
    record_schema,
)
from .sync import add_crm_routes
from .webhooks import add_routes as add_webhook_routes

PREFIX = "/api/v1"
BEARER = "bearer"


class ApiErrorSchema(ma.Schema):
    """Every error answer of the API."""

    code = ma.fields.String(metadata={"description": "unauthorized, forbidden, not_found, invalid …"})
    message = ma.fields.String(metadata={"description": "what went wrong, in the request's language"})
    errors = ma.fields.Dict(metadata={"description": "field name → list of messages (422)"})


class PortalApi(Api):
    """flask-smorest's Api, whose errors stay in the API: the portal keeps its HTML error pages
    (crm_portal.rest.errors answers JSON under /api/v1 only)."""

    ERROR_SCHEMA = ApiErrorSchema

    def _register_error_handlers(self) -> None:
        errors.init_app(self._app)

    # The document is written the first time it is read, not at start-up: describing the
    # endpoints (deep copies of every schema and doc) was most of an application's start-up time,
    # and a web worker may never be asked for it. Routes are registered at once, as usual.
    @property
    def spec(self) -> Any:
        pending = self.__dict__.get("_pending_docs")
        if pending and self.__dict__.get("_spec") is not None:
            self.__dict__["_pending_docs"] = []
            for describe in pending:
                describe()
        return self.__dict__.get("_spec")

    @spec.setter
    def spec(self, value: Any) -> None:
        self.__dict__["_spec"] = value

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)

        def describe() -> None:
            spec = self.__dict__["_spec"]
            blp.register_views_in_doc(self, self._app, spec, name=name, parameters=parameters)
            spec.tag({"name": name, "description": blp.description})

        self.__dict__.setdefault("_pending_docs", []).append(describe)


class PageArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=DEFAULT_LIMIT, validate=ma.validate.Range(1, MAX_LIMIT),
                              metadata={"description": f"records per page (1–{MAX_LIMIT})"})
    cursor = ma.fields.String(load_default=None, validate=ma.validate.Length(max=200),
                              metadata={"description": "the next_cursor of the previous page"})
    updated_since = ma.fields.AwareDateTime(
        load_default=None, default_timezone=dt.UTC,
        metadata={"description": "only records changed (or, without updated_at, created) at or after "
                                 "this ISO 8601 time; UTC when it has no offset"})


ERRORS = {
    401: "Missing or invalid API key (one body for every kind of refusal).",
    403: "The key lacks the scope, or X-Act-As-Contact names no contact with portal access.",
    404: "Not found, or outside the scope of the acting contact.",
}


def _doc(scope: str, summary: str) -> dict[str, Any]:
    return {"summary": summary, "description": f"Scope: `{scope}`.",
            "security": [{BEARER: [scope]}], ACT_AS_MARK: True}


def _errors(bp: Blueprint) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        for status, description in ERRORS.items():
            view = bp.alt_response(status, schema=ApiErrorSchema, description=description)(view)
        return view
    return decorate


def _add_module(bp: Blueprint, module: Module) -> None:
    """``GET /<module>`` and ``GET /<module>/{id}`` for a module with a record."""
    name = module.name
    scope = f"{name}:read"
    item = record_schema(module)
    fields = api_fields(module)

    title = "".join(part.title() for part in name.split("_"))
    list_args = PageArgs.from_dict(filter_fields(module), name=f"{title}ListArgs")

    @bp.route(f"/{name}", endpoint=f"{name}_list", methods=["GET"])
    @bp.arguments(list_args, location="query", as_kwargs=True)
    @bp.response(200, page_schema(module, item))
    @_errors(bp)
    @bp.doc(**_doc(scope, f"List {name}"), tags=[name])
    @scoped(scope)
    def list_view(limit: int, cursor: str | None, updated_since: Any, **_filters: Any) -> dict[str, Any]:
        user = acting_user()
        query = filtered(module, visible(module, user=user), request.args, user)
        rows, next_cursor, has_more = page(module, query, limit=limit, cursor=cursor, updated_since=updated_since)
        hidden = hidden_columns(module, user)
        return {"items": [as_dict(row, fields, hidden) for row in rows], "next_cursor": next_cursor,
                "has_more": has_more}

    @bp.route(f"/{name}/<int(signed=True):record_id>", endpoint=f"{name}_detail", methods=["GET"])
    @bp.response(200, item, headers=module_writes.ETAG_HEADER)
    @_errors(bp)
    @bp.doc(**_doc(scope, f"One of {name}"), tags=[name])
    @scoped(scope)
    def detail_view(record_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
        user = acting_user()
        row = get_or_404(module, record_id, user=user)
        return as_dict(row, fields, hidden_columns(module, user)), 200, {"ETag": etag_of(row)}


def _docs_guard() -> None:
    """The document names every installed module (partners' included) and endpoint: unless
    ``API_DOCS_PUBLIC``, only a caller with a valid key (any scope) may read it."""
    if not current_app.config.get("API_DOCS_PUBLIC"):
        authenticate()


def _docs_page(api: Api) -> Callable[[], str]:
    def docs() -> str:
        _docs_guard()
        spec = api.spec.to_dict()
        return render_template("rest/docs.html", spec=spec)
    return docs


def init_app(app: Flask) -> None:
    """Mount ``/api/v1`` with a route pair per module of the application's registry."""
    from ..security import csrf

    app.config.update({
        "API_TITLE": "CRM Portal API", "API_VERSION": "v1", "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": PREFIX, "OPENAPI_JSON_PATH": "openapi.json",
        # No Swagger UI, ReDoc or RapiDoc: they load from a CDN; /api/v1/docs is served locally.
        "OPENAPI_SWAGGER_UI_PATH": None, "OPENAPI_REDOC_PATH": None, "OPENAPI_RAPIDOC_PATH": None,
    })
    api = PortalApi(app, spec_kwargs={"info": {"description": "See docs/api.md."},
                                      "extra_plugins": [idempotency.SpecPlugin(), ActAsPlugin()]})
    api.register_field(DecimalString, "string", "decimal")
    api.spec.components.security_scheme(BEARER, {"type": "http", "scheme": "bearer",
                                                 "description": "crmp_<key id>_<secret>"})
    bp = Blueprint("api_v1", __name__, url_prefix=PREFIX, template_folder="templates",
                   description="Records of the portal's modules, read through the visibility gate.")
    # Bearer keys, never cookies, authenticate these requests: a forged cross-site request carries
    # no key, so CSRF tokens have nothing to protect (and API clients have none).
    csrf.exempt(bp)
    bp.before_request(authenticate)
    bp.before_request(refuse_nul)
    idempotency.init_blueprint(bp)  # after authenticate: keys are per integration
    for module in app.extensions["crm_portal"].modules.values():
        if module.record is not None:
            _add_module(bp, module)
    add_webhook_routes(bp, _doc, _errors)
    add_crm_routes(bp, _doc, _errors, app)
    add_inbound_routes(bp, _doc, _errors)
    add_change_routes(bp, BEARER, _errors, ApiErrorSchema)
    ticket_writes.add_routes(bp, app)
    module_writes.add_routes(bp, app)
    api.register_blueprint(bp)
    # flask-smorest serves openapi.json from its own blueprint: the same guard as the docs page.
    app.before_request_funcs.setdefault("api-docs", []).append(_docs_guard)
    app.add_url_rule(f"{PREFIX}/docs", endpoint="api_v1_docs", view_func=_docs_page(api))
    app.extensions["crm_portal_api"] = api
