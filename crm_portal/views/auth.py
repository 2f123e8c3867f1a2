"""Portal login and logout, and the language switch.

Failed logins are throttled per account and per IP address (:mod:`crm_portal.ratelimit`), each
attempt reserved before its password is checked; logout
rotates the account's session token, so a copied session or remember-me cookie dies with it.
"""
from __future__ import annotations

import contextlib

from flask import (
    Blueprint,
    Flask,
    abort,
    after_this_request,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from .. import device_cookies, ratelimit, signals
from ..audit import audit
from ..auth import PortalUser, StaffPrincipal, client_ip, hash_password, needs_rehash, safe_next, verify_password
from ..db import db, retry_on_lock, utcnow
from ..forms import EmptyForm, LoginForm
from ..models import Contact, LoginSession, StaffUser, new_token

bp = Blueprint("auth", __name__)


def _fresh_session() -> None:
    """Empty the session, keeping only the language the visitor chose."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def start_session(user, remember: bool, *, password_login: bool = False) -> None:
    """Log ``user`` in on a brand-new session (nothing from before, a planted session id included,
    survives; the chosen language does). A contact's session gets its record
    (:mod:`crm_portal.account.sessions`); ``password_login`` announces a new device by email."""
    _fresh_session()
    if isinstance(user, PortalUser):
        from ..account import sessions

        with db.atomic():
            user = sessions.begin(user, announce=password_login)
    login_user(user, remember=remember)


def finish_login(user, remember: bool) -> None:
    """Start the session of a user who just proved who they are, and announce it."""
    start_session(user, remember, password_login=True)
    signals.user_logged_in.send(current_app._get_current_object(), user=user, ip=client_ip())


def end_session(user) -> None:
    """Log ``user`` out everywhere: their token rotates, so a copied session or remember-me cookie
    dies too, and this browser keeps only its language."""
    if user.is_authenticated:
        record = getattr(user, "login_session", None)
        if record is not None:
            with db.atomic():
                LoginSession.update(revoked_at=utcnow()).where(LoginSession.id == record.id).execute()
        rotate_session_token(user)
        signals.user_logged_out.send(current_app._get_current_object(), user=user)
    logout_user()
    _fresh_session()
    session["_remember"] = "clear"  # Flask-Login deletes the remember-me cookie on this response


def throttled_response(seconds: int, render, category: str = "warning"):
    """The login page again, with 429 and ``Retry-After``."""
    flash(_("Too many failed attempts. Please wait %(seconds)d seconds and try again.", seconds=seconds), category)
    response = current_app.make_response((render(), 429))
    response.headers["Retry-After"] = str(seconds)
    return response


def attempt_login(email: str, password: str, *, staff: bool) -> tuple[PortalUser | StaffPrincipal | None, int]:
    """Check a contact's (or, with ``staff``, a staff member's) password, throttled, counted and
    audited: ``(principal, 0)`` on success, ``(None, 0)`` on a wrong password or a closed account,
    ``(None, seconds)`` when the account or the address must wait first (answer 429).

    The attempt takes its place in the throttle before the password is checked, so parallel
    guesses cannot all slip under the limit while the first ones are still being verified. A
    browser that logged in to the account before is throttled as its own device
    (:mod:`crm_portal.device_cookies`): an attack from elsewhere never locks the owner out. Its
    outcome (audit entry, login time, counters) is stored in one transaction, retried alone when
    SQLite is busy; if it cannot be stored the places are given back, so an error never leaves a
    place taken nor writes the audit entry twice."""
    account = ratelimit.account_key(email, staff=staff)
    keys = (device_cookies.throttle_key(account), ratelimit.ip_key(client_ip()))
    wait = ratelimit.reserve_login(*keys)
    if wait:
        return None, wait
    try:
        principal = retry_on_lock(lambda: _store_outcome(email, password, keys, staff=staff))
    except BaseException:
        with contextlib.suppress(Exception):  # else the places lapse after ratelimit.PENDING_SECONDS
            ratelimit.release(*keys)
        raise
    if principal is None:
        signals.login_failed.send(current_app._get_current_object(), email=email, ip=client_ip(), staff=staff)
    else:
        @after_this_request
        def _remember_device(response: Response) -> Response:
            device_cookies.remember(response, account)
            return response
    return principal, 0


def _store_outcome(email: str, password: str, keys: tuple[str, str], *,
                   staff: bool) -> PortalUser | StaffPrincipal | None:
    """Check the password of a reserved attempt and store the outcome in one transaction: the
    principal on success, ``None`` on a wrong password or a closed account."""
    model = StaffUser if staff else Contact
    account = model.get_or_none(model.email == email)
    verified = verify_password(account.password_hash if account else None, password)
    with db.atomic():
        if verified and account is not None and (account.active if staff else account.portal_access):
            principal: PortalUser | StaffPrincipal = StaffPrincipal(account) if staff else PortalUser(account)
            account.last_login = utcnow()
            if needs_rehash(account.password_hash):
                account.password_hash = hash_password(password)
            account.save()
            audit("staff-login" if staff else "login", account, user=principal)
            ratelimit.record_success(*keys)
            return principal
        audit("staff-login-failed" if staff else "login-failed", object_type=model._meta.table_name,
              object_id=account.id if account else None, details={"email": email[:254]})
        ratelimit.confirm_failure(*keys)
    return None


def rotate_session_token(user) -> None:
    """End every session and remember-me cookie of ``user`` (server side)."""
    with db.atomic():
        if isinstance(user, PortalUser):
            Contact.update(session_token=new_token()).where(Contact.id == user.contact_id).execute()
        elif isinstance(user, StaffPrincipal):
            StaffUser.update(session_token=new_token()).where(StaffUser.id == user.staff.id).execute()


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated and not current_user.is_staff:
        return redirect(safe_next(request.args.get("next")) or url_for("portal.dashboard"))
    form = LoginForm(next=request.args.get("next", ""))

    def render():
        return render_template("auth/login.html", form=form)

    if form.validate_on_submit():
        user, wait = attempt_login(form.email.data.strip().lower(), form.password.data, staff=False)
        if wait:
            return throttled_response(wait, render)
        if user is not None:  # logged in now, or after the second factor's code
            from .second_factor import after_password

            return after_password(user, bool(form.remember.data),
                                  safe_next(form.next.data) or url_for("portal.dashboard"))
        flash(_("Wrong email or password."), "danger")
    return render()


@bp.route("/logout", methods=["POST"])
def logout():
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    end_session(current_user._get_current_object())
    flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/lang/<code>", methods=["POST"])
def set_language(code: str):
    form = EmptyForm()
    if code not in current_app.config["LANGUAGES"] or not form.validate_on_submit():
        abort(404)
    session["lang"] = code
    user = current_user._get_current_object()
    if isinstance(user, PortalUser):
        with db.atomic():
            Contact.update(language=code).where(Contact.id == user.contact_id).execute()
    return redirect(safe_next(request.form.get("next")) or url_for("portal.dashboard"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
