"""Generic list pages: search, sort, pagination, CSV export and a constant number of queries."""
from __future__ import annotations

import csv
import io

import pytest
from conftest import login

from crm_portal.db import db
from crm_portal.exports import csv_dialect
from crm_portal.models import Contact


def _add_colleagues(company_id: int, count: int, prefix: str = "worker") -> None:
    with db.atomic():
        Contact.insert_many([
            {"first_name": f"{prefix.title()}{i}", "last_name": f"Surname{i:04d}",
             "email": f"{prefix}{i}@acme.example", "company": company_id,
             "office": "Ufficio 100%" if i % 2 else "Ufficio_A", "session_token": f"t{prefix}{i}"}
            for i in range(count)
        ]).execute()


@pytest.fixture
def anna(app, demo, client):
    with app.app_context(), db.connection_context():
        Contact.update(language="en").where(Contact.email == "anna@acme.example").execute()
    login(client, "anna@acme.example")
    return client


def test_pagination_and_showing_line(app, demo, anna):
    with app.app_context(), db.connection_context():
        _add_colleagues(demo["companies"]["acme"].id, 60)  # 63 contacts at Acme
    first = anna.get("/contacts/")
    assert "Showing 1 to 50 of 63" in first.text
    second = anna.get("/contacts/?page=2")
    assert "Showing 51 to 63 of 63" in second.text
    small = anna.get("/contacts/?per_page=10&page=3")
    assert "Showing 21 to 30 of 63" in small.text
    assert anna.get("/contacts/?per_page=7").text.count("Showing 1 to 50 of 63") == 1  # not an allowed size
    assert "Showing 51 to 63 of 63" in anna.get("/contacts/?page=999").text  # clamped to the last page
    assert anna.get("/contacts/?page=abc").status_code == 200


def test_sort_both_ways(app, demo, anna):
    asc = anna.get("/contacts/?sort=email&dir=asc").text
    desc = anna.get("/contacts/?sort=email&dir=desc").text
    assert asc.index("anna@acme") < asc.index("chiara@acme")
    assert desc.index("chiara@acme") < desc.index("anna@acme")
    # An unknown sort column falls back to the default instead of failing.
    assert anna.get("/contacts/?sort=password_hash").status_code == 200


def test_global_and_column_search(app, demo, anna):
    with app.app_context(), db.connection_context():
        _add_colleagues(demo["companies"]["acme"].id, 6)
    assert "bruno@acme" in anna.get("/contacts/?q=BIANCHI").text
    assert "anna@acme" not in anna.get("/contacts/?q=bianchi").text
    both_words = anna.get("/contacts/?q=bruno+amministrazione").text
    assert "bruno@acme" in both_words and "anna@acme" not in both_words
    by_column = anna.get("/contacts/?s_office=Monza").text
    assert "chiara@acme" in by_column and "bruno@acme" not in by_column
    # LIKE wildcards typed by the user are matched literally.
    percent = anna.get("/contacts/?s_office=100%25").text
    assert "Showing 1 to 3 of 3" in percent
    underscore = anna.get("/contacts/?s_office=o_A").text
    assert "Showing 1 to 3 of 3" in underscore
    assert "No records match." in anna.get("/contacts/?q=%27%22%3B--").text
    # A NUL character (refused by PostgreSQL in a query) is dropped from what was typed.
    for query, found in (("q=bian%00chi", "bruno@acme"), ("s_office=Mon%00za", "chiara@acme"),
                         ("f_portal_access=%00true", "bruno@acme")):
        response = anna.get(f"/contacts/?{query}")
        assert response.status_code == 200 and found in response.text, query
    assert anna.get("/tickets/?state=%00&created_from=%00").status_code == 200


def test_filter_by_choice(app, demo, anna):
    with app.app_context(), db.connection_context():
        _add_colleagues(demo["companies"]["acme"].id, 4)  # without portal access
    with_access = anna.get("/contacts/?f_portal_access=true").text
    assert "Showing 1 to 3 of 3" in with_access
    assert "Showing 1 to 4 of 4" in anna.get("/contacts/?f_portal_access=false").text


def test_csv_export_follows_the_filters(app, demo, anna):
    response = anna.get("/contacts/export.csv?q=bianchi")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig")), dialect=csv_dialect("en")))
    assert rows[0][:3] == ["Surname", "Name", "Email"]
    assert [r[2] for r in rows[1:]] == ["bruno@acme.example"]


def test_csv_export_neutralises_formulas(app, demo, anna):
    with app.app_context(), db.connection_context():
        Contact.update(office="=HYPERLINK(\"http://evil\")").where(Contact.email == "bruno@acme.example").execute()
    text = anna.get("/contacts/export.csv").text
    assert "'=HYPERLINK" in text
    assert "+39 02 5550001" in text and "'+39" not in text  # phone numbers stay as they are


def test_user_text_is_escaped(app, demo, anna):
    with app.app_context(), db.connection_context():
        Contact.update(office="<script>alert(1)</script>").where(Contact.email == "bruno@acme.example").execute()
    page = anna.get("/contacts/").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_list_runs_constant_queries(app, demo, anna, queries):
    def count(url: str) -> int:
        with queries:
            assert anna.get(url).status_code == 200
        return queries.count

    count("/contacts/")  # the process's caches (profiles) are filled by the first request
    few = count("/contacts/?per_page=100")
    with app.app_context(), db.connection_context():
        _add_colleagues(demo["companies"]["acme"].id, 150)
    many = count("/contacts/?per_page=100")
    searched = count("/contacts/?per_page=100&q=worker&sort=office")
    assert few == many == searched
    assert many <= 5, queries.queries


def test_other_company_rows_never_counted(app, demo, client):
    with app.app_context(), db.connection_context():
        _add_colleagues(demo["companies"]["acme"].id, 30)
    login(client, "carla@globex.example")
    page = client.get("/contacts/").text
    assert "Showing 1 to 2 of 2" in page
    assert "acme.example" not in page


def test_date_badge_and_computed_choices(app):
    import datetime as dt

    from crm_portal.api import Column, date_badge

    badge = date_badge(30)
    today = dt.date.today()
    assert badge(today - dt.timedelta(days=1)) == "danger"
    assert badge(today + dt.timedelta(days=30)) == "warning"
    assert badge(today + dt.timedelta(days=31)) is None
    assert badge("not a date") is None
    assert date_badge(7, past="secondary")(today - dt.timedelta(days=3)) == "secondary"

    calls = []

    def choices():
        calls.append(1)
        return {"a": "Alpha"}

    column = Column(Contact.office, "Office", choices=choices, badge={"x": "info"})
    with app.test_request_context():
        assert column.choice_map() == {"a": "Alpha"}
        assert column.choice_map() == {"a": "Alpha"}
        assert len(calls) == 1  # computed once per request, not once per row
    assert column.badge_for("x") == "info" and column.badge_for("y") is None and column.badge_for(None) is None


def test_a_column_sorts_on_its_sort_by_expression(app, demo):
    """``Column.sort_by``: an expression replaces the column in ORDER BY; a function is asked for
    its expression each time a list is sorted (an order kept in a table can change)."""
    from types import SimpleNamespace

    import peewee as pw

    from crm_portal.api import Column
    from crm_portal.listing import ListQuery, ListRequest

    ranks = {"Rossi": 0, "Bianchi": 1}
    calls = []

    def by_rank():
        calls.append(1)
        return pw.Case(Contact.last_name, list(ranks.items()), len(ranks))

    module = SimpleNamespace(record=Contact, search_field=None, list_params=(), columns=[
        Column(Contact.email, sort=True, sort_by=pw.fn.LOWER(Contact.email)),
        Column(Contact.last_name, sort=True, sort_by=by_rank),
        Column(Contact.first_name, sort=True)])
    with app.test_request_context(), db.connection_context():
        Contact.update(email="ZED@acme.example").where(Contact.email == "bruno@acme.example").execute()
        acme = Contact.select().where(Contact.company == demo["companies"]["acme"].id)
        listing = ListQuery(module, acme)

        def emails(sort: str, descending: bool = False) -> list[str]:
            req = ListRequest(sort=sort, descending=descending)
            return [c.email for c in listing.ordered(acme, req)]

        assert emails("email") == sorted(emails("email"), key=str.lower)  # case ignored
        assert emails("email")[-1] == "ZED@acme.example"
        by_surname = emails("last_name")
        assert by_surname.index("anna@acme.example") < by_surname.index("ZED@acme.example")  # Rossi, Bianchi
        ranks.update({"Rossi": 5})  # the order changes: the next sort follows it
        later = emails("last_name")
        assert later.index("ZED@acme.example") < later.index("anna@acme.example") and len(calls) == 2
        assert "LOWER" not in str(listing.ordered(acme, ListRequest(sort="first_name")).sql())


@pytest.mark.parametrize("language", ["it", "en"])
def test_dates_are_shown_as_flask_babel_formats_them(app, language):
    """The list's ``display`` looks the locale and zone up once per request: same text as
    flask-babel's own formatting, also when a block of the request switches language."""
    import datetime as dt

    from flask_babel import force_locale, format_date, format_datetime

    from crm_portal.listing import display

    values = [dt.datetime(2026, 3, 29, 0, 30) + dt.timedelta(hours=7 * i) for i in range(40)]  # DST change
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=37 * i) for i in range(10)]
    with app.test_request_context("/", headers={"Accept-Language": language}):
        assert [display(v) for v in values] == [format_datetime(v, "short") for v in values]
        assert [display(d) for d in days] == [format_date(d, "medium") for d in days]
        other = "en" if language == "it" else "it"
        with force_locale(other):
            assert [display(v) for v in values[:3]] == [format_datetime(v, "short") for v in values[:3]]
            assert display(days[1]) == format_date(days[1], "medium")
        assert display(values[0]) == format_datetime(values[0], "short")
        assert display(values[0]) != display(values[0].replace(hour=5))


@pytest.mark.parametrize("sort, descending", [(None, False), ("office", False), ("office", True),
                                              ("last_name", True), ("email", False)])
def test_deep_pages_are_the_slices_of_the_whole_list(app, demo, sort, descending):
    """Pages after the first find their rows through the sort's keys first: page by page, the
    list is exactly the whole sorted list, ties included (half the contacts share an office)."""
    from flask import current_app

    from crm_portal.listing import ListQuery, ListRequest

    with app.test_request_context(), db.connection_context():
        acme = demo["companies"]["acme"].id
        _add_colleagues(acme, 130)
        module = current_app.extensions["crm_portal"].modules["contacts"]
        lists = ListQuery(module, Contact.select().where(Contact.company == acme))
        whole = [row.id for row in lists.all(ListRequest(sort=sort, descending=descending))]
        paged: list[int] = []
        for number in range(1, 8):
            page = lists.page(ListRequest(sort=sort, descending=descending, page=number, per_page=20))
            paged += [row.id for row in page.rows]
        assert len(whole) == 133 and paged == whole
        searched = ListRequest(q="worker1", sort=sort, descending=descending, page=2, per_page=10)
        expected = [row.id for row in lists.all(ListRequest(q="worker1", sort=sort, descending=descending))][10:20]
        assert [row.id for row in lists.page(searched).rows] == expected and expected
