"""Quotes: exact totals, decisions (and their refusals), printable page, PDF, admin, list cost."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from conftest import login, staff_login

from crm_portal.db import db
from crm_portal.models import AuditEntry, OutboxMessage
from crm_portal.modules.quotes.models import Quote, QuoteLine, money


def _quote(number: str):
    return Quote.get(Quote.number == number)


def _make_quote(company, contact, number="T-1", status="sent", valid_days=10, lines=()):
    today = dt.date.today()
    quote = Quote.create(number=number, company=company, contact=contact, subject=f"Subject {number}",
                         date=today, valid_until=today + dt.timedelta(days=valid_days), status=status)
    for position, (qty, price, discount, vat) in enumerate(lines):
        QuoteLine.create(quote=quote, position=position, description=f"line {position}", quantity=Decimal(qty),
                         unit_price=Decimal(price), discount=Decimal(discount), vat_rate=Decimal(vat))
    quote.recompute_totals()
    return quote


# --- arithmetic ------------------------------------------------------------------------------

def test_money_rounds_half_up():
    assert money(Decimal("0.005")) == Decimal("0.01")
    assert money(Decimal("0.015")) == Decimal("0.02")  # banker's rounding would give 0.02 too
    assert money(Decimal("0.025")) == Decimal("0.03")  # ... but 0.02 here
    assert money(Decimal("2.675")) == Decimal("2.68")  # the float 2.675 would round to 2.67


def test_awkward_decimals_exact_totals(app, demo):
    with app.app_context(), db.connection_context():
        acme = demo["companies"]["acme"]
        quote = _make_quote(acme, demo["contacts"]["bruno"], lines=[
            ("3", "0.335", "0", "22"),      # 1.005 -> 1.01 ; VAT 0.2222 -> 0.22
            ("1", "19.99", "12.5", "22"),   # 17.49125 -> 17.49 ; VAT 3.8478 -> 3.85
            ("0.333", "10", "0", "10"),     # 3.33 ; VAT 0.333 -> 0.33
            ("7", "0.1", "0", "4"),         # 0.7 (0.1*7 is 0.7000000000000001 in floats) ; VAT 0.028 -> 0.03
            ("1", "0.125", "0", "22"),      # 0.125 -> 0.13 (half up) ; VAT 0.0286 -> 0.03
        ])
        quote = Quote.get_by_id(quote.id)
        nets = [line.net_amount for line in quote.ordered_lines()]
        assert nets == [Decimal("1.01"), Decimal("17.49"), Decimal("3.33"), Decimal("0.70"), Decimal("0.13")]
        vats = [line.vat_amount for line in quote.ordered_lines()]
        assert vats == [Decimal("0.22"), Decimal("3.85"), Decimal("0.33"), Decimal("0.03"), Decimal("0.03")]
        assert quote.net_total == Decimal("22.66")
        assert quote.vat_total == Decimal("4.46")
        assert quote.gross_total == Decimal("27.12")
        assert isinstance(quote.gross_total, Decimal)


def test_detail_shows_lines_and_totals(app, demo, client):
    with app.app_context(), db.connection_context():
        quote = _make_quote(demo["companies"]["acme"], demo["contacts"]["bruno"],
                            lines=[("2", "1234.565", "0", "22")])
    login(client, "bruno@acme.example")
    page = client.get(f"/quotes/{quote.id}")
    assert page.status_code == 200
    # As in the emails and the PDF: the reader's currency format.
    assert 'data-total="net">2.469,13\xa0€' in page.text
    assert 'data-total="vat">543,21\xa0€' in page.text
    assert 'data-total="gross">3.012,34\xa0€' in page.text


# --- visibility ------------------------------------------------------------------------------

def test_drafts_never_reach_customers(app, demo, client):
    with app.app_context(), db.connection_context():
        draft = _quote("P-2025-005")
        assert draft.status == "draft"
    login(client, "anna@acme.example")
    assert client.get(f"/quotes/{draft.id}").status_code == 404
    assert client.get(f"/quotes/{draft.id}/pdf").status_code == 404
    assert client.post(f"/quotes/{draft.id}/accept").status_code == 404
    assert "P-2025-005" not in client.get("/quotes/?per_page=100").text
    assert "P-2025-005" not in client.get("/quotes/export.csv").text
    assert "P-2025-001" in client.get("/quotes/export.csv").text


def test_list_query_count_is_constant(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/quotes/?per_page=100")  # the first request fills the process's caches (profiles)
    with queries:
        assert client.get("/quotes/?per_page=100").status_code == 200
    few = queries.count
    with app.app_context(), db.connection_context():
        for n in range(40):
            _make_quote(demo["companies"]["acme"], demo["contacts"]["anna" if n % 2 else "bruno"],
                        number=f"X-{n}", lines=[("1", "10", "0", "22")])
    with queries:
        page = client.get("/quotes/?per_page=100")
    assert page.status_code == 200 and "X-39" in page.text and "Bianchi" in page.text
    assert queries.count == few


def test_list_search_and_sort(app, demo, client):
    login(client, "anna@acme.example")
    page = client.get("/quotes/?q=firewall")
    assert "P-2025-002" in page.text and "P-2025-001" not in page.text
    page = client.get("/quotes/?s_contact=bianchi")
    assert "P-2025-001" in page.text and "P-2025-002" not in page.text
    page = client.get("/quotes/?sort=gross_total&dir=desc")
    assert page.text.index("P-2025-002") < page.text.index("P-2025-003")


def test_expired_status_is_computed_from_date(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        old = _quote("P-2025-004")
        assert old.status == "sent" and old.is_expired()
    page = client.get(f"/quotes/{old.id}")
    assert "Scaduto" in page.text  # bruno reads Italian
    assert 'data-testid="decision-form"' not in page.text


# --- decisions -------------------------------------------------------------------------------

def test_accept_records_who_when_and_notifies_staff(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        quote = _quote("P-2025-001")
        before_outbox = OutboxMessage.select().count()
    response = client.post(f"/quotes/{quote.id}/accept", data={"comment": "Va bene <b>così</b>", "confirm": "1"})
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert "Preventivo accettato" in page.text
    assert "Va bene &lt;b&gt;così&lt;/b&gt;" in page.text
    with app.app_context(), db.connection_context():
        quote = Quote.get_by_id(quote.id)
        assert quote.status == "accepted"
        assert quote.decided_by_id == demo["contacts"]["bruno"].id
        assert quote.decided_at is not None
        assert quote.decision_comment == "Va bene <b>così</b>"
        assert OutboxMessage.select().count() == before_outbox + 1
        mail = OutboxMessage.select().order_by(OutboxMessage.id.desc()).first()
        assert mail.to_address == app.config["SUPPORT_EMAIL"]
        assert mail.template == "quotes_decided"
        assert "P-2025-001" in mail.subject and "Acme" in mail.subject
        assert "Bruno Bianchi" in mail.body_text and "Va bene <b>così</b>" in mail.body_text
        assert "Va bene &lt;b&gt;così&lt;/b&gt;" in mail.body_html
        assert "/admin/" in mail.body_text
        assert AuditEntry.select().where(AuditEntry.action == "quote-accepted",
                                         AuditEntry.object_id == str(quote.id)).count() == 1


def test_accept_twice_is_refused(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        quote = _quote("P-2025-001")
    assert client.post(f"/quotes/{quote.id}/accept", data={"confirm": "1"}).status_code == 302
    with app.app_context(), db.connection_context():
        decided_at = Quote.get_by_id(quote.id).decided_at
        outbox = OutboxMessage.select().count()
    again = client.post(f"/quotes/{quote.id}/reject", data={"comment": "changed my mind", "confirm": "1"})
    assert again.status_code == 409
    assert "già stato accettato" in again.text
    with app.app_context(), db.connection_context():
        quote = Quote.get_by_id(quote.id)
        assert quote.status == "accepted" and quote.decided_at == decided_at
        assert quote.decision_comment is None
        assert OutboxMessage.select().count() == outbox


def test_expired_quote_cannot_be_accepted(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        quote = _quote("P-2025-004")  # stored as "sent", valid_until in the past
    for data in ({}, {"confirm": "1"}):  # refused at the confirmation step and at the decision
        response = client.post(f"/quotes/{quote.id}/accept", data=data)
        assert response.status_code == 409
        assert "è scaduto il" in response.text
    with app.app_context(), db.connection_context():
        assert Quote.get_by_id(quote.id).status == "sent"
        assert Quote.get_by_id(quote.id).decided_at is None


def test_valid_until_today_is_still_acceptable(app, demo, client):
    with app.app_context(), db.connection_context():
        quote = _make_quote(demo["companies"]["acme"], demo["contacts"]["bruno"], valid_days=0)
    login(client, "bruno@acme.example")
    assert client.post(f"/quotes/{quote.id}/reject", data={"comment": "troppo caro", "confirm": "1"}).status_code == 302
    with app.app_context(), db.connection_context():
        quote = Quote.get_by_id(quote.id)
        assert quote.status == "rejected" and quote.decision_comment == "troppo caro"


def test_out_of_scope_decision_is_404(app, demo, client):
    login(client, "bruno@acme.example")  # own scope: anna's quote is out of reach
    with app.app_context(), db.connection_context():
        annas = _quote("P-2025-002")
        globex = _quote("P-2025-010")
    for quote in (annas, globex):
        assert client.post(f"/quotes/{quote.id}/accept").status_code == 404
        assert client.post(f"/quotes/{quote.id}/accept", data={"confirm": "1"}).status_code == 404
    with app.app_context(), db.connection_context():
        assert _quote("P-2025-002").status == "sent" and _quote("P-2025-010").status == "sent"


def test_accept_needs_the_action(app, demo, client):
    from crm_portal.models import Contact, ProfileModule

    with app.app_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        (ProfileModule.update(actions="view").where((ProfileModule.profile == bruno.profile_id)
                                                   & (ProfileModule.module == "quotes")).execute())
        quote = _quote("P-2025-001")
    login(client, "bruno@acme.example")
    page = client.get(f"/quotes/{quote.id}")
    assert page.status_code == 200 and 'data-testid="decision-form"' not in page.text
    assert client.post(f"/quotes/{quote.id}/accept").status_code == 403
    assert client.post(f"/quotes/{quote.id}/accept", data={"confirm": "1"}).status_code == 403
    with app.app_context(), db.connection_context():
        assert _quote("P-2025-001").status == "sent"


def test_too_long_comment_rerenders_with_error(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        quote = _quote("P-2025-001")
    response = client.post(f"/quotes/{quote.id}/accept", data={"comment": "x" * 2001, "confirm": "1"})
    assert response.status_code == 400
    assert "invalid-feedback" in response.text
    with app.app_context(), db.connection_context():
        assert _quote("P-2025-001").status == "sent"


def test_italian_pages(app, demo, client):
    login(client, "anna@acme.example")  # anna's language is Italian
    page = client.get("/quotes/")
    assert "Preventivi" in page.text and "Valido fino al" in page.text


# --- print and PDF ---------------------------------------------------------------------------

def test_printable_page_and_pdf(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        quote = _quote("P-2025-001")
    page = client.get(f"/quotes/{quote.id}/print")
    assert page.status_code == 200
    assert "Rinnovo licenze gestionale" in page.text and "data-print" in page.text
    pdf = client.get(f"/quotes/{quote.id}/pdf")
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF-")
    assert 'filename="quote-P-2025-001.pdf"' in pdf.headers["Content-Disposition"]
    assert len(pdf.data) > 1000


def test_pdf_survives_unusual_characters(app, demo, client):
    with app.app_context(), db.connection_context():
        quote = _make_quote(demo["companies"]["acme"], demo["contacts"]["bruno"], number="Q/€ 1",
                            lines=[("1", "10", "0", "22")])
        QuoteLine.create(quote=quote, description="Emoji 🚀 and € and 中文 " + "long text " * 40,
                         quantity=1, unit_price=Decimal("1"), discount=0, vat_rate=22)
    login(client, "bruno@acme.example")
    pdf = client.get(f"/quotes/{quote.id}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    assert 'filename="quote-Q___1.pdf"' in pdf.headers["Content-Disposition"]


# --- admin -----------------------------------------------------------------------------------

def test_admin_crud_recomputes_totals(app, demo, client):
    staff_login(client)
    assert client.get("/admin/quotes_quote/").status_code == 200
    acme = demo["companies"]["acme"]
    today = dt.date.today()
    form = {
        "number": "ADM-1", "company": str(acme.id), "contact": "__None", "subject": "From the admin",
        "date": today.isoformat(), "valid_until": (today + dt.timedelta(days=30)).isoformat(),
        "status": "sent", "currency": "EUR", "notes": "",
        "lines-0-position": "0", "lines-0-product_code": "", "lines-0-description": "Work",
        "lines-0-quantity": "1.5", "lines-0-unit_price": "33.333", "lines-0-discount": "0",
        "lines-0-vat_rate": "22",
    }
    response = client.post("/admin/quotes_quote/new/", data=form)
    assert response.status_code == 302, response.text[:2000]
    with app.app_context(), db.connection_context():
        quote = _quote("ADM-1")
        assert quote.net_total == Decimal("50.00")  # 49.9995 -> 50.00
        assert quote.vat_total == Decimal("11.00")
        assert quote.gross_total == Decimal("61.00")
    form.update({"subject": "Edited", "lines-0-id": "", "lines-0-quantity": "2"})
    with app.app_context(), db.connection_context():
        line_id = QuoteLine.get(QuoteLine.quote == quote.id).id
    form["lines-0-id"] = str(line_id)
    response = client.post(f"/admin/quotes_quote/edit/?id={quote.id}", data=form)
    assert response.status_code == 302, response.text[:2000]
    with app.app_context(), db.connection_context():
        quote = Quote.get_by_id(quote.id)
        assert quote.subject == "Edited" and quote.net_total == Decimal("66.67")
    assert client.get(f"/admin/quotes_quote/details/?id={quote.id}").status_code == 200
    response = client.post("/admin/quotes_quote/delete/", data={"id": str(quote.id)})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        assert Quote.get_or_none(Quote.number == "ADM-1") is None


def test_admin_is_not_for_customers(app, demo, client):
    login(client, "anna@acme.example")
    assert client.get("/admin/quotes_quote/").status_code == 404


@pytest.mark.parametrize("email", ["carla@globex.example"])
def test_company_scope_sees_only_own_company(app, demo, client, email):
    login(client, email)
    text = client.get("/quotes/?per_page=100").text
    assert "P-2025-010" in text and "P-2025-001" not in text


def test_valid_until_badges(app, demo, client):
    login(client, "anna@acme.example")
    page = client.get("/quotes/?per_page=100")
    assert page.text.count("badge text-bg-secondary") >= 2  # P-2025-003 and P-2025-004 are past their date


def test_pdf_download_header_is_the_shared_one(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        quote = _quote("P-2025-001")
    header = client.get(f"/quotes/{quote.id}/pdf").headers["Content-Disposition"]
    assert header == "attachment; filename=\"quote-P-2025-001.pdf\"; filename*=UTF-8''quote-P-2025-001.pdf"


def test_detail_and_print_pages_query_a_fixed_number_of_times(app, demo, client, queries):
    """The pages get their lines, customer and decider from the view, never from the template."""
    login(client, "anna@acme.example")
    with app.app_context(), db.connection_context():
        quote = _quote("P-2025-003")  # accepted: the decider is shown
    counts = {}
    for url in (f"/quotes/{quote.id}", f"/quotes/{quote.id}/print"):
        client.get(url)  # the first request fills the process's caches (profiles, workflow)
        with queries:
            page = client.get(url)
        assert page.status_code == 200 and "Backup in cloud 1 TB" in page.text
        counts[url] = queries.count
    with app.app_context(), db.connection_context():
        for n in range(10):
            QuoteLine.create(quote=quote, position=10 + n, description=f"extra {n}", quantity=1,
                             unit_price=Decimal("1"), discount=0, vat_rate=22)
    for url, count in counts.items():
        with queries:
            page = client.get(url)
        assert "extra 9" in page.text and queries.count == count


# --- confirmation ----------------------------------------------------------------------------

def test_a_decision_asks_for_confirmation_first(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        quote = _quote("P-2025-001")
        before = OutboxMessage.select().count()
    step = client.post(f"/quotes/{quote.id}/reject", data={"comment": "Troppo <caro>"})
    assert step.status_code == 200 and 'data-testid="decision-confirm"' in step.text
    assert "Rifiutare il preventivo P-2025-001?" in step.text and "Troppo &lt;caro&gt;" in step.text
    assert re.search(r'name="comment" value="Troppo &lt;caro&gt;"', step.text)
    assert 'name="confirm" value="1"' in step.text and 'name="csrf_token"' in step.text
    with app.app_context(), db.connection_context():
        assert _quote("P-2025-001").status == "sent" and OutboxMessage.select().count() == before
    # The confirmation's own form decides (no JavaScript involved).
    token = re.search(r'name="csrf_token" value="([^"]+)"', step.text).group(1)
    done = client.post(f"/quotes/{quote.id}/reject", data={"csrf_token": token, "comment": "Troppo <caro>",
                                                          "confirm": "1"}, csrf=False)
    assert done.status_code == 302
    with app.app_context(), db.connection_context():
        decided = _quote("P-2025-001")
        assert decided.status == "rejected" and decided.decision_comment == "Troppo <caro>"


def test_the_confirmation_needs_the_csrf_token(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        quote = _quote("P-2025-001")
    assert client.post(f"/quotes/{quote.id}/accept", data={"confirm": "1"}, csrf=False).status_code == 400
    assert client.post(f"/quotes/{quote.id}/accept", csrf=False).status_code == 400
    with app.app_context(), db.connection_context():
        assert _quote("P-2025-001").status == "sent"
