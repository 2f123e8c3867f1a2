"""What the customer may write on a visit: their notes."""
from __future__ import annotations

from crm_portal.api import _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length


class NotesForm(FlaskForm):
    customer_notes = TextAreaField(_l("Your notes"), validators=[DataRequired(), Length(max=2000)])
