"""The staff side of quotes: quotes with their lines inline; decided quotes are read-only."""
from __future__ import annotations

from typing import Any

from flask_admin.model.form import InlineFormAdmin
from flask_babel import gettext as _
from wtforms.validators import Optional

from crm_portal.api import AdminModelView, WriteRefused, _l

from .models import DECIDED_STATUSES, STATUS_LABELS, Quote, QuoteLine

#: The names of the quotes' fields in the admin (the shared ones come from the portal).
LABELS = {
    "valid_until": _l("Valid until"), "currency": _l("Currency"), "net_total": _l("Net total"),
    "vat_total": _l("VAT total"), "gross_total": _l("Gross total"), "decided_by": _l("Decided by"),
    "decided_at": _l("Decided on"), "decision_comment": _l("Customer's comment"), "lines": _l("Lines"),
    "product_code": _l("Product code"), "description": _l("Description"), "unit_price": _l("Unit price"),
    "discount": _l("Discount %"), "vat_rate": _l("VAT rate %"), "quote": _l("Quote"),
}
class QuoteLineInline(InlineFormAdmin):
    form_columns = ("id", "position", "product_code", "description", "quantity", "unit_price", "discount",
                    "vat_rate")
    # A new line has no id yet: the hidden primary key must not be required.
    form_args = {"id": {"validators": [Optional()]}}


class QuoteAdmin(AdminModelView):
    roles = ("admin", "operator")
    field_labels = LABELS
    choice_labels = {"status": STATUS_LABELS}
    audit_labels = {"quote-accepted": _l("Quote accepted"), "quote-rejected": _l("Quote rejected")}
    inline_models = (QuoteLineInline(QuoteLine),)
    column_list = ("number", "company", "contact", "subject", "date", "valid_until", "status", "gross_total",
                   "decided_at")
    column_searchable_list = ("number", "subject")
    column_filters = ("status", "date", "valid_until")
    column_default_sort = ("date", True)
    form_excluded_columns = ("net_total", "vat_total", "gross_total", "decided_by", "decided_at",
                             "decision_comment", "created_at")
    column_details_list = ("number", "company", "contact", "subject", "date", "valid_until", "status",
                           "net_total", "vat_total", "gross_total", "decided_by", "decided_at",
                           "decision_comment", "notes")

    def check_editable(self, model: Quote) -> None:
        # The customer's decision is final: the quote and its lines are what they decided on.
        stored = Quote.select(Quote.status).where(Quote.id == model.id).scalar()
        if stored in DECIDED_STATUSES:
            raise WriteRefused(_("This quote has been accepted or rejected by the customer: it can no longer "
                                 "be changed."))

    def after_model_change(self, form: Any, model: Quote, is_created: bool) -> None:
        # Lines and totals are saved in the base view's one transaction with the quote.
        model.recompute_totals()
        super().after_model_change(form, model, is_created)


def views(module: Any) -> list[QuoteAdmin]:
    """The admin views of the quotes module."""
    return [QuoteAdmin(Quote, name=_l("Quotes"), category=_l("Quotes"), endpoint="quotes_quote")]
