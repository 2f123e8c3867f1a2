"""Every admin list page, built-in or a module's, runs the same number of queries for 1 row as for
41: foreign keys shown in columns come joined, never one query per row."""
from __future__ import annotations

import pytest
from admin_crawl import make_row, model_views
from conftest import staff_login

from crm_portal.db import db


def test_every_admin_list_runs_constant_queries(app, demo, client, queries):
    staff_login(client)
    checked = []
    for view in model_views(app):
        url = f"{view.url}/?page_size=100"

        def count(url: str = url) -> tuple[int, int]:
            client.get(url)  # fills the process's caches again when the new rows changed their tables
            with queries:
                page = client.get(url)
            assert page.status_code == 200, url
            return queries.count, page.text.count("<tr")

        with app.app_context(), db.connection_context():
            assert view.model.select().count() < 50, f"{view.endpoint}: too many demo rows for one page"
            make_row(view.model)
        few, rows_before = count()
        with app.app_context(), db.connection_context(), db.atomic():
            for _ in range(40):
                make_row(view.model)
        many, rows_after = count()
        assert rows_after - rows_before >= 40, f"{view.endpoint}: the 40 new rows are not listed"
        assert few == many, f"{view.endpoint}: {few} queries for a few rows, {many} for 40 more"
        checked.append(view.endpoint)
    assert "core_contact" in checked and "tickets_queue" in checked


@pytest.mark.parametrize("endpoint", ["core_contact", "documents_document", "quotes_quote"])
def test_foreign_key_columns_show_the_related_row(app, demo, client, endpoint):
    """The joined rows are the right ones: each list still names its company."""
    staff_login(client)
    page = client.get(f"/admin/{endpoint}/?page_size=100").text
    assert "Acme S.p.A." in page
