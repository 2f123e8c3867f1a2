"""List exports: CSV that Italian and English Excel open correctly, and .xlsx read back with
openpyxl; both through the scoping gate and the export permission, formulas neutralised."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from conftest import login
from openpyxl import load_workbook

from crm_portal.db import db
from crm_portal.exports import csv_dialect
from crm_portal.models import Contact, ProfileModule
from crm_portal.modules.documents.models import Document
from crm_portal.modules.quotes.models import Quote


def _as(client, app, email: str, language: str):
    with app.app_context(), db.connection_context():
        Contact.update(language=language).where(Contact.email == email).execute()
    login(client, email)
    return client


def _csv_rows(response, language: str) -> list[list[str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.data.startswith("\ufeff".encode()), "no UTF-8 byte-order mark"
    return list(csv.reader(io.StringIO(response.data.decode("utf-8-sig")), dialect=csv_dialect(language)))


@pytest.fixture
def quote(app, demo):
    with app.app_context(), db.connection_context():
        row = Quote.get(Quote.number == "P-2025-001")
        Quote.update(subject='=HYPERLINK("http://evil.example","Łódź – 100 €")').where(Quote.id == row.id).execute()
        return Quote.get_by_id(row.id)


def test_italian_csv_uses_semicolons_decimal_commas_and_local_times(app, demo, client, quote):
    _as(client, app, "anna@acme.example", "it")
    response = client.get("/quotes/export.csv")
    text = response.data.decode("utf-8-sig")
    assert text.splitlines()[0].count(";") >= 5 and "," not in text.splitlines()[0]
    rows = _csv_rows(response, "it")
    header, body = rows[0], rows[1:]
    assert header[:3] == ["Numero", "Oggetto", "Data"]
    line = next(r for r in body if r[0] == "P-2025-001")
    total = header.index("Totale")
    assert line[total] == format(quote.gross_total, "f").replace(".", ","), line
    assert line[header.index("Data")] == quote.date.isoformat()
    # Text Excel would run as a formula starts with a quote; the Unicode text is intact.
    assert line[1] == '\'=HYPERLINK("http://evil.example","Łódź – 100 €")'


def test_english_csv_uses_commas_and_decimal_points(app, demo, client, quote):
    _as(client, app, "anna@acme.example", "en")
    rows = _csv_rows(client.get("/quotes/export.csv"), "en")
    line = next(r for r in rows[1:] if r[0] == "P-2025-001")
    assert line[rows[0].index("Total")] == format(quote.gross_total, "f")


def test_csv_times_are_local_and_to_the_second(app, demo, client):
    with app.app_context(), db.connection_context():
        document = Document.select().where(Document.public == True).order_by(Document.id).first()  # noqa: E712
        # 10:15:30.123456 UTC in July is 12:15:30 in Rome (summer time).
        Document.update(created_at=dt.datetime(2030, 7, 1, 10, 15, 30, 123456), title="Timed").where(
            Document.id == document.id).execute()
    _as(client, app, "anna@acme.example", "it")
    rows = _csv_rows(client.get("/documents/export.csv"), "it")
    line = next(r for r in rows[1:] if r[0] == "Timed")
    assert line[rows[0].index("Data")] == "2030-07-01 12:15:30"


def test_xlsx_export_read_back(app, demo, client, quote):
    _as(client, app, "anna@acme.example", "it")
    response = client.get("/quotes/export.xlsx")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["Content-Disposition"].startswith("attachment") and "quotes.xlsx" in \
        response.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(response.data)).worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["Numero", "Oggetto", "Data"] and sheet["A1"].font.b
    row = next(r for r in sheet.iter_rows(min_row=2) if r[0].value == "P-2025-001")
    subject, date, total = row[1], row[2], row[header.index("Totale")]
    # Stored as text, never as a formula.
    assert subject.data_type == "s" and subject.value == '=HYPERLINK("http://evil.example","Łódź – 100 €")'
    assert isinstance(date.value, dt.datetime) and date.value.date() == quote.date and date.is_date
    assert total.data_type == "n" and Decimal(str(total.value)) == quote.gross_total
    assert total.number_format == "#,##0.00"


def test_exports_need_the_export_permission(app, demo, client):
    _as(client, app, "anna@acme.example", "it")
    with app.app_context(), db.connection_context():
        profile = Contact.get(Contact.email == "anna@acme.example").profile_id
        grant = ProfileModule.get((ProfileModule.profile == profile) & (ProfileModule.module == "quotes"))
        actions = [a for a in re.split(r"[,\s]+", grant.actions or "") if a and a != "export"]
        ProfileModule.update(actions=",".join(actions)).where(ProfileModule.id == grant.id).execute()
    assert client.get("/quotes/export.csv").status_code == 403
    assert client.get("/quotes/export.xlsx").status_code == 403
    assert client.get("/quotes/").status_code == 200


def test_exports_show_only_what_the_gate_lets_through(app, demo, client):
    # carla (Globex) never sees Acme's quotes, in either format.
    _as(client, app, "carla@globex.example", "en")
    csv_text = client.get("/quotes/export.csv")
    xlsx = client.get("/quotes/export.xlsx")
    if csv_text.status_code == 200:
        assert "P-2025-001" not in csv_text.data.decode("utf-8-sig")
        cells = [c for row in load_workbook(io.BytesIO(xlsx.data)).worksheets[0].iter_rows(values_only=True)
                 for c in row]
        assert "P-2025-001" not in cells
    else:
        assert csv_text.status_code == xlsx.status_code == 404


def test_the_ticket_list_offers_both_exports_with_its_filters(app, demo, client):
    _as(client, app, "anna@acme.example", "it")
    page = client.get("/tickets/?state=open&q=stampante").text
    links = dict(re.findall(r'href="([^"]+)" data-testid="(export-csv|export-xlsx)"', page))
    assert set(links.values()) == {"export-csv", "export-xlsx"}
    xlsx = next(url for url, kind in links.items() if kind == "export-xlsx").replace("&amp;", "&")
    assert xlsx.startswith("/tickets/export.xlsx?") and "state=open" in xlsx and "q=stampante" in xlsx
    response = client.get(xlsx)
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).worksheets[0]
    assert sheet.max_row >= 1 and sheet["A1"].value
