"""Staff login for Flask-Admin, separate from the portal login: a contact never gets past it."""
from __future__ import annotations

from flask import current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from .. import ratelimit, signals
from ..audit import audit
from ..auth import StaffPrincipal, client_ip, hash_password, needs_rehash, safe_next, verify_password
from ..db import db, utcnow
from ..forms import EmptyForm, LoginForm
from ..models import StaffUser


def staff_login(view):
    if current_user.is_authenticated and current_user.is_staff:
        return redirect(url_for("admin.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        keys = (ratelimit.account_key(email, staff=True), ratelimit.ip_key(client_ip()))
        wait = ratelimit.retry_after(keys)
        if wait:
            flash(_("Too many failed attempts. Please wait %(seconds)d seconds and try again.", seconds=wait), "error")
            response = current_app.make_response((view.render("admin/login.html", form=form), 429))
            response.headers["Retry-After"] = str(wait)
            return response
        staff = StaffUser.get_or_none(StaffUser.email == email)
        if verify_password(staff.password_hash if staff else None, form.password.data) and staff.active:
            principal = StaffPrincipal(staff)
            with db.atomic():
                staff.last_login = utcnow()
                if needs_rehash(staff.password_hash):
                    staff.password_hash = hash_password(form.password.data)
                staff.save()
                audit("staff-login", staff, user=principal)
            ratelimit.record_success(keys[0])
            lang = session.get("lang")
            session.clear()
            if lang:
                session["lang"] = lang
            login_user(principal, remember=bool(form.remember.data))
            signals.user_logged_in.send(current_app._get_current_object(), user=principal, ip=client_ip())
            target = safe_next(form.next.data)
            return redirect(target if target and target.startswith("/admin") else url_for("admin.index"))
        with db.atomic():
            audit("staff-login-failed", object_type="core_staff_user", object_id=staff.id if staff else None,
                  details={"email": email[:254]})
        ratelimit.record_failure(*keys)
        signals.login_failed.send(current_app._get_current_object(), email=email, ip=client_ip(), staff=True)
        flash(_("Wrong email or password."), "error")
    return view.render("admin/login.html", form=form)


def staff_logout():
    form = EmptyForm()
    if form.validate_on_submit() and current_user.is_authenticated:
        from ..views.auth import rotate_session_token

        user = current_user._get_current_object()
        rotate_session_token(user)  # a copied session or remember-me cookie dies too
        signals.user_logged_out.send(current_app._get_current_object(), user=user)
        logout_user()
        session.clear()
        session["_remember"] = "clear"
    return redirect(url_for("admin.login"))
