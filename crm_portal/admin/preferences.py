"""A staff member's own settings in the admin: language (the switch in the menu bar) and time zone."""
from __future__ import annotations

from zoneinfo import available_timezones

from flask import current_app, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField

from ..audit import audit
from ..auth import safe_next
from ..db import db
from ..forms import EmptyForm
from ..i18n import default_timezone
from ..models import StaffUser
from .labels import LANGUAGE_NAMES


def language_names() -> dict[str, str]:
    """The portal's languages by their own name, in the configured order."""
    return {code: LANGUAGE_NAMES.get(code, code) for code in current_app.config["LANGUAGES"]}


def timezone_choices() -> list[tuple[str, str]]:
    """Every IANA zone this machine knows (``Europe/Rome`` …), by name; empty: the portal's default."""
    default = default_timezone()
    zones = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))
    return [("", _("Portal default (%(zone)s)", zone=default))] + [(z, z.replace("_", " ")) for z in zones]


class PreferencesForm(FlaskForm):
    language = SelectField(_l("Language"))
    timezone = SelectField(_l("Time zone"), description=_l("Dates and times in the admin are shown in this zone."))


def _back() -> str:
    target = safe_next(request.form.get("next"))
    return target if target and target.startswith("/admin") else url_for("admin.index")


def set_language():
    """The menu bar's switch: saved on the staff user (and on this browser, for the login page)."""
    form = EmptyForm()
    code = request.form.get("language", "")
    if code not in current_app.config["LANGUAGES"] or not form.validate_on_submit():
        return redirect(_back())
    session["lang"] = code
    if current_user.is_authenticated and getattr(current_user, "is_staff", False):
        staff = current_user.staff
        if staff.language != code:
            with db.atomic():
                StaffUser.update(language=code).where(StaffUser.id == staff.id).execute()
                staff.language = code
                audit("staff-language-changed", staff, details={"language": code})
    return redirect(_back())


def preferences(view):
    """Language and time zone of the logged-in staff member."""
    staff = current_user.staff
    form = PreferencesForm(obj=staff) if request.method == "GET" else PreferencesForm()
    form.language.choices = list(language_names().items())
    form.timezone.choices = timezone_choices()
    if request.method == "GET":
        form.language.data = staff.language or current_app.config["BABEL_DEFAULT_LOCALE"]
        form.timezone.data = staff.timezone or ""
    if form.validate_on_submit():
        with db.atomic():
            StaffUser.update(language=form.language.data, timezone=form.timezone.data or None).where(
                StaffUser.id == staff.id).execute()
            staff.language, staff.timezone = form.language.data, form.timezone.data or None
            audit("staff-preferences-changed", staff,
                  details={"language": staff.language, "timezone": staff.timezone})
        session["lang"] = staff.language
        from flask import flash
        from flask_babel import refresh

        refresh()  # this response already speaks the new language
        flash(_("Your preferences have been saved."), "success")
        return redirect(url_for("admin.preferences"))
    status = 400 if request.method == "POST" else 200
    return view.render("admin/preferences.html", form=form), status
