"""The host: configuration, themes, errors, signals, dashboard and navigation, CLI."""
from __future__ import annotations

import inspect

import peewee as pw
import pytest
from conftest import login, make_app

from crm_portal import create_app, signals
from crm_portal.db import db


def test_config_precedence(tmp_path, monkeypatch):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.toml").write_text('PORTAL_NAME = "From file"\nPER_PAGE = 25\nTHEME = "contrast"\n')
    monkeypatch.setenv("CRM_PORTAL_PER_PAGE", "10")
    app = create_app({"INSTANCE_PATH": str(instance), "SECRET_KEY": "x",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "THEME": "default"})
    assert app.config["PORTAL_NAME"] == "From file"   # file over defaults
    assert app.config["PER_PAGE"] == 10               # environment over file
    assert app.config["THEME"] == "default"           # explicit mapping over everything


def test_production_refuses_to_start_without_secret(tmp_path):
    with pytest.raises(RuntimeError, match="secret key"):
        create_app({"INSTANCE_PATH": str(tmp_path / "i"), "PRODUCTION": True,
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})


def test_production_secures_cookies(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "PRODUCTION": True, "SECRET_KEY": "s",
                      "EXTERNAL_URL": "https://portal.test", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    assert app.config["SESSION_COOKIE_HTTPONLY"] and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_sqlite_is_tuned_for_concurrency(app):
    if not isinstance(db.obj, pw.SqliteDatabase):
        pytest.skip("SQLite only")
    with app.app_context(), db.connection_context():
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000
        with db.atomic():
            assert db.in_transaction()


def test_every_signal_is_documented():
    assert signals.ALL
    for sig in signals.ALL:
        assert sig.__doc__ and "Sender" in sig.__doc__ and len(sig.__doc__) > 40, sig.name
    names = [n for n, v in vars(signals).items() if type(v).__name__ == "NamedSignal"]
    assert {getattr(signals, n) for n in names} == set(signals.ALL), "a signal is missing from signals.ALL"


def test_extension_points_are_documented():
    from crm_portal.api import Module

    hooks = [n for n, v in vars(Module).items() if inspect.isfunction(v) and not n.startswith("_")]
    assert "scope_query" in hooks and "buttons" in hooks
    for name in hooks:
        assert inspect.getdoc(getattr(Module, name)), f"Module.{name} has no docstring"


def test_extension_points_are_in_plugins_doc():
    from pathlib import Path

    from crm_portal.api import Module

    doc = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
    hooks = [n for n, v in vars(Module).items() if inspect.isfunction(v) and not n.startswith("_")
             and n != "base_query"]
    for name in hooks:
        assert f"`{name}(" in doc, f"Module.{name} is not documented in docs/plugins.md"
    for sig in signals.ALL:
        assert f"`{sig.name}`" in doc, f"signal {sig.name} is not documented in docs/plugins.md"


def test_dashboard_menu_and_buttons_follow_the_profile(app, demo, client):
    login(client, "anna@acme.example")
    page = client.get("/").text
    assert 'data-module="contacts"' in page and 'data-module="companies"' in page
    assert 'data-button="contacts.list"' in page and 'data-button="companies.mine"' in page
    assert "Anna Rossi" in page
    assert page.index('data-button="contacts.list"') < page.index('data-button="companies.mine"')
    client.post("/logout")
    login(client, "bruno@acme.example")
    page = client.get("/").text
    assert 'data-button="contacts.list"' not in page  # not on the "user" profile's dashboard
    assert 'name="viewport"' in page  # responsive layout


def test_anonymous_is_sent_to_login(client, app):
    response = client.get("/contacts/")
    assert response.status_code == 302 and "/login" in response.location


def test_not_found_page_in_user_language(app, demo, client):
    login(client, "bruno@acme.example")  # Italian
    response = client.get("/contacts/99999")
    assert response.status_code == 404
    assert "Pagina non trovata" in response.text
    client.post("/logout")
    login(client, "carla@globex.example")  # English
    response = client.get("/nothing-here")
    assert response.status_code == 404 and "Page not found" in response.text


def test_huge_and_malformed_ids_are_404(app, demo, client):
    login(client, "anna@acme.example")
    assert client.get("/contacts/99999999999999999999").status_code == 404
    assert client.get("/contacts/abc").status_code == 404
    assert client.get("/nomodule/").status_code == 404


def test_database_down_is_503_without_traceback(tmp_path):
    app = make_app(tmp_path)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    from crm_portal.db import bind

    bind("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    try:
        response = app.test_client().get("/login", headers={"Accept-Language": "it"})
    finally:
        bind(app.config["DATABASE_URL"])
    assert response.status_code == 503
    assert "Traceback" not in response.text and "psycopg2" not in response.text
    assert "Servizio non disponibile" in response.text


def test_a_real_bug_is_a_500_not_a_503(app, demo, client, monkeypatch):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    from crm_portal.views import portal

    def broken():
        raise pw.OperationalError('near "AS": syntax error')

    monkeypatch.setattr(portal, "dashboard_buttons", broken)
    login(client, "anna@acme.example")
    response = client.get("/")
    assert response.status_code == 500 and "Traceback" not in response.text


def test_theme_overrides_templates_and_serves_assets(tmp_path):
    app = make_app(tmp_path, THEME="contrast")
    c = app.test_client()
    with app.app_context(), db.connection_context():
        from crm_portal.demo import load_demo
        load_demo(app)
    login(c, "carla@globex.example")
    page = c.get("/").text
    assert 'class="theme-contrast"' in page and "High contrast" in page
    assert 'data-bs-theme="dark"' in page
    assert "/theme/css/contrast.css" in page
    css = c.get("/theme/css/contrast.css")
    assert css.status_code == 200 and b"--bs-body-bg" in css.data
    assert c.get("/theme/../crm_portal/__init__.py").status_code == 404
    css.close()


def test_default_theme_has_no_contrast_override(client):
    assert 'class="theme-contrast"' not in client.get("/login").text


def test_unknown_theme_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="THEME"):
        make_app(tmp_path, THEME="nope")


def test_bootstrap_is_served_locally(client, app):
    page = client.get("/login").text
    assert "cdn" not in page.lower() and "https://" not in page
    for asset in ("bootstrap/bootstrap.min.css", "bootstrap/bootstrap.bundle.min.js",
                  "bootstrap-icons/bootstrap-icons.min.css", "bootstrap-icons/fonts/bootstrap-icons.woff2"):
        response = client.get(f"/static/vendor/{asset}")
        assert response.status_code == 200, asset
        response.close()


def test_no_inline_scripts_in_portal_pages(app, demo, client):
    import re

    login(client, "anna@acme.example")
    for url in ("/", "/contacts/", "/login"):
        html = client.get(url).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert " onclick=" not in html and 'style="' not in html


def test_cli_init_demo_modules(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path / "inst"),
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"})
    runner = app.test_cli_runner()
    result = runner.invoke(args=["init", "--admin-password", "a tram to Brera at dusk"])
    assert result.exit_code == 0, result.output
    assert "profile user" in result.output and "profile company" in result.output
    assert (tmp_path / "inst" / "secret_key").exists()
    again = runner.invoke(args=["init"])
    assert again.exit_code == 0 and "staff admin" not in again.output  # idempotent
    demo = runner.invoke(args=["demo"])
    assert demo.exit_code == 0 and "anna@acme.example" in demo.output
    assert "already present" in runner.invoke(args=["demo"]).output
    assert runner.invoke(args=["migrate"]).output.strip() == "schema up to date"
    modules = runner.invoke(args=["modules"])
    assert "contacts" in modules.output and "enabled" in modules.output


def test_every_public_api_name_is_in_plugins_doc():
    from pathlib import Path

    from crm_portal import api

    doc = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
    for name in api.__all__:
        assert f"`{name}" in doc, f"crm_portal.api.{name} is not documented in docs/plugins.md"


def test_core_schema_steps_upgrade_an_old_database(tmp_path):
    """A database made before the core's schema steps gets them from `crm-portal migrate`."""
    from crm_portal.migrations import CORE_MIGRATIONS, upgrade
    from crm_portal.models import MigrationHistory

    app = make_app(tmp_path)
    with app.app_context(), db.connection_context():
        names = {m.name for m in CORE_MIGRATIONS}
        assert {h.name for h in MigrationHistory.select().where(MigrationHistory.module == "core")} == names
        for index in ("core_contact_first_name", "core_contact_office", "core_contact_role", "core_company_city"):
            db.execute_sql(f'DROP INDEX "{index}"')
        db.execute_sql("ALTER TABLE core_contact DROP COLUMN notify_by_email")
        db.execute_sql("ALTER TABLE core_contact DROP COLUMN notification_events")
        db.execute_sql('DROP INDEX "core_outbox_message_claim_token"')
        db.execute_sql("ALTER TABLE core_outbox_message DROP COLUMN claim_token")
        db.execute_sql('DROP INDEX "core_outbox_message_thread"')
        for column in ("thread", "auto_submitted"):
            db.execute_sql(f"ALTER TABLE core_outbox_message DROP COLUMN {column}")
        for column in ("pending", "pending_at"):
            db.execute_sql(f"ALTER TABLE core_login_throttle DROP COLUMN {column}")
        db.execute_sql("ALTER TABLE core_profile DROP COLUMN assignable")
        db.execute_sql("ALTER TABLE core_staff_user DROP COLUMN can_view_as")
        db.execute_sql("ALTER TABLE core_staff_user DROP COLUMN timezone")
        for table in ("core_profile", "core_company"):
            db.execute_sql(f"ALTER TABLE {table} DROP COLUMN second_factor_required")
        MigrationHistory.delete().where(MigrationHistory.module == "core").execute()
        lines = upgrade(app.extensions["crm_portal"])
        core_lines = sorted(line for line in lines if line.startswith("core"))
        assert [f"core: applied {n}" for n in sorted(names)] == core_lines
        indexed = {i.name for i in db.get_indexes("core_contact")} | {i.name for i in db.get_indexes("core_company")}
        assert {"core_contact_first_name", "core_contact_office", "core_company_city"} <= indexed
        assert {"notify_by_email", "notification_events"} <= {c.name for c in db.get_columns("core_contact")}
        assert {"claim_token", "thread", "auto_submitted"} <= {c.name for c in db.get_columns("core_outbox_message")}
        assert {"pending", "pending_at"} <= {c.name for c in db.get_columns("core_login_throttle")}
        assert "assignable" in {c.name for c in db.get_columns("core_profile")}
        assert "can_view_as" in {c.name for c in db.get_columns("core_staff_user")}
        assert "timezone" in {c.name for c in db.get_columns("core_staff_user")}
        for table in ("core_profile", "core_company"):
            assert "second_factor_required" in {c.name for c in db.get_columns(table)}
