"""The example partner module of docs/plugins.md, installed as a real distribution and discovered
through its entry point, exactly as a partner's pip-installed package would be; its own tests run
on the portal's testing kit (the ``pytest11`` plugin of the installed crm-portal)."""
from __future__ import annotations

import importlib
import os
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
#: Every file of the example the guide shows in full.
EXAMPLE_FILES = ["pyproject.toml", *sorted(str(p.relative_to(EXAMPLE)) for p in EXAMPLE.rglob("*.py"))]


@pytest.fixture(scope="session")
def example_source(tmp_path_factory) -> Path:
    """A copy of the example with its catalogue compiled, as its wheel would ship it."""
    source = tmp_path_factory.mktemp("partner") / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__"))
    catalogue = source / "crm_portal_visits" / "translations" / "it" / "LC_MESSAGES"
    with open(catalogue / "messages.po", "rb") as po, open(catalogue / "messages.mo", "wb") as mo:
        write_mo(mo, read_po(po))
    return source


@pytest.fixture(scope="session")
def installed_example(example_source) -> Path:
    target = example_source.parent / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(example_source)], check=True)
    return target


@pytest.fixture
def partner_app(installed_example, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_example))
    importlib.invalidate_caches()
    app = make_app(tmp_path)
    yield app
    if not db.is_closed():
        db.close()


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_doc_shows_the_tested_example(name):
    doc = (ROOT / "docs" / "plugins.md").read_text()
    code = (EXAMPLE / name).read_text()
    assert f"`{name}`:" in doc, f"docs/plugins.md must name {name}"
    assert code.strip() in doc, f"docs/plugins.md must include {name} verbatim"


def test_the_example_follows_the_module_layout():
    package = EXAMPLE / "crm_portal_visits"
    declaration = (package / "__init__.py").read_text()
    assert "class Visit(" not in declaration and "class NotesForm(" not in declaration
    assert {"models.py", "forms.py", "migrations.py", "demo.py"} <= {p.name for p in package.glob("*.py")}


def test_the_examples_own_tests_pass_with_the_testing_kit(example_source, installed_example):
    """A partner runs ``pytest`` in their project: the kit's plugin gives the fixtures (SQLite here:
    the suite's own PostgreSQL database is in use by this run)."""
    env = {**os.environ, "PYTHONPATH": str(installed_example), "CRM_PORTAL_TEST_DATABASE_URL": ""}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
                          "--rootdir", str(example_source), str(example_source / "tests")],
                         cwd=example_source, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout


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
        from crm_portal_visits.models import Visit

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
