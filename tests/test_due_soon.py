"""The dashboard's "due soon" widget: what the user's modules say falls due in the next 30 days
(deadlines, quotes about to expire, a partner module's items), overdue first, each a link to its
record, within the user's scope, in a constant number of queries, translated."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from conftest import login

from crm_portal.api import DueItem, Module
from crm_portal.db import db
from crm_portal.models import Contact, Profile, ProfileModule
from crm_portal.modules.deadlines.models import Deadline
from crm_portal.modules.quotes.models import Quote


def _widget(html: str) -> str:
    start = html.find('data-testid="due-soon"')
    if start < 0:
        return ""
    return html[start:html.index("</section>", start)]


def _titles(widget: str) -> list[str]:
    return re.findall(r'<a class="fw-semibold" href="[^"]+">([^<]+)</a>', widget)


def test_company_scope_sees_the_companys_items_overdue_first(app, demo, client):
    login(client, "anna@acme.example")  # company scope, Acme, Italian
    widget = _widget(client.get("/").text)
    assert "In scadenza nei prossimi 30 giorni" in widget  # translated
    titles = _titles(widget)
    # Deadlines within 30 days and the overdue invoice; quotes awaiting a decision expiring within 30 days.
    assert set(titles) == {"Fattura 2025/118", "Aggiornamento server di posta", "Scadenza licenze gestionale",
                           "Fine supporto firewall FW-200", "Rinnovo licenze gestionale",
                           "Nuovo firewall sede di Milano"}
    assert titles[0] == "Fattura 2025/118" and widget.count('data-overdue="1"') == 1
    assert "Scaduta" in widget and "Scadenza preventivo" in widget and "Scadenza fattura" in widget
    with app.app_context(), db.connection_context():
        deadlines = {d.title: d.due_date for d in Deadline.select()}
        quotes = {q.subject: q.valid_until for q in Quote.select()}
    dates = [deadlines.get(t) or quotes[t] for t in titles]
    assert dates == sorted(dates)
    # Later, done, drafts, expired and other companies' items stay out.
    for absent in ("Rinnovo contratto di assistenza", "Verifica annuale backup", "Bozza: stampanti multifunzione",
                   "Sostituzione PC ufficio paghe", "Rinnovo Microsoft 365", "Consulenza migrazione posta"):
        assert absent not in widget


def test_each_item_links_to_its_record(app, demo, client):
    login(client, "anna@acme.example")
    widget = _widget(client.get("/").text)
    with app.app_context(), db.connection_context():
        invoice = Deadline.get(Deadline.title == "Fattura 2025/118")
        quote = Quote.get(Quote.number == "P-2025-002")
    assert f'href="/deadlines/{invoice.id}">Fattura 2025/118<' in widget
    assert f'href="/quotes/{quote.id}">Nuovo firewall sede di Milano<' in widget
    assert client.get(f"/quotes/{quote.id}").status_code == 200


def test_own_scope_sees_only_the_users_items(app, demo, client):
    login(client, "bruno@acme.example")  # own scope, Acme
    titles = _titles(_widget(client.get("/").text))
    assert set(titles) == {"Aggiornamento server di posta", "Scadenza licenze gestionale", "Rinnovo licenze gestionale"}


def test_the_other_company_sees_its_own(app, demo, client):
    login(client, "carla@globex.example")  # company scope, Globex, English
    widget = _widget(client.get("/").text)
    assert "Due in the next 30 days" in widget
    assert set(_titles(widget)) == {"Rinnovo Microsoft 365", "Consulenza migrazione posta"}
    assert "Contract renewal" in widget and "Quote expiry" in widget


def test_anna_sees_only_what_her_profiles_scope_allows(app, demo, client):
    with app.app_context(), db.connection_context():
        anna = Contact.get(Contact.email == "anna@acme.example")
        profile = Profile.create(name="deadlines-own", label_en="Deadlines, own")
        ProfileModule.create(profile=profile, module="deadlines", scope="own", actions="view")
        Contact.update(profile=profile).where(Contact.id == anna.id).execute()
    login(client, "anna@acme.example")
    titles = _titles(_widget(client.get("/").text))
    # Her own deadlines and the company-wide ones; neither bruno's nor any quote (no quotes module).
    assert set(titles) == {"Fattura 2025/118", "Fine supporto firewall FW-200"}


def test_a_profile_without_deadlines_or_quotes_shows_no_widget(app, demo, client):
    with app.app_context(), db.connection_context():
        profile = Profile.create(name="faq-only", label_en="FAQ only")
        ProfileModule.create(profile=profile, module="faq", scope="own", actions="view")
        ProfileModule.create(profile=profile, module="tickets", scope="own", actions="view,create")
        Contact.update(profile=profile).where(Contact.email == "bruno@acme.example").execute()
    login(client, "bruno@acme.example")
    page = client.get("/")
    assert page.status_code == 200 and 'data-testid="due-soon"' not in page.text


def test_nothing_due_still_shows_the_widget(app, demo, client):
    login(client, "fabio@umbrella.example")  # deadlines and quotes, none of them due
    widget = _widget(client.get("/").text)
    assert 'data-testid="due-none"' in widget and _titles(widget) == []


def test_queries_do_not_grow_with_the_records(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/")  # the first request fills the process's caches (profiles, workflow)
    with queries:
        client.get("/")
    few = queries.count
    with app.app_context(), db.connection_context():
        acme = demo["companies"]["acme"]
        anna = Contact.get(Contact.email == "anna@acme.example")
        today = dt.date.today()
        for n in range(40):
            Deadline.create(company=acme, contact=anna, title=f"Extra deadline {n}", kind="invoice",
                            due_date=today + dt.timedelta(days=n % 25))
            Quote.create(number=f"X-{n}", company=acme, contact=anna, subject=f"Extra quote {n}", status="sent",
                         valid_until=today + dt.timedelta(days=1 + n % 25), net_total=Decimal(1))
    with queries:
        page = client.get("/")
    widget = _widget(page.text)
    assert len(_titles(widget)) == 12 and "Sono mostrate solo le prime 12." in widget
    assert queries.count == few


class Renewals(Module):
    """A partner's module contributing to the widget through the documented hook."""

    name = "renewals"
    label = "Renewals"

    def due_items(self, user, today, until, limit):
        return [DueItem(due=today - dt.timedelta(days=400), title="Partner renewal", kind="Domain renewal",
                        url="/renewals/1", reference="example.com")]


@pytest.fixture
def partner_module(app):
    registry = app.extensions["crm_portal"]
    registry.modules["renewals"] = Renewals()
    try:
        yield registry.modules["renewals"]
    finally:
        registry.modules.pop("renewals", None)


def test_partner_modules_contribute_through_the_hook(app, demo, client, partner_module):
    with app.app_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        ProfileModule.create(profile=bruno.profile_id, module="renewals", scope="own", actions="view")
    login(client, "bruno@acme.example")
    widget = _widget(client.get("/").text)
    assert _titles(widget)[0] == "Partner renewal"  # the oldest overdue item first
    assert 'href="/renewals/1"' in widget and "Domain renewal" in widget and "example.com" in widget
    client.post("/logout")
    login(client, "anna@acme.example")  # her profile does not show the partner module
    assert "Partner renewal" not in _widget(client.get("/").text)


class Broken(Module):
    """A partner's module whose due dates fail in the database."""

    name = "broken"
    label = "Broken"

    def due_items(self, user, today, until, limit):
        db.execute_sql("SELECT due FROM broken_table_that_does_not_exist")
        return []


def test_a_module_failing_in_the_database_leaves_the_others_standing(app, demo, client, caplog):
    """A module whose query fails in the database is logged and left out. Reading pages run
    outside a transaction, so on PostgreSQL too the failed statement spoils nothing: the modules
    asked after it still answer and the page is drawn."""
    registry = app.extensions["crm_portal"]
    installed = dict(registry.modules)
    registry.modules.clear()  # the broken module asked first, before those whose items are shown
    registry.modules.update({"broken": Broken(), **installed})
    try:
        with app.app_context(), db.connection_context():
            bruno = Contact.get(Contact.email == "bruno@acme.example")
            ProfileModule.create(profile=bruno.profile_id, module="broken", scope="own", actions="view")
        login(client, "bruno@acme.example")
        page = client.get("/")
        assert page.status_code == 200
        assert _titles(_widget(page.text)), "the other modules' items are still shown"
        assert any("due_items of broken failed" in r.getMessage() for r in caplog.records)
    finally:
        registry.modules.clear()
        registry.modules.update(installed)
