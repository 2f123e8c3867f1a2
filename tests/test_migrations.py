"""Schema steps cannot destroy data (crm_portal.migrations, crm_portal.sqlite_schema).

A step that rebuilds a parent table keeps the rows of its ON DELETE CASCADE and SET NULL children,
the triggers (those of other tables naming it included), indexes and views; a step that fails
half-way leaves the database exactly as it was and runs again; a step that would leave a dangling
foreign key is refused; ``migrate --check``/``--dry-run`` change nothing and the online backup
comes before the first pending step only.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import peewee as pw
import pytest
from playhouse.migrate import SchemaMigrator

from crm_portal.api import Migration
from crm_portal.db import close_all, db, is_postgres
from crm_portal.migrations import StepFailed, plan, upgrade
from crm_portal.models import ChangeEntry, MigrationHistory
from crm_portal.testing import PG_URL, make_app

sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="SQLite's table rebuild and its schema table")

PARENT_TABLES = ("mig_log", "mig_other", "mig_child_null", "mig_child_cascade", "mig_parent")


def _schema(postgres: bool) -> list[str]:
    key = "SERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    statements = [
        f"CREATE TABLE mig_parent (id {key}, name VARCHAR(40) NOT NULL)",
        "CREATE INDEX mig_parent_name ON mig_parent (name)",
        (f"CREATE TABLE mig_child_cascade (id {key}, note TEXT, "
        "parent_id INTEGER NOT NULL REFERENCES mig_parent (id) ON DELETE CASCADE)"),
        (f"CREATE TABLE mig_child_null (id {key}, note TEXT, "
        "parent_id INTEGER REFERENCES mig_parent (id) ON DELETE SET NULL)"),
        f"CREATE TABLE mig_other (id {key}, parent_id INTEGER)",
        f"CREATE TABLE mig_log (id {key}, name TEXT)",
        ("CREATE VIEW mig_parent_names AS SELECT p.name, COUNT(c.id) AS children FROM mig_parent p "
        "LEFT JOIN mig_child_cascade c ON c.parent_id = p.id GROUP BY p.id, p.name"),
    ]
    if not postgres:  # what broke the tickets step: a trigger of another table naming the rebuilt one
        statements += [
            ("CREATE TRIGGER mig_other_names_parent AFTER INSERT ON mig_other BEGIN "
            "INSERT INTO mig_log (name) SELECT name FROM mig_parent WHERE id = NEW.parent_id; END"),
            ("CREATE TRIGGER mig_parent_renamed AFTER UPDATE OF name ON mig_parent BEGIN "
            "INSERT INTO mig_log (name) VALUES ('renamed ' || NEW.name); END"),
        ]
    statements += [
        "INSERT INTO mig_parent (name) VALUES ('alpha'), ('beta'), ('gamma')",
        "INSERT INTO mig_child_cascade (note, parent_id) VALUES ('a1', 1), ('a2', 1), ('b1', 2)",
        "INSERT INTO mig_child_null (note, parent_id) VALUES ('a', 1), ('c', 3), ('none', NULL)",
    ]
    return statements


@pytest.fixture
def parent_app(tmp_path) -> Iterator:
    """An application whose database also holds a parent table with children, trigger, index, view."""
    app = make_app(tmp_path)
    with app.app_context(), db.connection_context():
        with db.atomic():
            for statement in _schema(is_postgres()):
                db.execute_sql(statement)
    yield app
    if is_postgres():  # SQLite's file goes with tmp_path; PostgreSQL's history outlives the test
        with app.app_context(), db.connection_context():
            MigrationHistory.delete().where(MigrationHistory.module == "mig").execute()
            db.execute_sql("DROP VIEW IF EXISTS mig_parent_names")
            for table in PARENT_TABLES:
                db.execute_sql(f"DROP TABLE IF EXISTS {table} CASCADE")


def _with_steps(app, *migrations: Migration) -> None:
    """A module owning the parent tables (created above) with these schema steps."""
    module = SimpleNamespace(name="mig", models=[], migrations=list(migrations))
    app.extensions["crm_portal"].modules["mig"] = module


def _code_column(migrator: SchemaMigrator) -> list:
    """A NOT NULL column with a default: SQLite's migrator rebuilds the table for it."""
    return [migrator.add_column("mig_parent", "code", pw.CharField(max_length=10, default="p"))]


def _rows(table: str) -> list[tuple]:
    return [tuple(row) for row in db.execute_sql(f"SELECT * FROM {table} ORDER BY id").fetchall()]


def _rows_without(table: str, column: str) -> list[tuple]:
    cursor = db.execute_sql(f"SELECT * FROM {table} ORDER BY id")
    names = [d[0] for d in cursor.description]
    return [tuple(v for n, v in zip(names, row, strict=True) if n != column) for row in cursor.fetchall()]


def _dump() -> str:
    """The whole database, schema and rows: SQLite's own dump, or PostgreSQL's columns and rows."""
    if not is_postgres():
        return "\n".join(db.connection().iterdump())
    columns = db.execute_sql("SELECT table_name, column_name, data_type, is_nullable, column_default FROM "
                             "information_schema.columns WHERE table_schema = 'public' "
                             "ORDER BY table_name, ordinal_position").fetchall()
    rows = [(table, _rows(table)) for table in PARENT_TABLES] + [
        ("history", sorted((h.module, h.name) for h in MigrationHistory.select()))]
    return repr((columns, rows))


def _sqlite_master() -> list[tuple]:
    return db.execute_sql("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()


def test_rebuilding_a_parent_keeps_children_triggers_indexes_and_views(parent_app):
    _with_steps(parent_app, Migration("0001_code", _code_column))
    with parent_app.app_context(), db.connection_context():
        children = {t: _rows(t) for t in ("mig_child_cascade", "mig_child_null")}
        view = db.execute_sql("SELECT * FROM mig_parent_names ORDER BY name").fetchall()
        before = {(t, n) for t, n, _tbl, _sql in _sqlite_master()} if not is_postgres() else set()

        assert "mig: applied 0001_code" in upgrade(parent_app.extensions["crm_portal"])

        assert {t: _rows(t) for t in children} == children  # no cascade, no SET NULL
        assert _rows("mig_parent") == [(1, "alpha", "p"), (2, "beta", "p"), (3, "gamma", "p")]
        assert db.execute_sql("SELECT * FROM mig_parent_names ORDER BY name").fetchall() == view
        assert "mig_parent_name" in {i.name for i in db.get_indexes("mig_parent")}
        if not is_postgres():
            assert {(t, n) for t, n, _tbl, _sql in _sqlite_master()} == before
            assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1  # back on for the pool
            with db.atomic():  # both triggers still fire
                db.execute_sql("INSERT INTO mig_other (parent_id) VALUES (2)")
                db.execute_sql("UPDATE mig_parent SET name = 'delta' WHERE id = 3")
            assert [n for (n,) in db.execute_sql("SELECT name FROM mig_log ORDER BY id")] == ["beta", "renamed delta"]
        with db.atomic():  # and the foreign keys still act
            db.execute_sql("DELETE FROM mig_parent WHERE id = 1")
        assert _rows("mig_child_cascade") == [(3, "b1", 2)]
        assert _rows("mig_child_null")[0] == (1, "a", None)


class _Boom:
    """An operation that fails (the second of the step, after the rebuild ran)."""

    armed = True

    def run(self) -> None:
        if _Boom.armed:
            raise RuntimeError("half-way")


def test_a_step_failing_half_way_changes_nothing_and_runs_again(parent_app):
    _Boom.armed = True
    _with_steps(parent_app, Migration("0001_code", lambda m: [*_code_column(m), _Boom()]))
    registry = parent_app.extensions["crm_portal"]
    with parent_app.app_context(), db.connection_context():
        before = _dump()
        with pytest.raises(StepFailed, match="mig: step 0001_code failed and changed nothing: half-way"):
            upgrade(registry)
        assert _dump() == before  # schema and rows, byte for byte
        if not is_postgres():
            assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1

        _Boom.armed = False
        assert "mig: applied 0001_code" in upgrade(registry)
        assert "code" in {c.name for c in db.get_columns("mig_parent")}
        assert MigrationHistory.select().where(MigrationHistory.module == "mig").count() == 1
        assert upgrade(registry) == []


def test_a_step_leaving_a_dangling_foreign_key_is_refused(parent_app):
    _with_steps(parent_app, Migration("0001_orphan", lambda m: [
        m.sql("INSERT INTO mig_child_cascade (note, parent_id) VALUES ('orphan', 99)")]))
    with parent_app.app_context(), db.connection_context():
        before = _dump()
        # SQLite (foreign keys off during the step): the check before the commit; PostgreSQL: at once.
        message = "rows pointing at missing parents" if not is_postgres() else "foreign key"
        with pytest.raises(StepFailed, match=message):
            upgrade(parent_app.extensions["crm_portal"])
        assert _dump() == before


@sqlite_only
def test_a_step_cannot_lose_a_trigger_of_another_table_or_an_autoincrement_counter(parent_app):
    """A step that rebuilds the parent by hand (drop and rename, as peewee does) keeps the
    trigger of mig_other that names it, and AUTOINCREMENT keeps counting from where it was."""
    def by_hand(migrator: SchemaMigrator) -> list:
        return [migrator.sql("CREATE TABLE mig_parent__new (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "name VARCHAR(40) NOT NULL)"),
                migrator.sql("INSERT INTO mig_parent__new SELECT id, name FROM mig_parent WHERE id < 3"),
                migrator.sql("DROP TABLE mig_parent"),
                migrator.sql("ALTER TABLE mig_parent__new RENAME TO mig_parent")]

    _with_steps(parent_app, Migration("0001_by_hand", by_hand))
    with parent_app.app_context(), db.connection_context():
        db.execute_sql("UPDATE mig_child_null SET parent_id = NULL WHERE parent_id = 3")
        triggers = [row for row in _sqlite_master() if row[0] in ("trigger", "view", "index")]
        upgrade(parent_app.extensions["crm_portal"])
        assert [row for row in _sqlite_master() if row[0] in ("trigger", "view", "index")] == triggers
        with db.atomic():
            db.execute_sql("INSERT INTO mig_parent (name) VALUES ('new')")
        assert _rows("mig_parent")[-1] == (4, "new")  # not 3: id 3 was given once


def _retire_view(migrator: SchemaMigrator) -> list:
    from crm_portal.sqlite_schema import retire

    return [retire(migrator.database, "mig_parent_names"), migrator.drop_index("mig_parent", "mig_parent_name")]


@sqlite_only
def test_a_step_may_retire_a_view_and_drop_an_index(parent_app):
    _with_steps(parent_app, Migration("0001_retire", _retire_view))
    with parent_app.app_context(), db.connection_context():
        upgrade(parent_app.extensions["crm_portal"])
        names = {name for _t, name, _tbl, _sql in _sqlite_master()}
        assert "mig_parent_names" not in names and "mig_parent_name" not in names
        assert "mig_other_names_parent" in names


def test_the_tickets_rebuild_keeps_every_row_of_a_filled_database(app, demo):
    """What broke an upgrade: tickets 0006 rebuilds tickets_ticket, referenced by cascading and
    SET NULL children and named by a trigger of core_contact."""
    with app.app_context(), db.connection_context():
        others = set(db.get_tables()) - {"tickets_ticket", "core_migration_history", "core_cache_version"}
        before = {t: _rows_without(t, "") for t in others if "id" in {c.name for c in db.get_columns(t)}}
        tickets = _rows_without("tickets_ticket", "news_seq")
        assert before["tickets_comment"] and before["tickets_history"] and len(tickets) > 1
        if not is_postgres():  # what step 0004 gave a database of the previous release
            db.execute_sql("CREATE TRIGGER tickets_ticket_contact_restrict BEFORE DELETE ON core_contact "
                           "WHEN EXISTS (SELECT 1 FROM tickets_ticket WHERE contact_id = OLD.id) "
                           "BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END")
        db.execute_sql("ALTER TABLE tickets_ticket DROP COLUMN news_seq")
        MigrationHistory.delete().where(MigrationHistory.name == "0006_news_seq").execute()
        assert "tickets: applied 0006_news_seq" in upgrade(app.extensions["crm_portal"])
        assert {t: _rows_without(t, "") for t in before} == before
        assert _rows_without("tickets_ticket", "news_seq") == tickets
        assert {n for (n,) in db.execute_sql("SELECT DISTINCT news_seq FROM tickets_ticket")} == {0}
        if not is_postgres():
            assert "tickets_ticket_contact_restrict" in {n for _t, n, _tbl, _sql in _sqlite_master()}


def test_the_change_log_step_keeps_its_rows_and_counts_on(app, demo):
    """core 0014 rebuilds a change log made without AUTOINCREMENT, keeping every row."""
    with app.app_context(), db.connection_context():
        rows = _rows("core_change")
        assert rows
        if not is_postgres():
            with db.atomic():
                db.execute_sql("CREATE TABLE old_change AS SELECT * FROM core_change")
                db.execute_sql("DROP TABLE core_change")
                db.execute_sql('CREATE TABLE core_change ("id" INTEGER NOT NULL PRIMARY KEY, "type" VARCHAR(60) '
                               'NOT NULL, "record_id" INTEGER NOT NULL, "change" VARCHAR(6) NOT NULL, '
                               '"at" DATETIME NOT NULL, "txid" INTEGER NOT NULL)')
                db.execute_sql('CREATE INDEX "core_change_at" ON "core_change" ("at")')
                db.execute_sql('CREATE INDEX "core_change_txid_id" ON "core_change" ("txid", "id")')
                db.execute_sql("INSERT INTO core_change SELECT * FROM old_change")
                db.execute_sql("DROP TABLE old_change")
        MigrationHistory.delete().where(MigrationHistory.name == "0014_change_ids_never_reused").execute()
        assert "core: applied 0014_change_ids_never_reused" in upgrade(app.extensions["crm_portal"])
        assert _rows("core_change") == rows
        if not is_postgres():
            sql = db.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'core_change'").fetchone()[0]
            assert "AUTOINCREMENT" in sql
            assert {i.name for i in db.get_indexes("core_change")} >= {"core_change_at", "core_change_txid_id"}
        with db.atomic():
            ChangeEntry.delete().execute()
            new = ChangeEntry.create(type="contacts", record_id=1, change="upsert")
        assert new.id > max(row[0] for row in rows)


# --- the command ----------------------------------------------------------------------------------
def _backups(app) -> list[Path]:
    folder = Path(app.instance_path) / "backups"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_check_and_dry_run_change_nothing_and_say_what_is_pending(parent_app):
    _with_steps(parent_app, Migration("0001_code", _code_column))
    runner = parent_app.test_cli_runner()
    with parent_app.app_context(), db.connection_context():
        before = _dump()
    check = runner.invoke(args=["migrate", "--check"])
    assert check.exit_code == 1, check.output
    assert "mig: pending 0001_code" in check.output and "schema changes pending" in check.output
    dry = runner.invoke(args=["migrate", "--dry-run"])
    assert dry.exit_code == 0 and "mig: would apply 0001_code" in dry.output
    with parent_app.app_context(), db.connection_context():
        assert _dump() == before
    assert _backups(parent_app) == []

    done = runner.invoke(args=["migrate", "--no-backup"])
    assert done.exit_code == 0 and "mig: applied 0001_code" in done.output
    assert _backups(parent_app) == []
    check = runner.invoke(args=["migrate", "--check"])
    assert check.exit_code == 0 and "schema up to date" in check.output
    assert "deploy scripts" in runner.invoke(args=["migrate", "--help"]).output


def test_a_failing_step_is_reported_by_the_command(parent_app):
    _Boom.armed = True
    _with_steps(parent_app, Migration("0001_code", lambda m: [*_code_column(m), _Boom()]))
    result = parent_app.test_cli_runner().invoke(args=["migrate", "--no-backup"])
    assert result.exit_code == 1
    assert "mig: step 0001_code failed and changed nothing: half-way" in result.output
    assert "run migrate again" in result.output


@sqlite_only
def test_migrate_backs_up_before_the_first_pending_step_only(parent_app):
    runner = parent_app.test_cli_runner()
    assert runner.invoke(args=["migrate"]).exit_code == 0  # nothing pending: no backup
    assert _backups(parent_app) == []

    _with_steps(parent_app, Migration("0001_code", _code_column))
    result = runner.invoke(args=["migrate"])
    assert result.exit_code == 0, result.output
    [backup] = _backups(parent_app)
    assert backup.name.endswith("Z-before-migrate.sqlite3")
    assert f"backup of the database before migrating: {backup}" in result.output
    copy = sqlite3.connect(backup)
    try:  # the database as it was before the step
        assert [c[1] for c in copy.execute("PRAGMA table_info(mig_parent)")] == ["id", "name"]
        assert copy.execute("SELECT COUNT(*) FROM mig_child_cascade").fetchone() == (3,)
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        copy.close()


@sqlite_only
def test_no_step_runs_when_the_backup_cannot_be_taken(parent_app):
    _with_steps(parent_app, Migration("0001_code", _code_column))
    Path(parent_app.instance_path).mkdir(parents=True, exist_ok=True)
    (Path(parent_app.instance_path) / "backups").write_text("not a folder")
    result = parent_app.test_cli_runner().invoke(args=["migrate"])
    assert result.exit_code == 1 and "could not back up the database" in result.output
    with parent_app.app_context(), db.connection_context():
        assert [name for _o, name in plan(parent_app.extensions["crm_portal"]).run] == ["0001_code"]


@sqlite_only
def test_a_fresh_install_is_not_backed_up_and_records_its_steps(tmp_path):
    from crm_portal import create_app
    from crm_portal.testing import TEST_CONFIG

    app = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
                      "INSTANCE_PATH": str(tmp_path / "instance")})
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["migrate", "--dry-run"])
    assert "core: would create core_change" in dry.output and "core: would record 0014_change_ids_never_reused" \
        in dry.output
    assert not (tmp_path / "instance" / "backups").exists()
    assert runner.invoke(args=["migrate"]).exit_code == 0
    assert not (tmp_path / "instance" / "backups").exists()
    with app.app_context(), db.connection_context():
        assert not plan(app.extensions["crm_portal"]).pending
    close_all()
