"""Forms of the account pages."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import peewee
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField, TextAreaField, ValidationError
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional, Regexp

from . import passwords

LANGUAGE_NAMES = [("it", "Italiano"), ("en", "English")]
PHONE = Regexp(r"^[0-9+()./\- ]*$", message=_l("Use digits, spaces and + ( ) . / - only."))


class StrongPassword:
    """Checks the password policy (:mod:`crm_portal.account.passwords`) on every form that sets one,
    portal and admin alike. The form's ``account_email``, or the value of its field
    ``email_field`` (admin forms), is not allowed as password; names and company (the admin form's
    fields, else the account of that email) make a password built on them weak."""

    NAME_FIELDS = ("first_name", "last_name", "name", "company", "company_name")

    def __init__(self, email_field: str | None = None) -> None:
        self.email_field = email_field

    def __call__(self, form, field) -> None:
        email = getattr(form, "account_email", None)
        if email is None and self.email_field and self.email_field in form:
            email = (form[self.email_field].data or "").strip() or None
        names = [str(form[name].data) for name in self.NAME_FIELDS if name in form and form[name].data]
        names += getattr(form, "account_names", None) or ([] if names else _names_of(email))
        for problem in passwords.problems(field.data or "", email=email, names=names):
            raise ValidationError(problem)


def _names_of(email: str | None) -> list[str]:
    """The names and company of the account with ``email`` (contact or staff), if any."""
    from ..models import Company, Contact, StaffUser

    if not email:
        return []
    contact = (Contact.select(Contact.first_name, Contact.last_name, Company.name.alias("company_name"))
               .join(Company, peewee.JOIN.LEFT_OUTER, on=(Contact.company == Company.id))
               .where(Contact.email == email.strip().lower()).dicts().first())
    if contact is not None:
        return [contact["first_name"], contact["last_name"], contact["company_name"]]
    staff = StaffUser.select(StaffUser.name).where(StaffUser.email == email.strip().lower()).first()
    return [staff.name] if staff is not None else []


def _new_password_fields():
    password = PasswordField(_l("New password"), validators=[DataRequired(), StrongPassword()],
                             render_kw={"autocomplete": "new-password"},
                             description=_l("A long passphrase is easiest: several words you will remember."))
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(),
                                        EqualTo("password", message=_l("The two passwords do not match."))],
                            render_kw={"autocomplete": "new-password"})
    return password, confirm


class ForgotPasswordForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)],
                       render_kw={"autocomplete": "email"})


class SetPasswordForm(FlaskForm):
    password, confirm = _new_password_fields()


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"),
                                     validators=[DataRequired(), Length(max=passwords.MAX_LENGTH)],
                                     render_kw={"autocomplete": "current-password"})
    password, confirm = _new_password_fields()


class ProfileForm(FlaskForm):
    """What a contact may change by themselves; fields not in ``ACCOUNT_EDITABLE_FIELDS`` are removed."""

    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40), PHONE])
    mobile = StringField(_l("Mobile"), validators=[Optional(), Length(max=40), PHONE])
    language = SelectField(_l("Language"), choices=[SelectChoice(code, name) for code, name in LANGUAGE_NAMES])
    notify_by_email = BooleanField(_l("Send me email notifications about my requests"))


def event_field_name(key: str) -> str:
    """The form field of notification event ``key`` (field names hold no dots)."""
    return "event_" + key.replace(".", "__")


def notification_form(events: Sequence[Any], **kwargs: Any) -> FlaskForm:
    """A form with one checkbox per notification event (the contact's choices), built per request
    because modules declare the events."""

    class NotificationForm(FlaskForm):
        pass

    for found in events:
        setattr(NotificationForm, event_field_name(found.key),
                BooleanField(found.label, description=found.description))
    return NotificationForm(prefix="notify", **kwargs)


CHANGE_FIELDS = [
    ("name", _l("Name")), ("email", _l("Email")), ("phone", _l("Phone")), ("mobile", _l("Mobile")),
    ("office", _l("Office")), ("role", _l("Role")),
    ("company", _l("Company")), ("profile", _l("Profile")), ("other", _l("Something else")),
]


class ChangeRequestForm(FlaskForm):
    field = SelectField(_l("What should change?"), choices=[SelectChoice(k, v) for k, v in CHANGE_FIELDS],
                        validators=[DataRequired()])
    message = TextAreaField(_l("The correct data"), validators=[DataRequired(), Length(max=2000)],
                            render_kw={"rows": 4})


class RegistrationForm(FlaskForm):
    first_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)],
                             render_kw={"autocomplete": "given-name"})
    last_name = StringField(_l("Surname"), validators=[DataRequired(), Length(max=100)],
                            render_kw={"autocomplete": "family-name"})
    email = EmailField(_l("Work email"), validators=[DataRequired(), Email(), Length(max=254)],
                       render_kw={"autocomplete": "email"})
    company_name = StringField(_l("Company"), validators=[DataRequired(), Length(max=200)],
                               render_kw={"autocomplete": "organization"})
    vat_number = StringField(_l("VAT number"), validators=[Optional(), Length(max=32), Regexp(r"^[A-Za-z0-9 .\-]*$")])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40), PHONE])
