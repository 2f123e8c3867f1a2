"""The second factor in the browser: the code step of the login, enrolment and its management, and
the requirement that keeps a user who must enrol on the enrolment page.

After the password, a user with the factor on is not logged in: the session holds only "password
verified for account X at time T" (:data:`PENDING`, valid :data:`PENDING_SECONDS`) and the code
page completes the login. Flask-Login knows nothing of that state, so every other page treats the
browser as anonymous. Wrong codes are throttled like passwords (:mod:`crm_portal.ratelimit`, key
``totp:<account>``). "Remember this device" is a signed cookie per account bound to the current
enrolment and password (:func:`crm_portal.second_factor.fingerprint`).
"""
from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Flask,
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
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField, StringField
from wtforms.validators import DataRequired, Length

from .. import ratelimit
from .. import second_factor as sf
from ..audit import audit
from ..auth import PortalUser, StaffPrincipal, client_ip, load_contact, verify_password
from ..db import db
from ..forms import EmptyForm
from ..models import Contact, SecondFactor, StaffUser

bp = Blueprint("second_factor", __name__)

#: Session key of a login waiting for its code.
PENDING = "second_factor_pending"
#: How long the password step stays valid while the code is awaited.
PENDING_SECONDS = 300
#: Session key: this session's account has its factor on (the requirement check is done).
ENROLLED = "second_factor_ok"
COOKIE_PREFIX = "crm_portal_2fa_"
COOKIE_SALT = "crm-portal-second-factor-device"
#: Pages a user who must enrol can still reach.
OPEN_WHEN_MUST_ENROL = {"second_factor.manage", "admin.second_factor", "second_factor.code", "auth.logout",
                        "admin.logout", "auth.set_language", "admin.set_language", "account.change_password",
                        "static", "theme_static"}


class CodeForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)],
                       render_kw={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false"})
    remember_device = BooleanField(_l("Remember this device for 30 days"))


class ConfirmForm(FlaskForm):
    """The first code of a new enrolment."""

    action = HiddenField(default="confirm")
    code = StringField(_l("Code from the app"), validators=[DataRequired(), Length(max=12)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


class ProofForm(FlaskForm):
    """Switching the factor off or new recovery codes: a current code or the password."""

    action = HiddenField()
    proof = StringField(_l("A current code or your password"), validators=[DataRequired(), Length(max=1024)],
                        render_kw={"autocomplete": "off"})


# --- accounts -------------------------------------------------------------------------------------

Principal = PortalUser | StaffPrincipal


def account_of(principal: Principal) -> Contact | StaffUser:
    return principal.staff if isinstance(principal, StaffPrincipal) else principal.contact


def _principal(account_key: str, token: str) -> Principal | None:
    kind, _, raw = account_key.partition(":")
    if not raw.isdigit():
        return None
    if kind == "c":
        contact = load_contact(int(raw))
        if contact is not None and contact.portal_access and contact.session_token == token:
            return PortalUser(contact)
    elif kind == "s":
        staff = StaffUser.get_or_none(StaffUser.id == int(raw))
        if staff is not None and staff.active and staff.session_token == token:
            return StaffPrincipal(staff)
    return None


# --- remembered devices ---------------------------------------------------------------------------

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=COOKIE_SALT)


def _cookie_name(factor: SecondFactor) -> str:
    return COOKIE_PREFIX + factor.account.replace(":", "")


def _remember_days() -> int:
    return int(current_app.config["SECOND_FACTOR_REMEMBER_DAYS"])


def remembered(factor: SecondFactor, account: Contact | StaffUser) -> bool:
    """Does this browser carry a valid "remember this device" cookie for this enrolment and password?"""
    raw = request.cookies.get(_cookie_name(factor))
    if not raw:
        return False
    try:
        value = _serializer().loads(raw, max_age=_remember_days() * 86400)
    except BadSignature:
        return False
    return isinstance(value, str) and hmac.compare_digest(value, sf.fingerprint(factor, account))


def _remember_device(factor: SecondFactor, account: Contact | StaffUser) -> None:
    value = _serializer().dumps(sf.fingerprint(factor, account))

    @after_this_request
    def _set(response: Response) -> Response:
        response.set_cookie(_cookie_name(factor), value, max_age=_remember_days() * 86400, httponly=True,
                            samesite="Lax", secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")), path="/")
        return response


# --- the login ------------------------------------------------------------------------------------

def after_password(principal: Principal, remember: bool, target: str) -> Response:
    """The password of ``principal`` was right: log in, or first ask for the code when the factor is
    on (and this device is not remembered). ``target`` is where the login ends."""
    from .auth import _fresh_session, finish_login

    account = account_of(principal)
    factor = sf.enabled_factor(account)
    if factor is None or remembered(factor, account):
        finish_login(principal, remember)
        if factor is not None:
            session[ENROLLED] = factor.account
        return redirect(target)
    _fresh_session()  # nothing of an earlier session survives; the language does
    session[PENDING] = {"account": factor.account, "token": account.session_token, "at": int(time.time()),
                        "remember": bool(remember), "next": target}
    return redirect(url_for("second_factor.code"))


def _pending() -> tuple[Principal, dict[str, Any]] | None:
    state = session.get(PENDING)
    if not isinstance(state, dict) or not isinstance(state.get("at"), int):
        return None
    if time.time() - state["at"] > PENDING_SECONDS:
        return None
    principal = _principal(str(state.get("account", "")), str(state.get("token", "")))
    return (principal, state) if principal is not None else None


@bp.route("/login/code", methods=["GET", "POST"])
def code():
    """The second step of the login: a TOTP code or a recovery code."""
    from .auth import finish_login, throttled_response

    found = _pending()
    if found is None:  # none, expired, or the password changed meanwhile
        state = session.pop(PENDING, None)
        staff = isinstance(state, dict) and str(state.get("account", "")).startswith("s:")
        flash(_("Please log in again."), "info")
        return redirect(url_for("admin.login" if staff else "auth.login"))
    principal, state = found
    account = account_of(principal)
    factor = sf.enabled_factor(account)
    if factor is None:  # reset meanwhile: the password alone is enough again
        session.pop(PENDING, None)
        finish_login(principal, bool(state.get("remember")))
        return redirect(state.get("next") or "/")
    form = CodeForm()

    def render() -> str:
        return render_template("auth/second_factor.html", form=form)

    if form.validate_on_submit():
        keys = ("totp:" + factor.account, ratelimit.ip_key(client_ip()))
        wait = ratelimit.reserve_login(*keys)
        if wait:
            return throttled_response(wait, render)
        try:
            result = sf.verify(factor, form.code.data)
        except BaseException:
            with contextlib.suppress(Exception):
                ratelimit.release(*keys)
            raise
        if result.ok:
            with db.atomic():
                audit("recovery-code-used" if result.recovery else "second-factor-verified", account, user=principal)
            ratelimit.record_success(*keys)
            finish_login(principal, bool(state.get("remember")))
            session[ENROLLED] = factor.account
            if form.remember_device.data:
                _remember_device(factor, account)
            if result.recovery:
                flash(_("You used a recovery code. Codes left: %(count)d.", count=sf.unused_recovery_codes(factor)),
                      "warning")
            return redirect(state.get("next") or "/")
        with db.atomic():
            audit("second-factor-failed", account, user=principal)
        ratelimit.confirm_failure(*keys)
        flash(_("This code is not valid. Enter the current code from your app, or a recovery code."), "danger")
        return render(), 400
    return render(), 400 if request.method == "POST" else 200


# --- enrolment and management ----------------------------------------------------------------------

def manage(principal: Principal, render: Callable[..., Any], here: str) -> Any:
    """The factor's page of ``principal`` (portal "My data" or the admin's preferences): start an
    enrolment, confirm it with a code, then see the recovery codes once; new recovery codes and
    switching off ask for a current code or the password. ``render(**context)`` draws the page."""
    account = account_of(principal)
    factor = sf.factor_of(account)
    confirm, proof = ConfirmForm(), ProofForm()
    action = request.form.get("action") if request.method == "POST" else None
    context: dict[str, Any] = {"factor": factor, "confirm_form": confirm, "proof_form": proof,
                               "required": sf.required(account), "codes": None}
    status = 200
    if action == "start" and EmptyForm().validate_on_submit() and (factor is None or factor.enabled_at is None):
        with db.atomic():
            sf.start_enrolment(account)
        return redirect(here)
    if action == "confirm" and factor is not None and factor.enabled_at is None:
        if confirm.validate_on_submit() and sf.use_code(factor, confirm.code.data):
            with db.atomic():
                sf.enable(factor)
                codes = sf.new_recovery_codes(factor)
                audit("second-factor-enabled", account, user=principal)
            session[ENROLLED] = factor.account
            flash(_("The second factor is on. Keep your recovery codes in a safe place."), "success")
            context.update(factor=factor, codes=codes)
            return render(**context)
        confirm.code.errors = [*confirm.code.errors, _("This code is not valid. Check your app's clock and try "
                                                       "again with the current code.")]
        status = 400
    elif action == "disable" and context["required"]:
        flash(_("Your account must use a second factor."), "danger")
        status = 400
    elif action in ("disable", "recovery") and factor is not None and factor.enabled_at is not None:
        wait = 0
        if proof.validate_on_submit():
            ok, wait = _proof_ok(factor, account, principal, proof.proof.data)
        else:
            ok = False
        if ok:
            with db.atomic():
                if action == "disable":
                    sf.remove(account)
                    audit("second-factor-disabled", account, user=principal)
                else:
                    codes = sf.new_recovery_codes(factor)
                    audit("second-factor-recovery-codes", account, user=principal)
            if action == "disable":
                session.pop(ENROLLED, None)
                flash(_("The second factor is off."), "success")
                return redirect(here)
            context["codes"] = codes
            return render(**context)
        if wait:
            proof.proof.errors = [_("Too many failed attempts. Please wait %(seconds)d seconds and try again.",
                                    seconds=wait)]
        elif not proof.proof.errors:
            proof.proof.errors = [_("Neither a current code nor your password.")]
        status = 429 if wait else 400
    elif request.method == "POST":
        status = 400
    if factor is not None and factor.enabled_at is None:
        uri = sf.provisioning_uri(factor, account)
        context.update(qr=sf.qr_svg(uri), secret=sf.secret_of(factor))
    elif factor is not None:
        context["unused"] = sf.unused_recovery_codes(factor)
    return render(**context), status


def _proof_ok(factor: SecondFactor, account: Contact | StaffUser, principal: Principal,
              value: str) -> tuple[bool, int]:
    """A current code or the account's password, throttled like the login's code step:
    ``(accepted, seconds to wait)``."""
    keys = ("totp:" + factor.account, ratelimit.ip_key(client_ip()))
    wait = ratelimit.reserve_login(*keys)
    if wait:
        return False, wait
    ok = sf.use_code(factor, value) or verify_password(account.password_hash, value)
    if ok:
        ratelimit.record_success(*keys)
    else:
        with db.atomic():
            audit("second-factor-failed", account, user=principal)
        ratelimit.confirm_failure(*keys)
    return ok, 0


@bp.route("/me/second-factor", methods=["GET", "POST"], endpoint="manage")
@login_required
def manage_contact():
    """The contact's own second factor ("My data")."""
    user = current_user._get_current_object()
    if not isinstance(user, PortalUser) or getattr(user, "viewing_as", False):
        return redirect(url_for("account.me"))
    return manage(user, lambda **ctx: render_template("account/second_factor.html", **ctx),
                  url_for("second_factor.manage"))


# --- the requirement ------------------------------------------------------------------------------

def _must_enrol() -> str | None:
    """Where a logged-in user who must have a second factor and has none is sent, else ``None``."""
    if not current_user.is_authenticated or getattr(current_user, "viewing_as", False):
        return None
    account = account_of(current_user._get_current_object())
    if session.get(ENROLLED) == sf.account_id(account) or not sf.required(account):
        return None
    if sf.enabled_factor(account) is not None:
        session[ENROLLED] = sf.account_id(account)
        return None
    return url_for("admin.second_factor" if isinstance(account, StaffUser) else "second_factor.manage")


def _enforce_requirement() -> Response | None:
    if request.endpoint is None or request.endpoint in OPEN_WHEN_MUST_ENROL or request.endpoint.endswith(".static"):
        return None
    target = _must_enrol()
    if target is None:
        return None
    if request.method == "GET":
        flash(_("Please set up a second factor before you continue."), "warning")
    return redirect(target)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_enforce_requirement)
