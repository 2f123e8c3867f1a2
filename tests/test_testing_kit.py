"""The testing kit (crm_portal.testing) that the portal's and partners' tests run on."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from crm_portal.db import db, utcnow
from crm_portal.models import Company
from crm_portal.testing import PG_URL, FrozenClock, assert_scope_matrix, make_app, reset_demo


def test_frozen_clock_stops_every_clock_of_the_portal(frozen_clock):
    from crm_portal import ratelimit
    from crm_portal.account import tokens
    from crm_portal.modules.tickets import workflow

    start = frozen_clock.now
    assert utcnow() == ratelimit.now() == workflow.clock() == start
    assert tokens.now() == start.replace(tzinfo=dt.UTC).timestamp()
    frozen_clock.advance(days=2, minutes=1)
    assert utcnow() == workflow.clock() == start + dt.timedelta(days=2, minutes=1)
    assert tokens.now() == frozen_clock.timestamp()


def test_frozen_clock_gives_the_real_clock_back():
    from crm_portal.account import tokens

    moment = dt.datetime(2020, 1, 2, 3, 4, 5)
    with FrozenClock(moment).installed():
        assert utcnow() == moment
    assert abs(utcnow() - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(seconds=5)
    assert tokens.now() > moment.timestamp() + 3600


def test_each_application_starts_from_an_empty_database(tmp_path):
    first = make_app(tmp_path)
    with first.app_context(), db.connection_context():
        Company.create(name="Left behind")
    second = make_app(tmp_path)  # the same database file (or PostgreSQL database) again
    with second.app_context(), db.connection_context():
        assert Company.select().count() == 0
        assert Company.create(name="First").id == 1  # ids start again, as in a new database


def test_reset_demo_puts_the_demo_data_back(app, demo):
    with app.app_context(), db.connection_context():
        Company.delete().where(Company.name != "Acme S.p.A.").execute()
    records = reset_demo(app)
    assert set(records["companies"]) == set(demo["companies"]) and "globex" in records["companies"]
    assert records["contacts"]["carla"].email == "carla@globex.example"


def _three_contacts(demo):
    contacts = demo["contacts"]
    return {"own": contacts["bruno"].id, "colleague": contacts["anna"].id, "other": contacts["carla"].id}


def _email(contact_id, demo):
    return next(c.email for c in demo["contacts"].values() if c.id == contact_id)


def test_scope_matrix_passes_on_the_rules_of_the_module(app):
    assert_scope_matrix(app, "contacts", records=_three_contacts, marker=_email)


def test_scope_matrix_fails_when_a_record_shows_where_it_should_not(app):
    claimed = {"own": {"own": True, "colleague": True, "other": False}}  # not what the contacts module does
    with pytest.raises(AssertionError, match="contacts, own scope, colleague record"):
        assert_scope_matrix(app, "contacts", records=_three_contacts, marker=_email, expected=claimed)


def test_the_plugin_loads_nothing_of_the_portal():
    """pytest loads the plugin in every run of the environment, other projects' too."""
    code = ("import sys, crm_portal.testing.plugin, crm_portal.testing; "
            "loaded = [m for m in sys.modules "
            "if m.startswith('crm_portal.') and not m.startswith('crm_portal.testing')]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


def _every_url(application) -> list[str]:
    """Every rule built with each argument "7" (defaults kept) and an unknown argument appended."""
    adapter = application.url_map.bind("portal.test")
    urls = []
    for rule in application.url_map.iter_rules():
        values = {arg: "7" for arg in rule.arguments if arg not in (rule.defaults or {})}
        urls.append(adapter.build(rule.endpoint, {**values, "extra": "x y"}, method=sorted(rule.methods)[0]))
    return urls


def test_applications_sharing_url_builders_build_the_same_urls(app, tmp_path):
    """make_app reuses URL builders compiled for earlier applications: the URLs are the ones an
    application compiling its own builds."""
    from crm_portal import create_app
    from crm_portal.testing.database import _BUILDERS

    assert _BUILDERS, "make_app compiled no builder to share"
    own = create_app({**app.config, "SERVER_NAME": "portal.test"})
    assert _every_url(app) == _every_url(own)


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: on SQLite the demo data comes back as a whole file")
def test_demo_data_comes_back_after_a_test_rebuilt_a_table(app, demo):
    """Schema-step tests drop and add columns: the column order changes, the demo data still fits."""
    from playhouse.migrate import SchemaMigrator, migrate

    from crm_portal.models import Contact

    with app.app_context(), db.connection_context():
        migrator = SchemaMigrator.from_database(db.obj)
        migrate(migrator.drop_column("core_contact", "notify_by_email"))
        migrate(migrator.add_column("core_contact", "notify_by_email", Contact.notify_by_email))
    records = reset_demo(app)
    assert records["contacts"]["anna"].email == "anna@acme.example"
    assert records["contacts"]["anna"].notify_by_email is True


def test_the_schema_history_keeps_counting_across_demo_restores(app, demo):
    """The schema history outlives each test on PostgreSQL: restoring the demo data must not
    move its id sequence back onto rows it already holds."""
    from crm_portal.models import MigrationHistory

    with app.app_context(), db.connection_context():
        MigrationHistory.create(module="kit", name="before")
    reset_demo(app)
    with app.app_context(), db.connection_context():
        MigrationHistory.create(module="kit", name="after")
        MigrationHistory.delete().where(MigrationHistory.module == "kit").execute()


def test_an_in_memory_database_is_refused_with_a_reason(tmp_path):
    with pytest.raises(ValueError, match="needs a SQLite file or PostgreSQL"):
        make_app(tmp_path, DATABASE_URL="sqlite:///:memory:")
