"""The contact's signed-in browsers in "My data" (crm_portal.account.sessions): end one, or every one
but this browser. Blueprint ``account_sessions``, routes under ``/me/sessions``."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import login_required, login_user
from werkzeug.wrappers import Response

from ..audit import audit
from ..auth import PortalUser, current_portal_user
from ..db import db
from ..forms import EmptyForm
from ..models import LoginSession
from . import sessions

bp = Blueprint("account_sessions", __name__)


def _me() -> tuple[PortalUser, LoginSession]:
    """The contact and this browser's session record (404 for staff viewing as the contact)."""
    user = current_portal_user()
    if user is None or getattr(user, "viewing_as", False) or user.login_session is None:
        abort(404)
    return user, user.login_session


def _checked_form() -> None:
    if not EmptyForm().validate_on_submit():
        abort(400)


def context() -> dict[str, Any]:
    """What "My data" shows of the contact's sessions (one query)."""
    user = current_portal_user()
    if user is None or user.login_session is None:
        return {"login_sessions": [], "session_form": None}
    return {"login_sessions": sessions.rows(sessions.live(user.contact), user.login_session.id),
            "session_form": EmptyForm()}


def _back() -> Response:
    return redirect(url_for("account.me", _anchor="sessions"))


@bp.route("/me/sessions/end-others", methods=["POST"])
@login_required
def end_others() -> Response:
    """Log out every other browser: their rows are revoked and the session token rotates (so
    remember-me cookies die too); this browser is logged in again under the new token."""
    user, mine = _me()
    _checked_form()
    with db.atomic():
        ended = sessions.revoke_all(user.contact, keep=mine)
        audit("sessions-ended", user.contact, details={"ended": ended, "kept": mine.id})
    remember = current_app.config["REMEMBER_COOKIE_NAME"] in request.cookies
    login_user(PortalUser(user.contact, mine), remember=remember)
    flash(_("Every other session has been logged out."), "success")
    return _back()


@bp.route("/me/sessions/<int:record_id>/end", methods=["POST"])
@login_required
def end_one(record_id: int) -> Response:
    """Log out one other browser; another contact's session, or an ended one, is a 404."""
    user, mine = _me()
    _checked_form()
    if record_id == mine.id:
        abort(404)  # this browser logs out with the usual button
    with db.atomic():
        if not sessions.revoke(user.contact, record_id):
            abort(404)
        audit("session-ended", user.contact, details={"session": record_id})
    flash(_("That session has been logged out."), "success")
    return _back()
