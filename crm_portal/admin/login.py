"""Staff login for Flask-Admin, separate from the portal login: a contact never gets past it."""
from __future__ import annotations

from flask import current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from .. import ratelimit, signals
from ..audit import audit
from ..auth import StaffPrincipal, client_ip, hash_password, needs_rehash, safe_next, verify_password
from ..db import db, utcnow
from ..forms import EmptyForm, LoginForm
from ..models import StaffUser
from ..views.auth import end_session, finish_login, throttled_response


def staff_login(view):
    if current_user.is_authenticated and current_user.is_staff:
        return redirect(url_for("admin.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        keys = (ratelimit.account_key(email, staff=True), ratelimit.ip_key(client_ip()))
        wait = ratelimit.reserve_login(*keys)  # checked and counted before the password is
        if wait:
            return throttled_response(wait, lambda: view.render("admin/login.html", form=form), "error")
        staff = StaffUser.get_or_none(StaffUser.email == email)
        if verify_password(staff.password_hash if staff else None, form.password.data) and staff.active:
            principal = StaffPrincipal(staff)
            with db.atomic():
                staff.last_login = utcnow()
                if needs_rehash(staff.password_hash):
                    staff.password_hash = hash_password(form.password.data)
                staff.save()
                audit("staff-login", staff, user=principal)
            ratelimit.record_success(*keys)
            finish_login(principal, bool(form.remember.data))
            target = safe_next(form.next.data)
            return redirect(target if target and target.startswith("/admin") else url_for("admin.index"))
        with db.atomic():
            audit("staff-login-failed", object_type="core_staff_user", object_id=staff.id if staff else None,
                  details={"email": email[:254]})
        ratelimit.confirm_failure(*keys)
        signals.login_failed.send(current_app._get_current_object(), email=email, ip=client_ip(), staff=True)
        flash(_("Wrong email or password."), "error")
    return view.render("admin/login.html", form=form)


def staff_logout():
    form = EmptyForm()
    if form.validate_on_submit() and current_user.is_authenticated:
        end_session(current_user._get_current_object())
    return redirect(url_for("admin.login"))
