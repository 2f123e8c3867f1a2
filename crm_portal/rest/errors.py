"""The API's errors: always JSON ``{"code", "message", "errors"}``, never an HTML page."""
from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

PREFIX = "/api/v1"

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 410: "gone",
         412: "precondition_failed", 413: "too_large",
         415: "unsupported_media_type",
         422: "invalid", 429: "too_many_requests", 500: "server_error", 503: "unavailable"}


def _messages() -> dict[int, str]:
    return {
        400: _("The request could not be understood."),
        401: _("Missing or invalid API key."),
        403: _("This API key may not do this."),
        404: _("Not found, or not available to this API key."),
        405: _("This address does not accept that method."),
        409: _("The request conflicts with the record's current state."),
        412: _("The record was changed since you read it: read it again and retry."),
        413: _("The request is too large."),
        422: _("Some values are not valid."),
        500: _("An unexpected error occurred."),
        503: _("The database cannot be reached right now; try again later."),
    }


def body(status: int, message: str | None = None, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"code": CODES.get(status, "error"), "message": message or _messages().get(status, ""),
            "errors": errors or {}}


def is_api_request() -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


def http_error(exc: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
    """An HTTP error of an API request as JSON (webargs' validation messages become ``errors``)."""
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = data.get("errors") or data.get("messages") or {}
    if status == 422 and isinstance(errors, dict) and len(errors) == 1:
        # webargs nests the messages under the location ("query"): field names are what clients need.
        (only,) = errors.values()
        if isinstance(only, dict):
            errors = only
    message = data.get("message")
    if message is None and exc.description and exc.description != type(exc).description:
        message = exc.description  # abort(status, "a message of its own")
    headers = {k: v for k, v in exc.get_headers() if k in ("Allow", "WWW-Authenticate", "Retry-After")}
    headers.update(data.get("headers") or {})
    return body(status, message, errors), status, headers


def init_app(app: Flask) -> None:
    """Answer JSON to API requests, and keep the portal's own error pages for everything else.

    The handler is app-wide because a URL matching no route (404, 405) belongs to no blueprint."""
    portal_handler = app.error_handler_spec[None][None].get(HTTPException)

    def _handler(exc: HTTPException) -> Any:
        if is_api_request() and (exc.code or 500) >= 400:
            return http_error(exc)
        if portal_handler is None:
            return exc
        return portal_handler(exc)

    app.register_error_handler(HTTPException, _handler)
