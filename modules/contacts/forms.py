"""Forms of a company's own administrator: invite a colleague, give a colleague a profile."""
from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField, ValidationError
from wtforms.validators import DataRequired, Email, Length

from crm_portal.api import Profile, _l

NOT_ASSIGNABLE = _l("Choose one of the profiles offered: the others are given by our staff only.")


class AssignableProfileField(SelectField):
    """The profiles a customer's administrator may give (set with :meth:`offer`); any other value,
    forged or stale, is refused with :data:`NOT_ASSIGNABLE`."""

    def __init__(self, label: Any = None, **kwargs: Any) -> None:
        super().__init__(label, coerce=int, choices=[], **kwargs)

    def offer(self, profiles: list[Profile]) -> None:
        self.choices = [(p.id, p.label) for p in profiles]

    def process_formdata(self, valuelist: list[Any]) -> None:
        try:
            self.data = int(valuelist[0]) if valuelist else None
        except (TypeError, ValueError):
            self.data = None  # refused below, with the same message as any other profile

    def pre_validate(self, form: Any) -> None:
        if self.data is None or self.data not in {value for value, _label in self.choices or ()}:
            raise ValidationError(str(NOT_ASSIGNABLE))


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class InviteForm(FlaskForm):
    first_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)],
                             render_kw={"autocomplete": "off"})
    last_name = StringField(_l("Surname"), validators=[DataRequired(), Length(max=100)],
                            render_kw={"autocomplete": "off"})
    email = EmailField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)],
                       filters=[_strip], render_kw={"autocomplete": "off"})
    profile = AssignableProfileField(_l("Profile"))


class ColleagueProfileForm(FlaskForm):
    profile = AssignableProfileField(_l("Profile"))


class ConfirmForm(FlaskForm):
    """The CSRF token of the revoke and enable buttons."""
