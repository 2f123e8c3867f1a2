"""Staff login for Flask-Admin, separate from the portal login: a contact never gets past it."""
from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..auth import safe_next
from ..forms import EmptyForm, LoginForm
from ..views.auth import attempt_login, end_session, throttled_response


def staff_login(view):
    if current_user.is_authenticated and current_user.is_staff:
        return redirect(url_for("admin.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        principal, wait = attempt_login(form.email.data.strip().lower(), form.password.data, staff=True)
        if wait:
            return throttled_response(wait, lambda: view.render("admin/login.html", form=form), "error")
        if principal is not None:  # logged in now, or after the second factor's code
            from ..views.second_factor import after_password

            target = safe_next(form.next.data)
            return after_password(principal, bool(form.remember.data),
                                  target if target and target.startswith("/admin") else url_for("admin.index"))
        flash(_("Wrong email or password."), "error")
    return view.render("admin/login.html", form=form)


def staff_logout():
    form = EmptyForm()
    if form.validate_on_submit() and current_user.is_authenticated:
        from ..db import db
        from ..viewas import end as end_view_as

        with db.atomic():
            end_view_as("logout")  # audited before the session, which holds it, is emptied
        end_session(current_user._get_current_object())
    return redirect(url_for("admin.login"))
