"""Quotes and their lines, with exact decimal totals.

Arithmetic (documented rule, used by the portal, the PDF and the admin alike):

- a line's net amount is ``quantity × unit price × (1 − discount% / 100)``, computed exactly with
  :class:`decimal.Decimal` and rounded **once** to the cent with ``ROUND_HALF_UP``;
- its VAT is ``net × VAT rate% / 100``, rounded to the cent with ``ROUND_HALF_UP``;
- the quote's net, VAT and gross totals are the sums of the rounded line amounts
  (gross = net + VAT), so the printed lines always add up to the printed totals.

The totals are stored on the quote (recomputed whenever lines change) so that list pages and
exports read them without touching the lines.
"""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import peewee as pw

from crm_portal.api import BaseModel, Company, Contact, _l, utcnow

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal("0.00")

STATUSES = ("draft", "sent", "accepted", "rejected", "expired")
STATUS_LABELS = {
    "draft": _l("Draft"),
    "sent": _l("Awaiting decision"),
    "accepted": _l("Accepted"),
    "rejected": _l("Rejected"),
    "expired": _l("Expired"),
}
#: What customers may see: drafts never reach them.
CUSTOMER_STATUSES = ("sent", "accepted", "rejected", "expired")
#: States after the customer's decision: the admin no longer edits such a quote.
DECIDED_STATUSES = ("accepted", "rejected")


def money(value: Decimal) -> Decimal:
    """Round to the cent, half up (0.005 → 0.01)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def _d(value) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


class Quote(BaseModel):
    number = pw.CharField(max_length=40, unique=True)
    company = pw.ForeignKeyField(Company, backref="quotes", on_delete="CASCADE", index=True)
    #: The contact the quote is addressed to (own scope); empty for the company as a whole.
    contact = pw.ForeignKeyField(Contact, backref="quotes", null=True, on_delete="SET NULL", index=True)
    subject = pw.CharField(max_length=200)
    date = pw.DateField(default=dt.date.today, index=True)
    valid_until = pw.DateField(index=True)
    status = pw.CharField(max_length=16, default="draft", index=True,
                          choices=[(s, s) for s in STATUSES])
    currency = pw.CharField(max_length=3, default="EUR")
    notes = pw.TextField(null=True)
    net_total = pw.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    vat_total = pw.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    gross_total = pw.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    decided_by = pw.ForeignKeyField(Contact, null=True, on_delete="SET NULL", backref="decided_quotes")
    decided_at = pw.DateTimeField(null=True)
    decision_comment = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "quotes_quote"

    def __str__(self) -> str:
        return self.number or f"Quote #{self.get_id()}"

    # --- state ----------------------------------------------------------------------------
    def is_expired(self, today: dt.date | None = None) -> bool:
        """Expired by date (``valid_until`` before today) whatever the stored status says."""
        today = today or dt.date.today()
        return self.status == "expired" or (self.status == "sent" and self.valid_until < today)

    def effective_status(self, today: dt.date | None = None) -> str:
        """The status customers see: ``expired`` once past ``valid_until``."""
        return "expired" if self.is_expired(today) else self.status

    # --- totals ---------------------------------------------------------------------------
    def ordered_lines(self) -> list[QuoteLine]:
        """The lines in their printed order (one query)."""
        return list(self.lines.order_by(QuoteLine.position, QuoteLine.id))

    def compute_totals(self) -> tuple[Decimal, Decimal, Decimal]:
        """Net, VAT and gross totals of the stored lines (the rule in this file's docstring)."""
        lines = self.ordered_lines()
        net = sum((line.net_amount for line in lines), ZERO)
        vat = sum((line.vat_amount for line in lines), ZERO)
        return money(net), money(vat), money(net + vat)

    def recompute_totals(self) -> None:
        """Store the totals of the current lines."""
        self.net_total, self.vat_total, self.gross_total = self.compute_totals()
        Quote.update(net_total=self.net_total, vat_total=self.vat_total,
                     gross_total=self.gross_total).where(Quote.id == self.id).execute()


class QuoteLine(BaseModel):
    quote = pw.ForeignKeyField(Quote, backref="lines", on_delete="CASCADE", index=True)
    position = pw.IntegerField(default=0)
    #: A product code (free text: quotes do not depend on the products module) and/or a description.
    product_code = pw.CharField(max_length=64, null=True)
    description = pw.CharField(max_length=500)
    quantity = pw.DecimalField(max_digits=14, decimal_places=3, default=Decimal(1))
    unit_price = pw.DecimalField(max_digits=14, decimal_places=4, default=ZERO)
    discount = pw.DecimalField(max_digits=5, decimal_places=2, default=ZERO)  # percent
    vat_rate = pw.DecimalField(max_digits=5, decimal_places=2, default=Decimal(22))  # percent

    class Meta:
        table_name = "quotes_quote_line"

    def __str__(self) -> str:
        return self.description or self.product_code or f"Line #{self.get_id()}"

    @property
    def net_amount(self) -> Decimal:
        gross = _d(self.quantity) * _d(self.unit_price)
        return money(gross * (HUNDRED - _d(self.discount)) / HUNDRED)

    @property
    def vat_amount(self) -> Decimal:
        return money(self.net_amount * _d(self.vat_rate) / HUNDRED)
