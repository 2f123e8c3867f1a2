"""The customer's decision form on a quote."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import Length, Optional

from crm_portal.api import _l

COMMENT_MAX = 2000


class QuoteDecisionForm(FlaskForm):
    """Accept or reject (the button pressed decides), with an optional comment."""

    comment = TextAreaField(_l("Comment (optional)"), validators=[Optional(), Length(max=COMMENT_MAX)])


class QuoteConfirmForm(QuoteDecisionForm):
    """The confirmation step: the same comment, carried over, and ``confirm`` set by its button."""

    confirm = HiddenField()
