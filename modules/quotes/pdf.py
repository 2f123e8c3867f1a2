"""The PDF of a quote, drawn with fpdf2 (pure Python) in the reader's language.

fpdf2's built-in Helvetica covers Latin-1: every Italian and English letter. Characters outside it
(emoji, other scripts) in staff-typed text are replaced with "?" rather than failing.
"""
from __future__ import annotations

from decimal import Decimal

from flask_babel import format_date, format_decimal
from flask_babel import gettext as _
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from .models import STATUS_LABELS, Quote, QuoteLine


def _t(value) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\u20ac", "EUR").replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", "-")
    return text.encode("latin-1", "replace").decode("latin-1")


def _money(value: Decimal) -> str:
    return format_decimal(value, format="#,##0.00")


def _number(value: Decimal) -> str:
    return format_decimal(value, format="#,##0.###")


class QuotePDF(FPDF):
    """A4 pages with the quote's number and the page number in the footer."""

    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.footer_text = footer_text
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(15, 15, 15)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.set_text_color(110)
        self.cell(0, 5, _t(f"{self.footer_text} - {self.page_no()}/{{nb}}"), align="C")


def render_quote_pdf(quote: Quote, lines: list[QuoteLine], portal_name: str) -> bytes:
    """The PDF of ``quote`` with ``lines``, authored by ``portal_name``, in the current language."""
    pdf = QuotePDF(_("Quote %(number)s", number=quote.number))
    pdf.alias_nb_pages()
    pdf.set_title(_t(_("Quote %(number)s", number=quote.number)))
    pdf.set_author(_t(portal_name))
    pdf.add_page()

    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, _t(_("Quote %(number)s", number=quote.number)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=10)
    pdf.cell(0, 6, _t(quote.subject), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)

    company = quote.company
    rows = [
        (_("Customer"), company.name),
        (_("VAT number"), company.vat_number or ""),
        (_("Date"), format_date(quote.date, "medium")),
        (_("Valid until"), format_date(quote.valid_until, "medium")),
        (_("Status"), str(STATUS_LABELS[quote.effective_status()])),
    ]
    if quote.decided_at and quote.decided_by:
        rows.append((_("Decided by"), f"{quote.decided_by.full_name}"))
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(40, 5.5, _t(label))
        pdf.set_font("Helvetica", size=9)
        pdf.cell(0, 5.5, _t(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    widths = (68, 18, 26, 18, 16, 34)
    headers = (_("Description"), _("Qty"), _("Unit price"), _("Discount"), _("VAT rate"), _("Net amount"))
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_fill_color(235, 238, 242)
    for width, header in zip(widths, headers, strict=True):
        pdf.cell(width, 7, _t(header), border=1, fill=True, align="L" if width == widths[0] else "R")
    pdf.ln()
    pdf.set_font("Helvetica", size=9)
    for line in lines:
        text = line.description if not line.product_code else f"[{line.product_code}] {line.description}"
        values = (text, _number(line.quantity), _money(line.unit_price), _number(line.discount) + "%",
                  _number(line.vat_rate) + "%", _money(line.net_amount))
        text = _t(values[0])
        row_h = 6 * max(1, len(pdf.multi_cell(widths[0], 6, text, dry_run=True, output="LINES")))
        if pdf.will_page_break(row_h):
            pdf.add_page()
        x, y = pdf.get_x(), pdf.get_y()
        pdf.multi_cell(widths[0], 6, text, border=1, new_x=XPos.RIGHT, new_y=YPos.TOP)
        pdf.set_xy(x + widths[0], y)
        for width, value in zip(widths[1:], values[1:], strict=True):
            pdf.cell(width, row_h, _t(value), border=1, align="R")
        pdf.set_xy(x, y + row_h)
    pdf.ln(3)

    totals = ((_("Net total"), quote.net_total), (_("VAT"), quote.vat_total),
              (_("Total"), quote.gross_total))
    for label, value in totals:
        bold = label == totals[-1][0]
        pdf.set_font("Helvetica", "B" if bold else "", 10)
        pdf.cell(sum(widths[:-1]), 6.5, _t(label), align="R")
        pdf.cell(widths[-1], 6.5, _t(f"{quote.currency} {_money(value)}"), align="R",
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if quote.notes:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(0, 5, _t(_("Notes")), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", size=9)
        pdf.multi_cell(0, 5, _t(quote.notes))
    return bytes(pdf.output())
