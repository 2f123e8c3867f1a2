"""Staff's forgotten password, on the admin login: the account module's signed one-time links
(:mod:`crm_portal.account.tokens`) and throttles, an email through the outbox with a link built
from ``EXTERNAL_URL`` only."""
from __future__ import annotations

import datetime as dt

from flask import current_app, flash, redirect, url_for
from flask_babel import gettext as _

from ..account import tokens
from ..account.forms import ForgotPasswordForm, SetPasswordForm
from ..account.service import RESET_EMAILS_PER_HOUR
from ..account.views import _mail_flood_guard
from ..audit import audit
from ..auth import hash_password
from ..db import db, utcnow
from ..models import StaffToken, StaffUser, new_token
from ..outbox import external_url, queue_email


def send_staff_password_reset(staff: StaffUser) -> bool:
    """Email ``staff`` a reset link, unless too many were sent in the last hour."""
    hour_ago = utcnow() - dt.timedelta(hours=1)
    recent = StaffToken.select().where((StaffToken.staff == staff.id) & (StaffToken.created_at > hour_ago)).count()
    if recent >= RESET_EMAILS_PER_HOUR:
        return False
    token = tokens.issue_staff(staff)
    audit("staff-password-reset-requested", staff, system=True)
    queue_email(staff.email, "staff-password-reset", language=staff.language, staff=staff,
                link=external_url("admin.reset_password", token=token),
                minutes=max(1, int(current_app.config["PASSWORD_RESET_MAX_AGE"]) // 60))
    return True


def forgot_password(view):
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        _mail_flood_guard()  # 429 when this address asked for too many emails lately
        email = form.email.data.strip().lower()
        staff = StaffUser.get_or_none(StaffUser.email == email)
        if staff is not None and staff.active:
            with db.atomic():
                send_staff_password_reset(staff)
        # The same answer whether the address is a staff member's or not.
        flash(_("If %(email)s belongs to a staff account, a link to choose a new password is on its way.",
                email=email), "info")
        return redirect(url_for("admin.login"))
    status = 400 if form.is_submitted() else 200
    return view.render("admin/forgot_password.html", form=form), status


def reset_password(view, token: str):
    result = tokens.check_staff(token)
    if not result.ok:
        return view.render("admin/reset_error.html", error=result.error.value), 400
    staff = result.staff
    form = SetPasswordForm()
    form.account_email = staff.email
    if form.validate_on_submit():
        with db.atomic():
            if not tokens.consume_staff(result):
                return view.render("admin/reset_error.html", error=tokens.TokenError.USED.value), 400
            staff.password_hash = hash_password(form.password.data)
            staff.session_token = new_token()  # every session and remember-me cookie ends
            staff.save()
            tokens.revoke_all_staff(staff)
            audit("staff-password-reset", staff, system=True)
        flash(_("Your password has been saved: log in with it."), "success")
        return redirect(url_for("admin.login"))
    status = 400 if form.is_submitted() else 200
    return view.render("admin/reset_password.html", form=form, staff=staff,
                       action=url_for("admin.reset_password", token=token)), status
