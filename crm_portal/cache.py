"""Per-process caches of what staff configure (profiles, the tickets workflow), kept in step on
every node and worker through one version row per cache.

Such data is read by nearly every request and changed a few times a year. A
:class:`ProcessCache` keeps it in the process; the tables it is built from carry database
triggers that give the cache's row in ``core_cache_version`` a new random version in the same
transaction as any change, whoever makes it (the admin, an import, a sync, plain SQL, another
node). Random rather than counted: a database restored from a copy, or another database served by
the same process, never meets a version under which the process keeps other data. A request reads
every version once, with one small query, and a cache whose version moved reloads.

Without its version row (a database whose triggers were never installed, see
:func:`install_triggers`) a cache does not cache: it loads on every call, as before.
Within one request the versions are those read first, so a request that changes a workflow and
then reads it again in the same request sees what it read before; the next request sees the change.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import threading
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

import peewee as pw
from flask import g, has_request_context

from .db import BaseModel, db

V = TypeVar("V")
TABLE = "core_cache_version"
_caches: dict[str, ProcessCache[Any]] = {}
_lock = threading.Lock()
_migrated: weakref.WeakSet[pw.Database] = weakref.WeakSet()  # databases known to have the version table
_NAME = re.compile(r"[a-z][a-z0-9_.]{0,99}")


class ProcessCache(Generic[V]):
    """Values loaded by ``load(key)`` and kept in the process until a row of ``tables`` changes.

    ``name`` names the version row ("tickets.workflow"); ``tables`` are the tables the values are
    built from. Cached values are shared by every thread and request of the process: treat them
    as read-only."""

    def __init__(self, name: str, tables: Sequence[str], load: Callable[[Hashable], V]) -> None:
        if not _NAME.fullmatch(name):  # written into the triggers' SQL
            raise ValueError(f"invalid cache name {name!r}")
        self.name, self.tables, self.load = name, tuple(tables), load
        self._state: tuple[int | None, dict[Hashable, V]] = (None, {})
        with _lock:
            _caches[name] = self

    def get(self, key: Hashable = None) -> V:
        """The value for ``key``: from the process when the version read by this request is the
        one it was loaded under, else loaded (and kept)."""
        version = request_versions().get(self.name)
        if version is None:
            return self.load(key)
        cached_version, values = self._state
        if cached_version != version:
            values = {}
            self._state = (version, values)
        try:
            return values[key]
        except KeyError:
            value = values[key] = self.load(key)
            return value

    def clear(self) -> None:
        """Forget every value of this process and the versions this request read: the next
        call loads (for code that changed the tables and reads them in the same request)."""
        self._state = (None, {})
        if has_request_context():
            g.pop("_cache_versions", None)


def request_versions() -> dict[str, int]:
    """Every cache's version, read once per request (``{}`` outside a request: no caching)."""
    if not has_request_context():
        return {}
    versions = g.get("_cache_versions")
    if versions is None:
        database = db.obj
        if database not in _migrated and not database.table_exists(TABLE):
            versions = g._cache_versions = {}  # not migrated yet: load everything, as before
            return versions
        _migrated.add(database)
        cursor = db.execute_sql(f"SELECT name, version FROM {TABLE}")
        versions = g._cache_versions = dict(cursor.fetchall())
    return versions


def caches() -> dict[str, ProcessCache[Any]]:
    """The process's caches by name."""
    return dict(_caches)


class CacheVersion(BaseModel):
    """One row per cache: bumped by the triggers on the cache's tables."""

    name = pw.CharField(max_length=100, primary_key=True)
    version = pw.BigIntegerField(default=0)

    class Meta:
        table_name = TABLE


def _trigger_name(cache: str, table: str) -> str:
    """Unique per cache and table, within PostgreSQL's 63 characters."""
    name = f"cache_{cache.replace('.', '_')}_{table}"
    return name if len(name) <= 55 else f"{name[:46]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def install_triggers(database: pw.Database) -> list[str]:
    """Create the version row and the triggers of every registered cache (idempotent; run by
    ``crm-portal migrate`` after the schema steps). Returns a line per cache installed."""
    lines: list[str] = []
    postgres = isinstance(database, pw.PostgresqlDatabase)
    existing = set(database.get_tables())
    with database.atomic():
        database.create_tables([CacheVersion], safe=True)
        known = {row.name for row in CacheVersion.select(CacheVersion.name)}
        if postgres:
            database.execute_sql(
                f"CREATE OR REPLACE FUNCTION {TABLE}_bump() RETURNS trigger AS $$ BEGIN "
                f"UPDATE {TABLE} SET version = (random() * 4.6e18)::bigint WHERE name = TG_ARGV[0]; RETURN NULL; "
                "END $$ LANGUAGE plpgsql")
        for cache in caches().values():
            tables = [table for table in cache.tables if table in existing]
            if len(tables) != len(cache.tables):
                continue  # a table is missing (its module is not installed yet): no caching
            for table in tables:
                trigger = _trigger_name(cache.name, table)
                if postgres:
                    database.execute_sql(
                        f'CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE '
                        f"OR TRUNCATE ON \"{table}\" FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_bump('{cache.name}')")
                    continue
                for event in ("INSERT", "UPDATE", "DELETE"):
                    database.execute_sql(
                        f'CREATE TRIGGER IF NOT EXISTS {trigger}_{event.lower()} AFTER {event} '
                        f'ON "{table}" BEGIN UPDATE {TABLE} SET version = random() '
                        f"WHERE name = '{cache.name}'; END")
            if cache.name not in known:
                CacheVersion.insert(name=cache.name, version=secrets.randbits(62)).execute()
                lines.append(f"core: cache {cache.name} follows {', '.join(tables)}")
    _migrated.add(database)
    return lines
