"""Error pages in the user's language; a database outage is a 503, never a traceback."""
from __future__ import annotations

import peewee
from flask import Flask, render_template, request
from flask_babel import gettext as _
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException

from ..db import is_lock_contention


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


OUTAGE_MARKERS = (
    "unable to open database", "disk i/o error", "could not connect",
    "connection refused", "server closed the connection", "connection already closed",
    "terminating connection", "the database system is", "timeout expired", "no route to host",
    "could not translate host name",
)


def is_outage(exc: Exception) -> bool:
    """Whether a database error means "unreachable" rather than a bad statement. Lock contention
    is not an outage: requests wait for the lock and are retried (crm_portal.db), never shown
    the outage page."""
    if is_lock_contention(exc):
        return False
    if isinstance(exc, (peewee.InterfaceError, MaxConnectionsExceeded)):
        return True  # (every pooled connection busy for DATABASE_POOL_TIMEOUT: overloaded)
    text = str(exc).lower()
    return any(marker in text for marker in OUTAGE_MARKERS)


def render_error(code: int, title: str, message: str):
    if _wants_json():
        return {"error": title, "message": message}, code
    try:
        return render_template("errors/error.html", code=code, title=title, message=message), code
    except Exception:  # noqa: BLE001
        # The page itself needs the database (menu, user): fall back to the bare page.
        return render_template("errors/bare.html", code=code, title=title, message=message), code


def init_app(app: Flask) -> None:
    messages = {
        400: (lambda: _("Bad request"),
              lambda: _("The request could not be understood. Please go back and try again.")),
        403: (lambda: _("Not allowed"), lambda: _("Your profile does not allow this action.")),
        404: (lambda: _("Page not found"),
              lambda: _("The page or record you asked for does not exist, or is not available to you.")),
        405: (lambda: _("Not allowed"), lambda: _("This address does not accept that kind of request.")),
        413: (lambda: _("File too large"), lambda: _("The file you sent is larger than the allowed size.")),
        429: (lambda: _("Too many attempts"), lambda: _("Too many attempts. Please wait a little and try again.")),
        500: (lambda: _("Something went wrong"),
              lambda: _("An unexpected error occurred. It has been recorded; please try again later.")),
        503: (lambda: _("Service unavailable"),
              lambda: _("The portal cannot reach its database right now. Please try again in a few minutes.")),
    }

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        title, message = messages.get(exc.code, (lambda: exc.name, lambda: exc.description or ""))
        body, code = render_error(exc.code, title(), message())
        # Keep what the exception says about retrying (Retry-After) or the methods allowed (Allow).
        headers = {k: v for k, v in exc.get_headers() if k in ("Retry-After", "Allow", "WWW-Authenticate")}
        return body, code, headers

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    @app.errorhandler(MaxConnectionsExceeded)
    def _database_down(exc: Exception):
        if not is_outage(exc):
            raise exc  # a bug, not an outage: the 500 handler logs it with its traceback
        app.logger.error("database unavailable: %s", exc, exc_info=exc)
        title, message = messages[503]
        return render_error(503, title(), message())

    @app.errorhandler(500)
    def _server_error(exc: Exception):
        title, message = messages[500]
        return render_error(500, title(), message())
