"""Upgrades from every earlier release: the stored instance of each release (tests/fixtures/releases/,
see its README) is upgraded to the current code with ``crm-portal migrate`` as docs/operations.md
says, and must keep every value it had.

For each release folder, on SQLite and (with ``CRM_PORTAL_TEST_DATABASE_URL``) on PostgreSQL:

1. the stored instance is copied to a temporary folder (the PostgreSQL dump restored into a database
   of the test's own, dropped afterwards);
2. every table and column of the old schema is read: rows by primary key, a content hash per column;
3. ``crm-portal migrate`` runs in a subprocess with ``CRM_PORTAL_INSTANCE_PATH`` set, then
   ``crm-portal modules``: every module the old instance had is enabled, none in error;
4. every old table, column and row must still be there with the same value (new tables and columns
   may appear), and every uploaded file has the same checksum;
5. a second ``migrate`` has nothing to do and changes nothing;
6. the current code serves the upgraded instance: a customer sees her old tickets and downloads a
   stored attachment byte for byte; the staff admin sees the tickets queue.

Full-text index data (SQLite FTS5 tables, PostgreSQL ``tsvector`` columns) is derived from the
articles and rebuilt by schema steps: only which rows it covers is compared.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from markupsafe import escape

from crm_portal.testing import PG_URL, CsrfClient, login, staff_login
from crm_portal.testing.database import TEST_CONFIG

RELEASES = Path(__file__).parent / "fixtures" / "releases"
VERSIONS = sorted(p.name for p in RELEASES.iterdir() if (p / "MANIFEST.json").is_file())
CUSTOMER = "anna@acme.example"
MIGRATE_TIMEOUT = 300
#: How many changed rows of a column a failure lists.
SHOWN_ROWS = 5


# --- reading a database --------------------------------------------------------------------------

@dataclass
class Table:
    """One table as read: its columns, and its rows by primary key (values made comparable)."""

    columns: list[str]
    rows: dict[tuple, tuple] = field(default_factory=dict)

    def column_hash(self, column: str) -> str:
        index = self.columns.index(column)
        digest = hashlib.sha256()
        for key in sorted(self.rows, key=repr):
            digest.update(repr((key, self.rows[key][index])).encode())
        return digest.hexdigest()


def _comparable(value: Any) -> Any:
    """A value as both reads must agree on it: numbers of any type (bool, int, float, Decimal) as
    one normalised decimal text, dates and times as ISO text, bytes as hex."""
    if isinstance(value, (bool, int, float, Decimal)):
        return ("number", format(Decimal(str(int(value) if isinstance(value, bool) else value)).normalize(), "f"))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return ("time", value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat())
    if isinstance(value, (bytes, memoryview)):
        return ("bytes", bytes(value).hex())
    return value


def _keyed(columns: list[str], key_columns: list[str], rows: list[tuple]) -> dict[tuple, tuple]:
    values = [tuple(_comparable(v) for v in row) for row in rows]
    if not key_columns:  # no primary key: the rows in order are all there is
        return {(n,): row for n, row in enumerate(sorted(values, key=repr))}
    positions = [columns.index(c) for c in key_columns]
    return {tuple(row[p] for p in positions): row for row in values}


def read_sqlite(path: Path) -> dict[str, Table]:
    """Every table of a SQLite file; an FTS5 table by its rowids only, its shadow tables not at all."""
    connection = sqlite3.connect(path)
    try:
        found = connection.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                   "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        virtual = [name for name, sql in found if (sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
        tables: dict[str, Table] = {}
        for name, _sql in found:
            if any(name.startswith(f"{v}_") for v in virtual):
                continue  # FTS5's own storage
            if name in virtual:
                rowids = connection.execute(f'SELECT rowid FROM "{name}"').fetchall()
                tables[name] = Table(["rowid"], _keyed(["rowid"], ["rowid"], rowids))
                continue
            info = connection.execute(f'PRAGMA table_info("{name}")').fetchall()
            columns = [row[1] for row in info]
            keys = [row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows = connection.execute(f'SELECT {quoted} FROM "{name}"').fetchall()
            tables[name] = Table(columns, _keyed(columns, keys, rows))
        return tables
    finally:
        connection.close()


def read_postgres(url: str) -> dict[str, Table]:
    """Every table of the public schema; ``tsvector`` columns (search index data) left out."""
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                           "AND table_type = 'BASE TABLE' ORDER BY table_name")
            names = [row[0] for row in cursor.fetchall()]
            tables: dict[str, Table] = {}
            for name in names:
                cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                               "AND table_name = %s AND udt_name <> 'tsvector' ORDER BY ordinal_position", (name,))
                columns = [row[0] for row in cursor.fetchall()]
                cursor.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                               "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                               "ORDER BY array_position(i.indkey, a.attnum)", (f'public."{name}"',))
                keys = [row[0] for row in cursor.fetchall()]
                cursor.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in columns)} FROM public."{name}"')
                tables[name] = Table(columns, _keyed(columns, keys, cursor.fetchall()))
        return tables
    finally:
        connection.rollback()
        connection.close()


def _order(key: tuple) -> tuple:
    """Keys in their natural order (2 before 10)."""
    return tuple((0, Decimal(v[1]), "") if isinstance(v, tuple) and v[:1] == ("number",) else (1, Decimal(0), repr(v))
                 for v in key)


def _show(value: Any) -> str:
    """A compared value (or a key: a tuple of them) as a failure lists it."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] in ("number", "time", "bytes"):
        return str(value[1])
    if isinstance(value, tuple):
        return ",".join(_show(v) for v in value)
    return repr(value)


def differences(old: dict[str, Table], new: dict[str, Table]) -> list[str]:
    """What of ``old`` is not in ``new`` exactly as it was: missing tables, columns and rows, and
    changed values (table, column, primary key, old → new). New tables, columns and rows are fine."""
    problems: list[str] = []
    for name, before in sorted(old.items()):
        after = new.get(name)
        if after is None:
            problems.append(f"{name}: table gone ({len(before.rows)} rows)")
            continue
        gone_columns = [c for c in before.columns if c not in after.columns]
        if gone_columns:
            problems.append(f"{name}: columns gone: {', '.join(gone_columns)}")
        gone_rows = [k for k in before.rows if k not in after.rows]
        if gone_rows:
            problems.append(f"{name}: {len(gone_rows)} of {len(before.rows)} rows gone, keys "
                            f"{' '.join(_show(k) for k in sorted(gone_rows, key=_order)[:SHOWN_ROWS * 4])}"
                            + (" …" if len(gone_rows) > SHOWN_ROWS * 4 else ""))
        kept = [k for k in before.rows if k in after.rows]
        for column in before.columns:
            if column in gone_columns:
                continue
            i, j = before.columns.index(column), after.columns.index(column)
            changed = [(k, before.rows[k][i], after.rows[k][j]) for k in sorted(kept, key=_order)
                       if before.rows[k][i] != after.rows[k][j]]
            if changed:
                shown = "; ".join(f"{_show(k)}: {_show(a)} -> {_show(b)}" for k, a, b in changed[:SHOWN_ROWS])
                problems.append(f"{name}.{column}: {len(changed)} of {len(kept)} rows changed "
                                f"(hash {before.column_hash(column)[:12]} -> {after.column_hash(column)[:12]}): "
                                f"{shown}")
    return problems


def file_sums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_files_kept(folder: Path, stored: dict[str, str]) -> None:
    """Every stored upload is still in ``folder`` with the same checksum."""
    now = file_sums(folder)
    changed = [f"{name}: {'gone' if name not in now else 'changed'}" for name, digest in stored.items()
               if now.get(name) != digest]
    assert not changed, "uploaded files lost or changed: " + "; ".join(changed)


# --- the stored instance, ready to upgrade --------------------------------------------------------

@dataclass
class Instance:
    """A copy of a stored instance: its folder, and its database URL."""

    release: str
    backend: str
    path: Path
    database_url: str

    def read(self) -> dict[str, Table]:
        if self.backend == "sqlite":
            return read_sqlite(self.path / "crm_portal.db")
        return read_postgres(self.database_url)


def _own_database(release: str) -> str:
    """A database of this test's own on the test server, named after the worker's test database."""
    assert PG_URL
    parts = urlsplit(PG_URL)
    name = f"{parts.path.strip('/')}_upgrade_{release.replace('.', '_')}"
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin_sql(url: str, *statements: str) -> None:
    """Run statements on the test server, outside a transaction (CREATE/DROP DATABASE)."""
    import psycopg2

    server = os.environ.get("CRM_PORTAL_TEST_DATABASE_URL") or url
    connection = psycopg2.connect(server)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


@pytest.fixture
def instance(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Instance]:
    release, backend = request.param
    stored = RELEASES / release / backend
    folder = tmp_path / "instance"
    folder.mkdir()
    for name in ("config.toml", "crm_portal.db"):
        if (stored / name).is_file():
            shutil.copyfile(stored / name, folder / name)
    shutil.copytree(stored / "uploads", folder / "uploads")
    if backend == "sqlite":
        yield Instance(release, backend, folder, f"sqlite:///{folder / 'crm_portal.db'}")
        return
    url = _own_database(release)
    name = urlsplit(url).path.strip("/")
    _admin_sql(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    try:
        restore = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url,
                                  "-f", str(stored / "dump.sql")], capture_output=True, text=True, timeout=120)
        assert restore.returncode == 0, f"restoring {release}'s dump failed:\n{restore.stderr}"
        # The database an installation names in its configuration.
        with open(folder / "config.toml", "a") as config:
            config.write(f"\nDATABASE_URL = {json.dumps(url)}\n")
        yield Instance(release, backend, folder, url)
    finally:
        from crm_portal.db import close_all

        close_all()
        _admin_sql(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_cli(instance: Instance, *args: str) -> subprocess.CompletedProcess[str]:
    """``crm-portal <args>`` of the installed package, on the instance, as an operator runs it."""
    command = Path(sys.executable).with_name("crm-portal")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_PORTAL_") and k != "PYTEST_XDIST_WORKER"}
    env["CRM_PORTAL_INSTANCE_PATH"] = str(instance.path)
    return subprocess.run([str(command if command.exists() else "crm-portal"), *args], env=env,
                          capture_output=True, text=True, timeout=MIGRATE_TIMEOUT)


def _serve(instance: Instance) -> Any:
    """The current application on the upgraded instance, as the tests' applications are made."""
    from crm_portal import create_app
    from crm_portal.cache import caches
    from crm_portal.db import close_all

    close_all()
    for cache in caches().values():
        cache.clear()
    app = create_app({**TEST_CONFIG, "INSTANCE_PATH": str(instance.path), "DATABASE_URL": instance.database_url})
    app.test_client_class = CsrfClient
    return app


# --- the documented procedure ----------------------------------------------------------------------

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def documented_upgrade() -> list[list[str]]:
    """The ``crm-portal`` commands of the upgrade block of docs/operations.md, in order, as written
    (the wheel's installation and the service restart are the system's, not the portal's)."""
    section = OPERATIONS.read_text().split("### Upgrades", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines()
                if line.strip().startswith("crm-portal ")]
    return [words[1:] for words in commands]


def test_the_documented_upgrade_backs_up_checks_migrates_and_lists():
    assert documented_upgrade() == [["backup"], ["migrate", "--dry-run"], ["migrate"], ["modules"]]


# --- the test --------------------------------------------------------------------------------------

#: Every stored release, on SQLite and, when the tests have a PostgreSQL server, on PostgreSQL.
CASES = [case for release in VERSIONS for case in (
    pytest.param((release, "sqlite"), id=f"{release}-sqlite"),
    pytest.param((release, "postgresql"), id=f"{release}-postgresql", marks=pytest.mark.skipif(
        not PG_URL, reason="CRM_PORTAL_TEST_DATABASE_URL is not set")))]


@pytest.mark.parametrize("instance", CASES, indirect=True)
def test_upgrade_keeps_every_value_and_serves(instance: Instance) -> None:
    stored = RELEASES / instance.release
    manifest = json.loads((stored / "MANIFEST.json").read_text())
    prefix = f"{instance.backend}/"
    assert file_sums(stored / instance.backend) == {
        name[len(prefix):]: digest for name, digest in manifest["files"].items() if name.startswith(prefix)
    }, f"the stored instance of {instance.release} is not the one its MANIFEST.json lists"
    stored_files = file_sums(instance.path / "uploads")
    old = instance.read()
    assert old["tickets_ticket"].rows and old["tickets_attachment"].rows, "the stored instance has no tickets"

    assert run_cli(instance, "migrate", "--check").returncode == 1, "steps of this release should be pending"
    procedure = documented_upgrade()
    for args in procedure[:procedure.index(["migrate"])]:  # what the page runs before migrating
        done = run_cli(instance, *args)
        assert done.returncode == 0, f"crm-portal {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert differences(old, instance.read()) == [], "the commands before migrate changed the database"
    assert list((instance.path / "backups").glob("crm-portal-*.tar.gz")), "crm-portal backup wrote no archive"

    first = run_cli(instance, "migrate")
    after = instance.read()
    lost = differences(old, after)
    history = after["core_migration_history"]
    steps = [f"{row[history.columns.index('module')]} {row[history.columns.index('name')]}"
             for key, row in sorted(history.rows.items(), key=lambda item: _order(item[0]))
             if key not in old["core_migration_history"].rows]
    assert first.returncode == 0 and not lost, "\n".join([
        f"upgrading {instance.release} on {instance.backend}: migrate exited {first.returncode}",
        "values lost or changed:" if lost else "no value lost", *lost,
        f"schema steps recorded by this migrate: {', '.join(steps) or 'none'}",
        "--- stdout", first.stdout, "--- stderr (end)", *first.stderr.strip().splitlines()[-3:]])
    assert_files_kept(instance.path / "uploads", stored_files)

    modules = run_cli(instance, "modules")
    # name, version, state, source
    states = {words[0]: words[2] for words in (line.split() for line in modules.stdout.splitlines()
                                                if line and not line[0].isspace())}
    history = old["core_migration_history"]
    owners = {_column(history, row, "module") for row in history.rows.values()} - {"core"}
    assert modules.returncode == 0 and all(states.get(owner) == "enabled" for owner in owners), modules.stdout
    assert all(state == "enabled" for state in states.values()), modules.stdout

    upgraded = instance.read()
    assert run_cli(instance, "migrate", "--check").returncode == 0
    second = run_cli(instance, "migrate")
    assert second.returncode == 0 and second.stdout.strip() == "schema up to date", second.stdout + second.stderr
    assert differences(upgraded, instance.read()) == []
    assert set(instance.read()) == set(upgraded), "the second migrate created or dropped tables"

    _check_served(instance, old)
    assert_files_kept(instance.path / "uploads", stored_files)


def _column(table: Table, row: tuple, column: str) -> Any:
    value = row[table.columns.index(column)]
    return value[1] if isinstance(value, tuple) and value and value[0] in ("number", "time") else value


def _check_served(instance: Instance, old: dict[str, Table]) -> None:
    contacts, tickets, attachments = old["core_contact"], old["tickets_ticket"], old["tickets_attachment"]
    customer = next(row for row in contacts.rows.values() if _column(contacts, row, "email") == CUSTOMER)
    company = _column(contacts, customer, "company_id")
    theirs = sorted((row for row in tickets.rows.values() if _column(tickets, row, "company_id") == company),
                    key=lambda row: str(_column(tickets, row, "updated_at")), reverse=True)
    assert theirs, f"{CUSTOMER}'s company has no stored tickets"
    by_id = {int(_column(tickets, row, "id")): row for row in theirs}
    attachment = next(row for row in attachments.rows.values()
                      if int(_column(attachments, row, "ticket_id")) in by_id)
    ticket_id = int(_column(attachments, attachment, "ticket_id"))
    attachment_id = int(_column(attachments, attachment, "id"))
    stored_name = _column(attachments, attachment, "stored_name")

    app = _serve(instance)
    with app.test_request_context():
        from flask import url_for

        list_url = url_for("tickets.list")
        download_url = url_for("tickets.download", record_id=ticket_id, attachment_id=attachment_id)
        queue_url = url_for("tickets_queue.index_view")

    portal = app.test_client()
    login(portal, CUSTOMER)
    page = portal.get(list_url)
    assert page.status_code == 200
    assert str(escape(_column(tickets, theirs[0], "title"))) in page.text, "the newest stored ticket is not listed"
    download = portal.get(download_url)
    assert download.status_code == 200
    stored = RELEASES / instance.release / instance.backend / "uploads" / "tickets" / stored_name
    assert download.data == stored.read_bytes()

    admin = app.test_client()
    staff_login(admin)
    queue = admin.get(queue_url)
    assert queue.status_code == 200
    newest = max(tickets.rows.values(), key=lambda row: str(_column(tickets, row, "updated_at")))
    assert str(escape(_column(tickets, newest, "title"))) in queue.text, "the queue lacks the stored tickets"
