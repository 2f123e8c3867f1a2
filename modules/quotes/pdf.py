"""The PDF of a quote, drawn with fpdf2 (pure Python) in the reader's language.

The text is set in DejaVu Sans, shipped in ``fonts/`` with its licence (a free licence: the
Bitstream Vera terms, DejaVu's changes in the public domain): every letter and sign a customer or
an operator may type (Łódź, –, €, …) prints as typed; fpdf2 embeds only the glyphs used.

The lines table never overlaps: each numeric column is as wide as its widest value or heading
word, the description takes the rest, and any cell too long for its column (a long description,
a long heading such as "Aliquota IVA") wraps onto more lines of the same row.
"""
from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from flask_babel import format_date, format_decimal
from flask_babel import gettext as _
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from crm_portal.api import format_money

from .models import STATUS_LABELS, Quote, QuoteLine

FONTS = Path(__file__).parent / "fonts"
FONT = "DejaVuSans"
#: Line height of the table (mm), inner padding of its cells (mm) and the narrowest description.
LINE_H, PAD, MIN_DESCRIPTION = 5.0, 1.2, 50.0


def _number(value: Decimal) -> str:
    return format_decimal(value, format="#,##0.###")


def _plain(value: object) -> str:
    """Text for the PDF: control characters (but line breaks) would print as boxes."""
    text = "" if value is None else str(value)
    return "".join(ch for ch in text if ch in "\n\t" or ch >= " ")


class QuotePDF(FPDF):
    """A4 pages with the quote's number and the page number in the footer, in DejaVu Sans."""

    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.footer_text = footer_text
        self.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        self.covered = frozenset.intersection(*(frozenset(getattr(font, "cmap", ())) for font in self.fonts.values()))
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(15, 15, 15)

    def printable(self, value: object) -> str:
        """:func:`_plain`, with the rare characters the font has no glyph for (emoji, Chinese …)
        replaced by "?" instead of an invisible box."""
        return "".join(ch if ch in "\n\t" or ord(ch) in self.covered else "?" for ch in _plain(value))

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.set_text_color(110)
        self.cell(0, 5, _plain(f"{self.footer_text} – {self.page_no()}/{{nb}}"), align="C")


def column_widths(pdf: FPDF, headers: Sequence[str], rows: Sequence[Sequence[str]], total: float) -> list[float]:
    """Widths (mm) of the lines table: every column but the first fits its widest value and the
    longest word of its heading (the heading wraps between words); the first takes what is left,
    at least ``MIN_DESCRIPTION``. Numeric columns shrink evenly if they would not leave that."""
    widths = []
    for index, header in enumerate(headers[1:], start=1):
        pdf.set_font(FONT, "B", 9)
        word = max(pdf.get_string_width(w) for w in header.split() or [""])
        pdf.set_font(FONT, "", 9)
        value = max((pdf.get_string_width(row[index]) for row in rows), default=0.0)
        # multi_cell keeps its own margin (c_margin) inside the width it is given.
        widths.append(max(word, value) + 2 * (PAD + pdf.c_margin) + 0.5)
    room = total - MIN_DESCRIPTION
    if sum(widths) > room:
        widths = [w * room / sum(widths) for w in widths]
    return [total - sum(widths), *widths]


def _row(pdf: FPDF, widths: Sequence[float], texts: Sequence[str], *, bold: bool = False,
         fill: bool = False) -> None:
    """One table row: every cell wraps within its width, the row is as tall as its tallest cell
    and moves to a new page whole."""
    pdf.set_font(FONT, "B" if bold else "", 9)
    lines: list[list[str]] = [list(pdf.multi_cell(w - 2 * PAD, LINE_H, t, dry_run=True, output="LINES"))  # type: ignore[arg-type]
                              or [""] for w, t in zip(widths, texts, strict=True)]
    height = LINE_H * max(len(cell) for cell in lines) + 2 * PAD
    if pdf.will_page_break(height):
        pdf.add_page()
        pdf.set_font(FONT, "B" if bold else "", 9)
    x0, y0 = pdf.get_x(), pdf.get_y()
    x = x0
    for index, (width, cell_lines) in enumerate(zip(widths, lines, strict=True)):
        pdf.rect(x, y0, width, height, style="DF" if fill else "D")
        pdf.set_xy(x + PAD, y0 + PAD)
        pdf.multi_cell(width - 2 * PAD, LINE_H, "\n".join(cell_lines), align="L" if index == 0 else "R",
                       new_x=XPos.RIGHT, new_y=YPos.TOP)
        x += width
    pdf.set_xy(x0, y0 + height)


def render_quote_pdf(quote: Quote, lines: list[QuoteLine], portal_name: str) -> bytes:
    """The PDF of ``quote`` with ``lines``, authored by ``portal_name``, in the current language."""
    title = _("Quote %(number)s", number=quote.number)
    pdf = QuotePDF(title)
    pdf.alias_nb_pages()
    pdf.set_title(_plain(title))
    pdf.set_author(_plain(portal_name))
    pdf.add_page()
    width = pdf.epw

    pdf.set_font(FONT, "B", 16)
    pdf.multi_cell(width, 9, pdf.printable(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=10)
    pdf.multi_cell(width, 6, pdf.printable(quote.subject), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)

    company = quote.company
    facts = [
        (_("Customer"), company.name),
        (_("VAT number"), company.vat_number or ""),
        (_("Date"), format_date(quote.date, "medium")),
        (_("Valid until"), format_date(quote.valid_until, "medium")),
        (_("Status"), str(STATUS_LABELS[quote.effective_status()])),
    ]
    if quote.decided_at and quote.decided_by:
        facts.append((_("Decided by"), quote.decided_by.full_name))
    for label, value in facts:
        pdf.set_font(FONT, "B", 9)
        pdf.cell(40, 5.5, _plain(label))
        pdf.set_font(FONT, size=9)
        pdf.multi_cell(width - 40, 5.5, pdf.printable(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    headers = [_("Description"), _("Qty"), _("Unit price"), _("Discount"), _("VAT rate"), _("Net amount")]
    rows = [[pdf.printable(line.description if not line.product_code else f"[{line.product_code}] {line.description}"),
             _number(line.quantity), format_money(line.unit_price, quote.currency), _number(line.discount) + "%",
             _number(line.vat_rate) + "%", format_money(line.net_amount, quote.currency)] for line in lines]
    totals = [(_("Net total"), format_money(quote.net_total, quote.currency)),
              (_("VAT"), format_money(quote.vat_total, quote.currency)),
              (_("Total"), format_money(quote.gross_total, quote.currency))]
    widths = column_widths(pdf, headers, rows, width)
    pdf.set_font(FONT, "B", 10)
    widest_total = max(pdf.get_string_width(amount) for _label, amount in totals) + 2 * (PAD + pdf.c_margin)
    if widest_total > widths[-1]:  # the totals are bold and larger: the description gives way
        widths[0] -= widest_total - widths[-1]
        widths[-1] = widest_total
    pdf.set_fill_color(235, 238, 242)
    pdf.set_draw_color(160)
    _row(pdf, widths, headers, bold=True, fill=True)
    for row in rows:
        _row(pdf, widths, row)
    pdf.ln(3)

    for label, amount in totals:
        bold = label == totals[-1][0]
        pdf.set_font(FONT, "B" if bold else "", 10)
        pdf.cell(sum(widths[:-1]), 6.5, _plain(label), align="R")
        pdf.cell(widths[-1], 6.5, amount, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if quote.notes:
        pdf.ln(4)
        pdf.set_font(FONT, "B", 9)
        pdf.cell(0, 5, _plain(_("Notes")), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FONT, size=9)
        pdf.multi_cell(0, 5, pdf.printable(quote.notes))
    return bytes(pdf.output())
