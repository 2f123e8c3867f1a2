"""Forms of the customer side: the request form (with the admins' guided questions), comments,
closing with a rating and reopening."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask_wtf import FlaskForm
from wtforms import HiddenField, MultipleFileField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from crm_portal.api import _l

from .models import PRIORITIES, SEVERITIES, TYPES, TicketQuestion

MAX_TEXT = 20000


def choices(pairs) -> list[SelectChoice]:
    """``SelectChoice`` items from a mapping or (value, label) pairs."""
    items = pairs.items() if hasattr(pairs, "items") else pairs
    return [SelectChoice(value, label) for value, label in items]


def optional_int(value: Any) -> int | None:
    """A select's value as a number; the empty choice (and nothing) is ``None``."""
    if value in (None, ""):
        return None
    return int(value)


class TicketForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)],
                        description=_l("A short summary of the problem or of what you need."),
                        render_kw={"maxlength": 200, "autocomplete": "off"})
    type = SelectField(_l("Type"), choices=choices(TYPES), default="question")
    #: Starts empty (or fixed by the service's mapping, see views.create): never a silent default.
    category = SelectField(_l("Category"), coerce=optional_int,
                           validators=[DataRequired(message=_l("Please choose a category."))])
    priority = SelectField(_l("Priority"), choices=choices(PRIORITIES), default="medium",
                           description=_l("How urgent it is for you."))
    severity = SelectField(_l("Severity"), choices=choices(SEVERITIES), default="non_blocking",
                           description=_l("Whether it stops your work."))
    product = SelectField(_l("Related product"), coerce=int, validators=[Optional()])
    description = TextAreaField(
        _l("Description"), validators=[DataRequired(), Length(max=MAX_TEXT)],
        description=_l("Versions of the programs you use, what happens, and the checks you already made."),
        render_kw={"rows": 8})
    attachments = MultipleFileField(_l("Attachments"), validators=[Optional()],
                                    description=_l("Screenshots, documents or a zip file."))

    question_fields: list[tuple[str, TicketQuestion]]

    def answers(self) -> list[dict[str, str]]:
        out = []
        for name, question in self.question_fields:
            value = (self[name].data or "").strip()
            if value and self.question_applies(question):
                out.append({"question": question.label_for("en"), "question_it": question.label_for("it"),
                            "answer": value})
        return out

    def question_applies(self, question: TicketQuestion) -> bool:
        return question.category_id is None or question.category_id == self.category.data

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for name, question in self.question_fields:
            field = self[name]
            if question.required and self.question_applies(question) and not (field.data or "").strip():
                field.errors = list(field.errors) + [str(_l("This question needs an answer."))]
                ok = False
        return ok


def ticket_form(questions: Sequence[TicketQuestion], **kwargs: Any) -> TicketForm:
    """A TicketForm with one text field per guided question (``q_<id>``)."""
    attrs = {}
    names = []
    for question in questions:
        name = f"q_{question.id}"
        attrs[name] = TextAreaField(question.label, validators=[Optional(), Length(max=2000)],
                                    render_kw={"rows": 2, "data-category": question.category_id or ""})
        names.append((name, question))
    form_class = type("GuidedTicketForm", (TicketForm,), attrs)
    form = form_class(**kwargs)
    form.question_fields = names
    return form


class CommentForm(FlaskForm):
    body = TextAreaField(_l("Comment"), validators=[DataRequired(), Length(max=MAX_TEXT)], render_kw={"rows": 3})
    kind = HiddenField(default="public")


class CloseForm(FlaskForm):
    rating = RadioField(_l("How satisfied are you?"), coerce=int, validators=[InputRequired()],
                        choices=choices([(5, _l("5 – Very satisfied")), (4, _l("4 – Satisfied")),
                                         (3, _l("3 – Neutral")), (2, _l("2 – Unsatisfied")),
                                         (1, _l("1 – Very unsatisfied"))]))
    comment = TextAreaField(_l("Comment (optional)"), validators=[Optional(), Length(max=MAX_TEXT)],
                            render_kw={"rows": 2})


class ReopenForm(FlaskForm):
    body = TextAreaField(_l("What is still not working?"), validators=[DataRequired(), Length(max=MAX_TEXT)],
                         render_kw={"rows": 3})


class WithdrawForm(FlaskForm):
    reason = TextAreaField(_l("Reason (optional)"), validators=[Optional(), Length(max=MAX_TEXT)],
                           description=_l("Support reads it in the request's history."), render_kw={"rows": 2})
