"""The account pages: my data, password change, forgotten password, invitation and registration."""
from __future__ import annotations

import peewee
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.exceptions import TooManyRequests

from .. import notifications, ratelimit, signals
from ..audit import audit
from ..auth import PortalUser, current_portal_user, load_contact, verify_password
from ..db import db
from ..models import Contact
from ..outbox import external_url, queue_email
from ..sync.ownership import locked_fields
from ..views.auth import start_session
from . import service, session_views, tokens
from .forms import (
    CHANGE_FIELDS,
    ChangePasswordForm,
    ChangeRequestForm,
    ForgotPasswordForm,
    ProfileForm,
    RegistrationForm,
    SetPasswordForm,
    event_field_name,
    notification_form,
)

bp = Blueprint("account", __name__)

#: Endpoints a contact who must change their password can still reach.
OPEN_WHEN_MUST_CHANGE = {"account.change_password", "auth.logout", "auth.set_language", "static", "theme_static"}


def _contact_or_404() -> Contact:
    user = current_portal_user()
    if user is None:
        abort(404)
    return user.contact


def _relogin(contact: Contact) -> None:
    """Keep this browser logged in with the contact's new session token."""
    remember = current_app.config["REMEMBER_COOKIE_NAME"] in request.cookies
    start_session(PortalUser(load_contact(contact.id)), remember)


def _token_error(result: tokens.TokenCheck, kind: str):
    return render_template("account/token_error.html", error=result.error.value, kind=kind), 400


# --- my data -----------------------------------------------------------------------------------

def _profile_form(contact: Contact) -> ProfileForm:
    form = ProfileForm(obj=contact) if request.method == "GET" else ProfileForm()
    # Fields a CRM keeps (crm_portal.sync.ownership) change there only: here, by a change request.
    editable = set(current_app.config["ACCOUNT_EDITABLE_FIELDS"]) - locked_fields("contact", contact.id)
    for name in ("phone", "mobile", "language", "notify_by_email"):
        if name not in editable:
            delattr(form, name)
    if hasattr(form, "language"):
        form.language.choices = [c for c in form.language.choices if c.value in current_app.config["LANGUAGES"]]
        if request.method == "GET" and not contact.language:
            form.language.data = str(current_app.config["BABEL_DEFAULT_LOCALE"])
    return form


def _notification_form(contact: Contact):
    """The contact's choice of notification events (those of the modules they can see)."""
    events = notifications.events(current_portal_user())
    if request.method == "POST" and request.endpoint == "account.notifications":
        return notification_form(events), events
    chosen = notifications.preferences(contact)
    data = {event_field_name(e.key): chosen[e.key] for e in events}
    return notification_form(events, formdata=None, data=data), events


def _me_page(contact: Contact, form: ProfileForm, request_form: ChangeRequestForm, **extra):
    notify_form, events = _notification_form(contact)
    return render_template("account/me.html", contact=contact, form=form, request_form=request_form,
                           notify_form=notify_form, notify_events=events, **session_views.context(), **extra)


@bp.route("/me/notifications", methods=["POST"], endpoint="notifications")
@login_required
def notifications_view():
    """Save which notification events the contact wants (account emails are not among them)."""
    contact = _contact_or_404()
    form, events = _notification_form(contact)
    if not form.validate_on_submit():
        return _me_page(contact, _profile_form(contact), ChangeRequestForm(prefix="req")), 400
    wanted = {e.key: bool(form[event_field_name(e.key)].data) for e in events}
    before = notifications.preferences(contact)
    stored = notifications.encode_choices(contact, wanted)
    if stored != contact.notification_events:
        with db.atomic():
            Contact.update(notification_events=stored).where(Contact.id == contact.id).execute()
            audit("notifications-updated", contact,
                  details={k: [before.get(k), v] for k, v in wanted.items() if before.get(k) != v})
    flash(_("Your notification choices have been saved."), "success")
    return redirect(url_for("account.me"))


@bp.route("/me", methods=["GET", "POST"])
@login_required
def me():
    contact = _contact_or_404()
    form = _profile_form(contact)
    request_form = ChangeRequestForm(prefix="req")
    if request.method == "POST" and form.validate_on_submit():
        changes = {}
        for field in form:
            if field.name == "csrf_token":
                continue
            value = field.data.strip() if isinstance(field.data, str) else field.data
            value = value if value != "" else None
            if getattr(contact, field.name) != value:
                changes[field.name] = (getattr(contact, field.name), value)
                setattr(contact, field.name, value)
        if changes:
            with db.atomic():
                contact.save(only=[getattr(Contact, name) for name in changes])
                audit("account-updated", contact, details={k: [str(v[0]), str(v[1])] for k, v in changes.items()})
                module = current_app.extensions["crm_portal"].modules.get("contacts")
                if module is not None:  # a contacts-module record changed by a portal user (webhooks, change log)
                    signals.record_updated.send(module.name, module=module, record=contact, user=current_user,
                                                changes=changes)
            if "language" in changes and contact.language:
                session["lang"] = contact.language
        flash(_("Your data has been saved."), "success")
        return redirect(url_for("account.me"))
    status = 400 if request.method == "POST" else 200
    return _me_page(contact, form, request_form), status


@bp.route("/me/request", methods=["POST"])
@login_required
def change_request():
    contact = _contact_or_404()
    request_form = ChangeRequestForm(prefix="req")
    if not request_form.validate_on_submit():
        return _me_page(contact, _profile_form(contact), request_form, open_request=True), 400
    label = str(dict(CHANGE_FIELDS)[request_form.field.data])
    with db.atomic():
        service.request_change(contact, request_form.field.data, label, request_form.message.data.strip())
    flash(_("Your request has been sent to our support team."), "success")
    return redirect(url_for("account.me"))


@bp.route("/me/password", methods=["GET", "POST"])
@login_required
def change_password():
    contact = _contact_or_404()
    form = ChangePasswordForm()
    form.account_email = contact.email
    if form.validate_on_submit():
        if not verify_password(contact.password_hash, form.current_password.data):
            form.current_password.errors.append(_("The current password is not correct."))
        elif form.password.data == form.current_password.data:
            form.password.errors.append(_("Choose a password different from the current one."))
        else:
            forced = contact.must_change_password  # the first login's change: then on to the portal
            with db.atomic():
                service.set_password(contact, form.password.data)
            _relogin(contact)
            flash(_("Your password has been changed. Every other session has been logged out."), "success")
            return redirect(url_for("portal.dashboard" if forced else "account.me"))
    status = 400 if request.method == "POST" else 200
    return render_template("account/change_password.html", form=form, forced=contact.must_change_password), status


# --- forgotten password, reset, invitation ---------------------------------------------------------

def _mail_flood_guard() -> None:
    """429 with ``Retry-After`` when this address asked for too many emails lately; else count it."""
    wait = ratelimit.reserve_mail_request(request.remote_addr)  # checked and counted in one step
    if wait:
        raise TooManyRequests(retry_after=wait)


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        _mail_flood_guard()
        email = form.email.data.strip().lower()
        contact = Contact.get_or_none(Contact.email == email)
        if contact is not None and contact.portal_access:
            with db.atomic():
                service.send_password_reset(contact)
        # The same answer whether the address exists or not.
        return render_template("account/forgot_password_sent.html", email=email)
    status = 400 if request.method == "POST" else 200
    return render_template("account/forgot_password.html", form=form), status


def _set_password_page(token: str, purpose: str, endpoint: str, template: str):
    result = tokens.check(token, purpose)
    if not result.ok:
        return _token_error(result, purpose)
    contact = result.contact
    form = SetPasswordForm()
    form.account_email = contact.email
    if form.validate_on_submit():
        with db.atomic():
            if not tokens.consume(result):
                return _token_error(tokens.TokenCheck(error=tokens.TokenError.USED), purpose)
            service.set_password(contact, form.password.data,
                                 action="invitation-accepted" if purpose == "invite" else "password-reset")
        # consume() succeeded only while the contact had portal access: a link never grants it.
        # An emailed link replaces the password, never the second factor: its code is still asked.
        from ..views.second_factor import after_password

        response = after_password(PortalUser(load_contact(contact.id)), False, url_for("portal.dashboard"))
        flash(_("Your password has been saved. Welcome!"), "success")
        return response
    status = 400 if request.method == "POST" else 200
    return render_template(template, form=form, contact=contact,
                           action=url_for(endpoint, token=token)), status


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    return _set_password_page(token, "reset", "account.reset_password", "account/reset_password.html")


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):
    return _set_password_page(token, "invite", "account.accept_invitation", "account/accept_invitation.html")


# --- self-registration ---------------------------------------------------------------------------

def _registration_enabled() -> None:
    if not current_app.config.get("SELF_REGISTRATION"):
        abort(404)


@bp.route("/register", methods=["GET", "POST"])
def register():
    _registration_enabled()
    form = RegistrationForm()
    if form.validate_on_submit():
        _mail_flood_guard()
        email = form.email.data.strip().lower()
        language = str(request.accept_languages.best_match(current_app.config["LANGUAGES"])
                       or current_app.config["BABEL_DEFAULT_LOCALE"])
        language = session.get("lang") or language
        existing = Contact.get_or_none(Contact.email == email)
        with db.atomic():
            if existing is not None:
                # Same page as for a new address; the owner learns about it by email.
                queue_email(email, "registration-exists", language=existing.language or language,
                            contact=existing, link=external_url("account.forgot_password"))
            else:
                data = {"email": email, "first_name": form.first_name.data.strip(),
                        "last_name": form.last_name.data.strip(), "company_name": form.company_name.data.strip(),
                        "vat_number": (form.vat_number.data or "").strip(), "phone": (form.phone.data or "").strip(),
                        "language": language}
                token = tokens.issue_registration(data)
                queue_email(email, "registration-confirm", language=language, data=data,
                            link=external_url("account.confirm_registration", token=token),
                            hours=max(1, int(current_app.config["REGISTRATION_MAX_AGE"]) // 3600))
        return render_template("account/register_sent.html", email=email)
    status = 400 if request.method == "POST" else 200
    return render_template("account/register.html", form=form), status


@bp.route("/register/confirm/<token>", methods=["GET", "POST"])
def confirm_registration(token: str):
    _registration_enabled()
    result = tokens.check_registration(token)
    if not result.ok:
        return _token_error(result, "register")
    data = result.data
    form = SetPasswordForm()
    form.account_email = data["email"]
    if form.validate_on_submit():
        try:
            with db.atomic():
                if Contact.get_or_none(Contact.email == data["email"]) is not None:
                    raise peewee.IntegrityError("already registered")
                contact, _messages = service.register(data, form.password.data)
        except peewee.IntegrityError:
            # Used already, or by a second submission at the same moment (the unique email refused it).
            return _token_error(tokens.TokenCheck(error=tokens.TokenError.USED), "register")
        if contact.portal_access:
            start_session(PortalUser(load_contact(contact.id)), False)
            flash(_("Your account is active. Welcome!"), "success")
            return redirect(url_for("portal.dashboard"))
        return render_template("account/register_pending.html", contact=contact)
    status = 400 if request.method == "POST" else 200
    return render_template("account/register_confirm.html", form=form, data=data,
                           action=url_for("account.confirm_registration", token=token)), status


# --- a password change before anything else ------------------------------------------------------

@bp.before_app_request
def _force_password_change():
    if request.endpoint in OPEN_WHEN_MUST_CHANGE or request.endpoint is None:
        return None
    if not current_user.is_authenticated or current_user.is_staff:
        return None
    if getattr(current_user, "viewing_as", False):
        return None  # staff viewing as the contact: the contact's own first login is not theirs to do
    if getattr(current_user.contact, "must_change_password", False):
        if request.method == "GET":
            flash(_("Please choose a new password before you continue."), "warning")
        return redirect(url_for("account.change_password"))
    return None
