"""The benchmark databases on PostgreSQL: a copy of the SQLite database ``bench/tickets.py`` builds.

``ensure(server_url, sqlite_path, total)`` gives the URL of ``<database>_<total>`` on the server of
``server_url`` (``CRM_PORTAL_BENCH_PG``, e.g. postgresql://127.0.0.1:5432/bench_ratio → database
``bench_ratio_10000``), creating it the first time: the portal's schema (its own migrations, so the
same indexes as production), then every table's rows streamed from the SQLite file with COPY (ids
kept, sequences moved past them, foreign keys not re-checked row by row), then ANALYZE. Each size
has its own database, so the 10k and 1M runs of one benchmark need no rebuild between them.
"""
from __future__ import annotations

import io
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CHUNK = 50_000


def database_url(server_url: str, total: int) -> str:
    """The URL of the database holding ``total`` tickets, beside the one ``server_url`` names."""
    parts = urlsplit(server_url)
    name = (parts.path.strip("/") or "bench_ratio") + f"_{total}"
    return urlunsplit(parts._replace(path=f"/{name}"))


def _connect(url: str, dbname: str | None = None):
    import psycopg2

    parts = urlsplit(url)
    return psycopg2.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                            user=parts.username or "postgres", password=parts.password,
                            dbname=dbname or parts.path.strip("/"))


def _ticket_count(url: str) -> int | None:
    """Tickets in the database at ``url``; None when it does not exist or has no tickets table."""
    import psycopg2

    try:
        conn = _connect(url)
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('tickets_ticket') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None
            cur.execute("SELECT COUNT(*) FROM tickets_ticket")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _text(value: Any) -> str:
    """One field in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    text = str(value)
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r"))


def _chunks(rows: Iterable[tuple], size: int = CHUNK) -> Iterator[io.StringIO]:
    buffer, n = io.StringIO(), 0
    for row in rows:
        buffer.write("\t".join(_text(v) for v in row) + "\n")
        n += 1
        if n == size:
            buffer.seek(0)
            yield buffer
            buffer, n = io.StringIO(), 0
    if n:
        buffer.seek(0)
        yield buffer


def create_schema(url: str) -> None:
    """The portal's tables and indexes, through its own migrations (as ``crm-portal init`` does;
    on an existing database, the steps it lacks, as ``crm-portal migrate`` does)."""
    from crm_portal import create_app
    from crm_portal.db import db
    from crm_portal.migrations import upgrade

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "SERVER_NAME": None,
                      "INSTANCE_PATH": str(HERE / "data" / "instance")})
    with app.app_context(), db.connection_context():
        upgrade(app.extensions["crm_portal"])


def copy_rows(sqlite_path: Path, url: str) -> None:
    """Every row of the SQLite database into the (empty-schema) PostgreSQL one, ids kept."""
    source = sqlite3.connect(sqlite_path)
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name, column_name FROM information_schema.columns "
                        "WHERE table_schema = 'public'")
            pg_columns: dict[str, set[str]] = {}
            for table, column in cur.fetchall():
                pg_columns.setdefault(table, set()).add(column)
            tables = [t for (t,) in source.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                if t in pg_columns]
            cur.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
            # Rows come from a consistent database: skip the per-row foreign-key triggers.
            cur.execute("SET session_replication_role = replica")
            for table in tables:
                columns = [r[1] for r in source.execute(f'PRAGMA table_info("{table}")') if r[1] in pg_columns[table]]
                names = ", ".join(f'"{c}"' for c in columns)
                rows = source.execute(f'SELECT {names} FROM "{table}"')
                for chunk in _chunks(rows):
                    cur.copy_expert(f'COPY "{table}" ({names}) FROM STDIN', chunk)
                if "id" in columns:
                    cur.execute(f"SELECT pg_get_serial_sequence('\"{table}\"', 'id')")
                    sequence = cur.fetchone()[0]
                    if sequence:
                        cur.execute(f'SELECT setval(%s, COALESCE((SELECT MAX(id) FROM "{table}"), 0) + 1, false)',
                                    (sequence,))
            cur.execute("SET session_replication_role = DEFAULT")
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
    finally:
        conn.close()
        source.close()


def ensure(server_url: str, sqlite_path: Path, total: int) -> str:
    """The URL of a PostgreSQL copy of ``sqlite_path`` (``total`` tickets), built if missing."""
    url = database_url(server_url, total)
    if _ticket_count(url) == total:
        return url
    started = time.perf_counter()
    name = urlsplit(url).path.strip("/")
    admin = _connect(server_url, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    print(f"copying {sqlite_path.name} into PostgreSQL database {name} …", flush=True)
    create_schema(url)
    copy_rows(sqlite_path, url)
    print(f"built {name} in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def drop(server_url: str, total: int) -> None:
    """Remove the database of ``total`` tickets (the smoke test's tiny one), ending the sessions
    the measured applications still hold on it (their connection pools; PostgreSQL 13 or later)."""
    from crm_portal.db import close_all

    close_all()
    name = urlsplit(database_url(server_url, total)).path.strip("/")
    admin = _connect(server_url, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()
