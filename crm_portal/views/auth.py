"""Portal login and logout, and the language switch."""
from __future__ import annotations

from flask import (Blueprint, Flask, abort, current_app, flash, redirect, render_template, request,
                   session, url_for)
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from .. import signals
from ..audit import audit
from ..auth import PortalUser, client_ip, needs_rehash, hash_password, safe_next, verify_password
from ..db import db, utcnow
from ..forms import EmptyForm, LoginForm
from ..models import Contact

bp = Blueprint("auth", __name__)


def _finish_login(user, remember: bool) -> None:
    # A new session: nothing from before the login (a planted session id included) survives.
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    login_user(user, remember=remember)
    signals.user_logged_in.send(current_app._get_current_object(), user=user, ip=client_ip())


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated and not current_user.is_staff:
        return redirect(safe_next(request.args.get("next")) or url_for("portal.dashboard"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        contact = Contact.get_or_none(Contact.email == email)
        ok = verify_password(contact.password_hash if contact else None, form.password.data)
        if ok and contact.portal_access:
            with db.atomic():
                contact.last_login = utcnow()
                if needs_rehash(contact.password_hash):
                    contact.password_hash = hash_password(form.password.data)
                contact.save()
                audit("login", contact, user=PortalUser(contact))
            _finish_login(PortalUser(contact), bool(form.remember.data))
            return redirect(safe_next(form.next.data) or url_for("portal.dashboard"))
        with db.atomic():
            audit("login-failed", object_type="core_contact", object_id=contact.id if contact else None,
                  details={"email": email[:254]})
        signals.login_failed.send(current_app._get_current_object(), email=email, ip=client_ip(), staff=False)
        flash(_("Wrong email or password."), "danger")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    user = current_user._get_current_object()
    if user.is_authenticated:
        signals.user_logged_out.send(current_app._get_current_object(), user=user)
    logout_user()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
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
