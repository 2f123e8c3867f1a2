"""Error pages in the user's language; a database outage is a 503, never a traceback.

No error page needs the database: once a request has found it unreachable, its page is the bare
one (no menu, no user), its language comes from the session, the browser or the configuration
(:func:`crm_portal.i18n.select_locale`), and the answer carries ``Retry-After``; API requests get
the API's JSON error (``{"code": "unavailable", …}``)."""
from __future__ import annotations

import time
from typing import Any

import peewee
from flask import Flask, current_app, g, render_template, request
from flask_babel import gettext as _
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException

from ..db import flush_pool, is_outage
from ..rest.errors import body as api_error_body
from ..rest.errors import is_api_request

__all__ = ["RETRY_AFTER", "database_unavailable", "init_app", "is_outage", "mark_database_unavailable",
           "outage_answer", "render_error"]


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


#: Seconds between two outage errors logged with their traceback (the others: one line each).
TRACEBACK_EVERY = 60

#: Seconds a client is asked to wait before trying again while the database is unreachable.
RETRY_AFTER = 5


def database_unavailable() -> bool:
    """Whether this request already found the database unreachable: its error page then reads
    nothing from it (the locale selector skips the user's own language, the page its menu)."""
    return bool(g.get("_crm_db_unavailable"))


def mark_database_unavailable() -> None:
    """Remember for the rest of this request that the database is unreachable. A user not loaded
    yet stays anonymous for it: every later hook that reads ``current_user`` (security headers,
    templates) would otherwise try the database again and turn the 503 into a 500."""
    g._crm_db_unavailable = True
    if "_login_user" not in g:
        g._login_user = current_app.login_manager.anonymous_user()  # type: ignore[attr-defined]


def render_error(code: int, title: str, message: str):
    if _wants_json():
        return {"error": title, "message": message}, code
    if not database_unavailable():
        try:
            return render_template("errors/error.html", code=code, title=title, message=message), code
        except Exception as exc:  # noqa: BLE001
            # The page itself needs the database (menu, user): fall back to the bare page.
            if is_outage(exc):
                mark_database_unavailable()
                flush_pool(exc)
    return render_template("errors/bare.html", code=code, title=title, message=message), code


def outage_answer(exc: BaseException, title: str, message: str) -> Any:
    """The 503 of a request that found the database unreachable: the API's JSON error or the
    bare page, with ``Retry-After``; nothing in it reads the database. Dead pooled connections
    are dropped first so the next request opens live ones."""
    mark_database_unavailable()
    flush_pool(exc)
    headers = {"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"}
    if is_api_request():
        return api_error_body(503), 503, headers
    body, code = render_error(503, title, message)
    return body, code, headers


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

    last_traceback = [-float("inf")]

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    @app.errorhandler(MaxConnectionsExceeded)
    def _database_down(exc: Exception):
        if not is_outage(exc):
            raise exc  # a bug, not an outage: the 500 handler logs it with its traceback
        # The traceback once a minute, one line for every other request: a restart under load
        # would otherwise write thousands of identical tracebacks.
        now = time.monotonic()
        with_traceback = now - last_traceback[0] >= TRACEBACK_EVERY
        if with_traceback:
            last_traceback[0] = now
        app.logger.error("database unavailable (%s %s): %s", request.method, request.path,
                         str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                         exc_info=exc if with_traceback else None)
        mark_database_unavailable()  # before the title: its language must not read the user
        title, message = messages[503]
        return outage_answer(exc, title(), message())

    @app.errorhandler(500)
    def _server_error(exc: Exception):
        original = getattr(exc, "original_exception", None)
        if original is not None and is_outage(original):
            # The database went away while another error was being answered (a 404 page's menu …).
            mark_database_unavailable()
            title, message = messages[503]
            return outage_answer(original, title(), message())
        title, message = messages[500]
        return render_error(500, title(), message())
