"""Test applications on a fresh database, fast: the schema and the demo data are built once per
session and copied into each test.

SQLite: every test has its own database file. The first application of a kind (its schema: the
host's and its modules' tables) builds the file; the next ones get a copy of it. The demo data is
kept the same way (the file with the data, and the files the data refers to in the instance
folder), so a test with ``demo`` costs a file copy instead of loading the data (argon2 hashes
included).

PostgreSQL (``CRM_PORTAL_TEST_DATABASE_URL``): every test runs on that one database. The first
test in a run drops every table; each test then empties the tables (``DELETE``, sequences
restarted) and the demo data is restored from a copy taken the first time (``COPY``, sequences
included).

Every test starts an application, and werkzeug's compiled URL builders are shared between them
(see :func:`_reused_url_builders`): that was most of an application's start-up time.

Either way the data is really committed in a real database: a server in another process (live
server and concurrency tests) sees it.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask

from .client import CsrfClient


def _worker_database(url: str | None) -> str | None:
    """Under pytest-xdist every worker process gets a database of its own, named after the
    configured one (``test`` → ``test_gw0``), created the first time it is used."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_{worker}"))


#: The PostgreSQL database the tests run on, or None for SQLite.
PG_URL = _worker_database(os.environ.get("CRM_PORTAL_TEST_DATABASE_URL") or None)

#: The settings of every test application (a test passes its own on top).
TEST_CONFIG: dict[str, Any] = {
    "TESTING": True,
    "SECRET_KEY": "test-secret",
    "SERVER_NAME": "portal.test",
    "BABEL_DEFAULT_LOCALE": "en",
}

# Settings the demo data depends on besides the schema (the profiles and buttons it installs).
_DEMO_SETTINGS = ("PROFILES_FOLDER", "BUTTONS_FOLDER")


def database_url(tmp_path: Path) -> str:
    """The test database: PostgreSQL when configured, else a SQLite file in ``tmp_path``."""
    return PG_URL or f"sqlite:///{tmp_path / 'test.db'}"


@dataclass
class _Snapshot:
    """What a database looked like once: a SQLite file or PostgreSQL table contents, and the
    instance folder's files."""

    path: Path
    tables: list[tuple[str, bytes]] = field(default_factory=list)  # (table (columns), COPY data)
    sequences: list[tuple[str, int]] = field(default_factory=list)


class _Store:
    """The session's snapshots, by schema (and demo settings), in a temporary folder."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self.schemas: dict[str, _Snapshot] = {}
        self.demos: dict[str, _Snapshot] = {}
        self.pg_dropped = False
        self.pg_created = False

    def folder(self, name: str) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="crm-portal-templates-"))
            atexit.register(shutil.rmtree, self._root, True)
        path = self._root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


_store = _Store()


def _schema_key(app: Flask) -> str:
    """Identifies a schema: the DDL of every table and index, and the recorded schema steps."""
    from crm_portal.migrations import CORE_MIGRATIONS
    from crm_portal.models import CORE_MODELS

    owners = [("core", CORE_MODELS, CORE_MIGRATIONS)]
    owners += [(m.name, list(m.models), list(m.migrations)) for m in app.extensions["crm_portal"].modules.values()]
    digest = hashlib.sha256(app.config["DATABASE_URL"].split(":", 1)[0].encode())
    for owner, models, migrations in owners:
        digest.update(f"|{owner}|".encode())
        for model in models:
            schema = model._schema  # type: ignore[attr-defined]  # peewee's schema manager (no stub)
            digest.update(repr(schema._create_table().query()).encode())
            for index in schema._create_indexes():
                digest.update(repr(index.query()).encode())
        digest.update(repr([m.name for m in migrations]).encode())
    return digest.hexdigest()


def _demo_key(app: Flask) -> str:
    settings = repr([(name, app.config.get(name)) for name in _DEMO_SETTINGS])
    return hashlib.sha256((_schema_key(app) + settings).encode()).hexdigest()


def _sqlite_path(app: Flask) -> Path | None:
    """The SQLite file of the test database, or None on PostgreSQL."""
    from crm_portal.db import db, is_postgres

    if is_postgres():
        return None
    name = db.obj.database
    if name in ("", ":memory:") or name.startswith("file:"):
        # Each connection would see its own empty database: the kit closes and reopens them.
        raise ValueError(f"the testing kit needs a SQLite file or PostgreSQL, not {app.config['DATABASE_URL']!r}")
    return Path(name)


def _close() -> None:
    """Close every pooled connection, of this application and of earlier ones: none may stay
    open on a file about to be replaced."""
    from crm_portal.db import close_all

    close_all()


def _checkpoint_and_close() -> None:
    """Write SQLite's WAL into the main file, so that the file alone holds everything."""
    from crm_portal.db import db

    with db.connection_context():
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    _close()


def _put_file(source: Path, target: Path) -> None:
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)


def _copy_tree(source: Path, target: Path) -> None:
    if source.exists():
        shutil.copytree(source, target, dirs_exist_ok=True)


# --- PostgreSQL ------------------------------------------------------------------------------

def _pg_tables() -> list[str]:
    from crm_portal.db import db

    return [t for t in db.obj.get_tables() if t != "core_migration_history"]


def _create_pg_database() -> None:
    """Create the worker's database (see :func:`_worker_database`) if it does not exist yet, from
    a connection to the configured one."""
    configured = os.environ.get("CRM_PORTAL_TEST_DATABASE_URL") or ""
    if not PG_URL or PG_URL == configured or _store.pg_created:
        return
    _store.pg_created = True
    import psycopg2

    name = urlsplit(PG_URL).path.lstrip("/")
    connection = psycopg2.connect(configured)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def _pg_empty(app: Flask) -> None:
    """Empty every table but the schema history (the tables stay, so their steps stay applied) and
    restart every sequence. The first time in a run, start from an empty schema so no table of an
    older run lingers.

    ``DELETE`` in foreign-key order, in one round trip: on tables of a few rows it is many times
    faster than ``TRUNCATE``, which makes new files for every table."""
    from crm_portal.db import db

    if not _store.pg_dropped:
        db.execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        _store.pg_dropped = True
        return
    tables = list(reversed(_pg_load_order(app)))
    if tables:
        db.execute_sql("".join(f'DELETE FROM "{t}";' for t in tables)
                       + _RESTART_SEQUENCES)


# The sequences of the tables a test may fill (serial and identity columns): not the schema
# history's, which lives on from test to test.
# (OFFSET 0 keeps the sequence functions away from rows that are not sequences.)
_OWNED_SEQUENCES = (
    "SELECT {select} FROM (SELECT s.oid, s.relname FROM pg_class s"
    " JOIN pg_namespace n ON n.oid = s.relnamespace"
    " JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.deptype IN ('a', 'i')"
    " JOIN pg_class t ON t.oid = d.refobjid"
    " WHERE s.relkind = 'S' AND n.nspname = current_schema() AND t.relname <> 'core_migration_history'"
    " OFFSET 0) s WHERE true")
#: Every sequence of an emptied table starts again at 1.
_RESTART_SEQUENCES = _OWNED_SEQUENCES.format(select="setval(s.oid, 1, false)")


def _pg_load_order(app: Flask) -> list[str]:
    """Tables in foreign-key order (referenced tables first), those of no model last."""
    import peewee as pw

    from crm_portal.models import CORE_MODELS

    models = list(CORE_MODELS) + [m for mod in app.extensions["crm_portal"].modules.values() for m in mod.models]
    ordered = [m._meta.table_name for m in pw.sort_models(models)]  # type: ignore[attr-defined]  # (no stub)
    existing = _pg_tables()
    return [t for t in ordered if t in existing] + sorted(set(existing) - set(ordered))


def _pg_dump(app: Flask, snapshot: _Snapshot) -> None:
    from crm_portal.cache import TABLE as CACHE_VERSIONS
    from crm_portal.db import db

    cursor = db.obj.connection().cursor()
    for table in _pg_load_order(app):
        if table == CACHE_VERSIONS:  # written by the schema set-up; restored rows give new versions
            continue
        # Columns by name: a test that rebuilds a table (schema steps) changes their order.
        target = f'"{table}" (' + ", ".join(f'"{c.name}"' for c in db.obj.get_columns(table)) + ")"
        buffer = io.BytesIO()
        cursor.copy_expert(f"COPY {target} TO STDOUT", buffer)
        if buffer.tell():
            snapshot.tables.append((target, buffer.getvalue()))
    cursor.execute(_OWNED_SEQUENCES.format(select="quote_ident(s.relname), pg_sequence_last_value(s.oid)")
                   + " AND pg_sequence_last_value(s.oid) IS NOT NULL")
    snapshot.sequences = list(cursor.fetchall())


def _pg_restore(snapshot: _Snapshot) -> None:
    from crm_portal.db import db

    with db.atomic():
        cursor = db.obj.connection().cursor()
        for target, data in snapshot.tables:
            cursor.copy_expert(f"COPY {target} FROM STDIN", io.BytesIO(data))
        for name, value in snapshot.sequences:
            cursor.execute("SELECT setval(%s, %s)", (name, value))


# --- the application ---------------------------------------------------------------------------

#: URL builders werkzeug compiled for earlier test applications, by what they are made of.
_BUILDERS: dict[tuple, Any] = {}


@contextlib.contextmanager
def _reused_url_builders() -> Iterator[None]:
    """Share werkzeug's compiled URL builders between the session's applications.

    Compiling the Python code that builds the URLs of a rule is most of the time an application
    takes to start (some 270 rules, two builders each), and every test starts one. A builder
    depends only on the rule's parsed parts, the converted defaults and ``append_unknown`` (the
    rule's converters are reached through its ``self``), so one compiled for an identical rule of
    an earlier application serves as is. Applied only while a test application is created; with a
    werkzeug that compiles differently nothing is shared.
    """
    from werkzeug.routing.rules import Rule

    original = getattr(Rule, "_compile_builder", None)
    if original is None:
        yield
        return

    def compile_builder(self: Any, append_unknown: bool = True) -> Any:
        try:
            defaults = self.defaults or {}
            converted = tuple((k, self._converters[k].to_url(defaults[k]))
                              for k in sorted(defaults) if k in self._converters)
            key = (self.rule, append_unknown, tuple(self._trace), tuple(sorted(defaults)), converted)
            hash(key)
        except Exception:  # anything unusual: compile as werkzeug does
            return original(self, append_unknown)
        builder = _BUILDERS.get(key)
        if builder is None:
            builder = _BUILDERS[key] = original(self, append_unknown)
        return builder

    setattr(Rule, "_compile_builder", compile_builder)  # noqa: B010 - a method swapped for the session
    try:
        yield
    finally:
        setattr(Rule, "_compile_builder", original)  # noqa: B010


def make_app(tmp_path: Path, **overrides: Any) -> Flask:
    """A configured application on a fresh database with its schema ready and no rows.

    ``overrides`` are settings on top of the test configuration (``SELF_REGISTRATION=True`` …).
    The database is ``tmp_path/test.db`` (or the PostgreSQL test database) and the instance
    folder ``tmp_path/instance``.
    """
    from crm_portal import create_app
    from crm_portal.cache import caches
    from crm_portal.db import db
    from crm_portal.migrations import upgrade

    Path(tmp_path).mkdir(parents=True, exist_ok=True)
    _close()  # earlier applications' pooled connections: none outlives its test
    for cache in caches().values():  # nor what their requests kept in the process
        cache.clear()
    _create_pg_database()
    config = {**TEST_CONFIG, "DATABASE_URL": database_url(tmp_path), "INSTANCE_PATH": str(tmp_path / "instance")}
    config.update(overrides)
    with _reused_url_builders():
        app = create_app(config)
    app.test_client_class = CsrfClient
    path = _sqlite_path(app)
    key = _schema_key(app)
    template = _store.schemas.get(key)
    if path is not None and template is not None:
        _put_file(template.path, path)
    with db.connection_context():
        if path is None:
            _pg_empty(app)
        upgrade(app.extensions["crm_portal"])
    if path is not None and template is None:
        _checkpoint_and_close()
        snapshot = _Snapshot(_store.folder(f"schema-{key[:16]}") / "test.db")
        shutil.copyfile(path, snapshot.path)
        _store.schemas[key] = snapshot
    return app


def load_demo(app: Flask) -> None:
    """Put the demo data set (crm_portal/demo.py and every module's ``demo_data``) in the test
    database of an application made by :func:`make_app` whose tables are still empty."""
    key = _demo_key(app)
    snapshot = _store.demos.get(key)
    instance = Path(app.instance_path)
    path = _sqlite_path(app)
    if snapshot is not None:
        _restore_demo(snapshot, path, instance)
        return
    from crm_portal.db import db
    from crm_portal.demo import load_demo as load

    with app.app_context(), db.connection_context():
        load(app)
    folder = _store.folder(f"demo-{key[:16]}")
    snapshot = _Snapshot(folder / "test.db")
    if path is not None:
        _checkpoint_and_close()
        shutil.copyfile(path, snapshot.path)
    else:
        with db.connection_context():
            _pg_dump(app, snapshot)
    _copy_tree(instance, folder / "instance")
    _store.demos[key] = snapshot


def _restore_demo(snapshot: _Snapshot, path: Path | None, instance: Path) -> None:
    from crm_portal.db import db

    if path is not None:
        _close()
        _put_file(snapshot.path, path)
    else:
        with db.connection_context():
            _pg_restore(snapshot)
    _copy_tree(snapshot.path.parent / "instance", instance)


def reset_demo(app: Flask) -> dict[str, Any]:
    """Put the test database of ``app`` back to the demo data set, whatever a test changed, and
    return :func:`demo_records`."""
    from crm_portal.db import db

    path = _sqlite_path(app)
    if path is None:
        with db.connection_context():
            _pg_empty(app)
    elif _demo_key(app) not in _store.demos:
        _close()
        _put_file(_store.schemas[_schema_key(app)].path, path)
    load_demo(app)
    return demo_records(app)


def demo_records(app: Flask) -> dict[str, Any]:
    """The demo contacts and companies by short key: ``{"contacts": {"anna": …, "bruno": …},
    "companies": {"acme": …, "globex": …}}``."""
    from crm_portal.db import db
    from crm_portal.models import Company, Contact

    with app.app_context(), db.connection_context():
        contacts = {c.email.split("@")[0]: c for c in Contact.select()}
        companies = {c.name.split()[0].lower(): c for c in Company.select()}
    return {"contacts": contacts, "companies": companies}
