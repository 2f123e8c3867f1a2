"""The example partner module of docs/plugins.md, installed as a real distribution and discovered
through its entry point, exactly as a partner's pip-installed package would be."""
from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from conftest import login, make_app
from crm_portal.db import db
from crm_portal.migrations import upgrade
from crm_portal.models import Button, Contact, MigrationHistory, ProfileButton, ProfileModule

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "crm-portal-visits"


@pytest.fixture(scope="session")
def installed_example(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("partner")
    source = work / "src"
    shutil.copytree(EXAMPLE, source)
    catalogue = source / "crm_portal_visits" / "translations" / "it" / "LC_MESSAGES"
    with open(catalogue / "messages.po", "rb") as po, open(catalogue / "messages.mo", "wb") as mo:
        write_mo(mo, read_po(po))
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)], check=True)
    return target


@pytest.fixture
def partner_app(installed_example, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_example))
    importlib.invalidate_caches()
    app = make_app(tmp_path)
    yield app
    if not db.is_closed():
        db.close()


def test_doc_shows_the_tested_example():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    code = (EXAMPLE / "crm_portal_visits" / "__init__.py").read_text()
    assert code.strip() in doc, "docs/plugins.md must include the example module verbatim"


def test_discovered_through_entry_point(partner_app):
    state = next(s for s in partner_app.extensions["crm_portal"].states if s.name == "visits")
    assert state.error is None
    assert state.enabled
    assert state.source.startswith("entry point crm_portal_visits:")


def _grant_visits(profile_id: int) -> None:
    ProfileModule.create(profile=profile_id, module="visits", scope="own", actions="view,edit,export")
    ProfileButton.create(profile=profile_id, button=Button.get(Button.key == "visits.list"), position=99)


def test_shows_up_for_a_profile_that_enables_it(partner_app):
    from crm_portal.demo import load_demo

    with partner_app.app_context(), db.connection_context():
        load_demo(partner_app)
        bruno = Contact.get(Contact.email == "bruno@acme.example")
    client = partner_app.test_client()
    login(client, "bruno@acme.example")
    assert client.get("/visits/").status_code == 404  # not in his profile yet
    assert 'data-module="visits"' not in client.get("/").text

    with partner_app.app_context(), db.connection_context():
        _grant_visits(bruno.profile_id)
    dashboard = client.get("/").text
    assert 'data-module="visits"' in dashboard
    assert 'data-button="visits.list"' in dashboard
    assert "Interventi" in dashboard  # bruno reads Italian: the module's own catalogue

    listing = client.get("/visits/")
    assert listing.status_code == 200
    assert listing.text.count("Marco Tecnico") == 2  # his two visits, not anna's

    with partner_app.app_context(), db.connection_context():
        from crm_portal_visits import Visit

        annas = Visit.select().join(Contact).where(Contact.email == "anna@acme.example").get()
        his = Visit.select().where(Visit.contact == bruno.id).first()
    assert client.get(f"/visits/{annas.id}").status_code == 404
    assert client.get(f"/visits/{annas.id}/edit").status_code == 404

    response = client.post(f"/visits/{his.id}/edit", data={"customer_notes": "Tutto ok <b>grazie</b>"})
    assert response.status_code == 302
    page = client.get(f"/visits/{his.id}").text
    assert "Tutto ok &lt;b&gt;grazie&lt;/b&gt;" in page

    empty = client.post(f"/visits/{his.id}/edit", data={"customer_notes": ""})
    assert empty.status_code == 200 and "is-invalid" in empty.text


def test_migration_upgrades_an_older_table(partner_app):
    registry = partner_app.extensions["crm_portal"]
    with partner_app.app_context(), db.connection_context():
        db.execute_sql("DROP TABLE visits_visit")
        MigrationHistory.delete().where(MigrationHistory.module == "visits").execute()
        # The 1.0 table, before the rating column existed.
        db.execute_sql(
            "CREATE TABLE visits_visit (id INTEGER PRIMARY KEY, number VARCHAR(20) NOT NULL, "
            "company_id INTEGER NOT NULL, contact_id INTEGER, date DATE NOT NULL, technician VARCHAR(100) NOT NULL, "
            "summary TEXT NOT NULL, hours DECIMAL(6, 2) NOT NULL, customer_notes TEXT)")
        lines = upgrade(registry)
        assert "visits: applied 0002_rating" in lines
        columns = {c.name for c in db.get_columns("visits_visit")}
        assert "rating" in columns
        assert upgrade(registry) == []  # recorded: never applied twice
