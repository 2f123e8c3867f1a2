"""The process's caches of profiles and of the tickets workflow: read once, kept, and dropped when
anyone changes their tables, on this node or another (the database triggers)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from playhouse.db_url import connect

from crm_portal import cache
from crm_portal.db import db, is_postgres
from crm_portal.models import ProfileModule
from crm_portal.modules.tickets.models import TicketState
from crm_portal.testing import login


@contextlib.contextmanager
def other_node(app) -> Iterator[None]:
    """Another process's connection to the same database: nothing of this process runs, so only
    the database can tell this one that something changed."""
    database = connect(app.config["DATABASE_URL"])
    try:
        with database.bind_ctx([ProfileModule, TicketState]), database.connection_context(), database.atomic():
            yield
    finally:
        database.close()


def _read(queries, table: str) -> bool:
    return any(f'"{table}"' in q for q in queries.queries)


def test_grants_are_kept_until_another_node_changes_the_profile(app, demo, client, queries):
    login(client, "anna@acme.example")
    assert client.get("/quotes/").status_code == 200
    with queries:
        assert client.get("/quotes/").status_code == 200
    assert not _read(queries, "core_profile_module"), queries.queries
    assert any("core_cache_version" in q for q in queries.queries)
    with other_node(app):
        profile = demo["contacts"]["anna"].profile_id
        ProfileModule.delete().where((ProfileModule.profile == profile) & (ProfileModule.module == "quotes")).execute()
    with queries:
        assert client.get("/quotes/").status_code == 404
    assert _read(queries, "core_profile_module")
    assert client.get("/tickets/").status_code == 200


def test_workflow_labels_follow_a_change_made_elsewhere(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/tickets/?lang=en")
    with queries:
        page = client.get("/tickets/")
    assert not _read(queries, "tickets_state") and not _read(queries, "tickets_transition"), queries.queries
    with other_node(app):
        TicketState.update(label_it="Presa in carico dal reparto", label_en="Taken by the team").where(
            TicketState.key == "in_progress").execute()
    page = client.get("/tickets/")
    assert "Presa in carico dal reparto" in page.text or "Taken by the team" in page.text


def test_without_the_version_table_nothing_is_cached(app, demo, client, queries):
    """A database not migrated yet (new code, old schema): every request loads, as before."""
    login(client, "anna@acme.example")
    with app.app_context(), db.connection_context():
        if is_postgres():
            triggers = db.execute_sql("SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c "
                                      "ON c.oid = t.tgrelid WHERE t.tgname LIKE %s", ("cache\\_%",)).fetchall()
            for trigger, table in triggers:
                db.execute_sql(f'DROP TRIGGER {trigger} ON "{table}"')
        else:
            for (trigger,) in db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                             "AND name LIKE 'cache\\_%' ESCAPE '\\'").fetchall():
                db.execute_sql(f"DROP TRIGGER {trigger}")
        db.execute_sql(f"DROP TABLE {cache.TABLE}")
        cache._migrated.discard(db.obj)
    for _ in range(2):
        with queries:
            assert client.get("/quotes/").status_code == 200
        assert _read(queries, "core_profile_module")


def test_installing_again_changes_nothing_and_a_missing_table_means_no_cache(app):
    with app.app_context(), db.connection_context():
        before = {row.name: row.version for row in cache.CacheVersion.select()}
        assert {"profiles.grants", "profiles.buttons", "tickets.workflow"} <= set(before)
        assert cache.install_triggers(db.obj) == []
        assert {row.name: row.version for row in cache.CacheVersion.select()} == before
        cache.ProcessCache("tests.missing", ("no_such_table",), lambda key: key)
        try:
            cache.install_triggers(db.obj)
            assert "tests.missing" not in {row.name for row in cache.CacheVersion.select()}
        finally:
            cache._caches.pop("tests.missing")


def test_a_change_gives_a_new_version_and_a_rollback_keeps_the_old(app, demo):
    with app.app_context(), db.connection_context():
        def version() -> int:
            return cache.CacheVersion.get_by_id("tickets.workflow").version

        first = version()
        with db.atomic() as transaction:
            TicketState.update(color="dark").where(TicketState.key == "open").execute()
            assert version() != first
            transaction.rollback()
        assert version() == first
        TicketState.update(color="dark").where(TicketState.key == "open").execute()
        assert version() != first
        assert isinstance(cache.caches()["tickets.workflow"], cache.ProcessCache)
