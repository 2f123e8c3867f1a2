"""The quote PDF: every Unicode letter and sign prints as typed (the shipped DejaVu Sans), the
lines table never overlaps, and long text wraps. Checked by reading the PDF's text back (pypdf)
and the positions of its words (pdftotext's bounding boxes, where poppler-utils is installed)."""
from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import login
from pypdf import PdfReader

from crm_portal.db import db
from crm_portal.modules.quotes.models import Quote, QuoteLine

FONTS = Path(__file__).resolve().parent.parent / "modules" / "quotes" / "fonts"


def _quote(demo, number: str = "U-1") -> Quote:
    today = dt.date.today()
    quote = Quote.create(number=number, company=demo["companies"]["acme"], contact=demo["contacts"]["bruno"],
                         subject="Łódź – 100 €", date=today, valid_until=today + dt.timedelta(days=10),
                         status="sent", notes="Consegna a Łódź – entro il 30.")
    QuoteLine.create(quote=quote, position=0, product_code="ŁDZ-1", description="Łódź – 100 €",
                     quantity=Decimal("1234.5"), unit_price=Decimal("2189.3375"), discount=Decimal("12.5"),
                     vat_rate=Decimal("22"))
    QuoteLine.create(quote=quote, position=1, description="Assistenza sistemistica " * 12 + "🚀",
                     quantity=Decimal("1"), unit_price=Decimal("99.9"), discount=Decimal("0"), vat_rate=Decimal("10"))
    quote.recompute_totals()
    return quote


def _pdf(app, demo, client, language: str = "it") -> bytes:
    with app.app_context(), db.connection_context():
        quote = _quote(demo)
        from crm_portal.models import Contact

        Contact.update(language=language).where(Contact.email == "bruno@acme.example").execute()
    login(client, "bruno@acme.example")
    response = client.get(f"/quotes/{quote.id}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return response.data


def test_the_pdf_prints_unicode_as_typed(app, demo, client):
    data = _pdf(app, demo, client)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    assert "Łódź – 100 €" in text, text
    assert "EUR" not in text and "?ód?" not in text
    assert "Consegna a Łódź – entro il 30." in text
    assert "Sconto" in text and "Aliquota" in text and "IVA" in text
    # Amounts in the reader's format, as on the page.
    assert re.search(r"\d{1,3}(\.\d{3})+,\d{2}\s€", text), text
    # A character the font lacks is a visible "?", not an invisible box.
    assert "Assistenza sistemistica" in text and "?" in text


def test_the_font_and_its_licence_ship_with_the_package():
    assert (FONTS / "DejaVuSans.ttf").stat().st_size > 100_000
    assert (FONTS / "DejaVuSans-Bold.ttf").stat().st_size > 100_000
    assert "Bitstream" in (FONTS / "LICENSE").read_text()


def _words(data: bytes, tmp_path: Path) -> list[tuple[str, float, float, float, float]]:
    source = tmp_path / "quote.pdf"
    source.write_bytes(data)
    html = subprocess.run(["pdftotext", "-bbox", str(source), "-"], check=True, capture_output=True,
                          text=True).stdout
    found = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', html)
    return [(w, float(a), float(b), float(c), float(d)) for a, b, c, d, w in found]


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (pdftotext)")
@pytest.mark.parametrize("language", ["it", "en"])
def test_no_two_words_of_the_pdf_overlap(app, demo, client, tmp_path, language):
    data = _pdf(app, demo, client, language)
    words = _words(data, tmp_path)
    assert len(words) > 40
    for i, (w1, x1, y1, x2, y2) in enumerate(words):
        for w2, a1, b1, a2, b2 in words[i + 1:]:
            overlap_x = min(x2, a2) - max(x1, a1)
            overlap_y = min(y2, b2) - max(y1, b1)
            assert overlap_x <= 0.5 or overlap_y <= 0.5, f"{w1!r} overlaps {w2!r}"
    # Every word of the table stays inside the page's margins (15 mm = 42.5 pt on 595 pt).
    assert all(x1 >= 40 and x2 <= 555 for _w, x1, _y1, x2, _y2 in words)
