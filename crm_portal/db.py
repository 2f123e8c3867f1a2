"""Database plumbing: one deferred peewee database shared by the host and every module.

SQLite is the embedded default and PostgreSQL the scale-out database; both are reached through
``DATABASE_URL`` (``playhouse.db_url``). The proxy is bound in :func:`init_app`, so models can be
declared at import time, before any configuration exists.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import peewee
from flask import Flask, g, request
from playhouse.db_url import connect, register_database

log = logging.getLogger("crm_portal.db")
T = TypeVar("T")


class PortalDatabaseProxy(peewee.DatabaseProxy):
    """The shared proxy. A savepoint opened outside any transaction opens a real transaction
    instead, so it too starts ``BEGIN IMMEDIATE`` on SQLite rather than an implicit deferred one."""

    def savepoint(self):  # type: ignore[override]
        if self.obj is not None and self.obj.transaction_depth() == 0:
            return self.transaction()
        return super().savepoint()


db = PortalDatabaseProxy()

#: SQLite's answers when another connection holds the lock longer than the busy timeout.
LOCK_ERRORS = ("database is locked", "database table is locked", "database schema is locked")


def is_lock_contention(exc: BaseException) -> bool:
    """Whether ``exc`` says another writer held the database lock (busy, not broken)."""
    return isinstance(exc, peewee.OperationalError) and any(m in str(exc).lower() for m in LOCK_ERRORS)


def system_utcnow() -> dt.datetime:
    """The system clock as naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


#: Where :func:`utcnow` reads the time: crm_portal.testing's frozen clock replaces it.
clock: Callable[[], dt.datetime] = system_utcnow


def utcnow() -> dt.datetime:
    """Naive UTC "now"; every timestamp in the database is UTC."""
    return clock()


class PortalSqliteDatabase(peewee.SqliteDatabase):
    """SQLite tuned for a web server: WAL, foreign keys, a busy timeout, IMMEDIATE writes.

    A transaction that starts DEFERRED and writes after reading fails at once with "database is
    locked" when another writer got there first (SQLite cannot wait without risking a deadlock).
    Every transaction therefore starts ``BEGIN IMMEDIATE``, whichever path opens it (the proxy's
    ``atomic()``, ``transaction()``, a savepoint outside a transaction, the database object itself):
    writers queue on the busy timeout instead of failing.
    """

    def __init__(self, database: str, **kwargs: Any) -> None:
        pragmas = dict(kwargs.pop("pragmas", {}) or {})
        pragmas.setdefault("journal_mode", "wal")
        pragmas.setdefault("foreign_keys", 1)
        pragmas.setdefault("synchronous", "normal")
        pragmas.setdefault("busy_timeout", 10000)
        kwargs.setdefault("timeout", 10)
        super().__init__(database, pragmas=pragmas, **kwargs)

    def begin(self, lock_type: str | None = None) -> None:  # type: ignore[override]
        super().begin(lock_type or "IMMEDIATE")

    def savepoint(self):  # type: ignore[override]
        if self.transaction_depth() == 0:
            return self.transaction()
        return super().savepoint()


register_database(PortalSqliteDatabase, "sqlite")


class BaseModel(peewee.Model):
    """Base of every table, host and module alike.

    ``save()`` writes only the columns that changed: a save on an older copy of a row never
    overwrites what another request changed meanwhile in other columns.
    """

    #: The implicit auto-increment primary key (declared for type checkers only).
    id: peewee.AutoField

    class Meta:
        database = db
        legacy_table_names = False
        only_save_dirty = True

    def __str__(self) -> str:  # admin select boxes and audit labels
        for attr in ("name", "title", "number", "email"):
            value = getattr(self, attr, None)
            if value:
                return str(value)
        return f"{type(self).__name__} #{self.get_id()}"


def database_for(url: str) -> peewee.Database:
    """Build (without connecting) the database for a ``DATABASE_URL``."""
    database = connect(url)
    if isinstance(database, peewee.PostgresqlDatabase):
        # Server-side autorollback keeps a failed statement from poisoning the pooled connection.
        database.autorollback = True
    return database


def bind(url: str) -> peewee.Database:
    """Point the shared proxy at ``url`` and return the concrete database."""
    database = database_for(url)
    db.initialize(database)
    return database


def retry_on_lock(func: Callable[[], T], *, attempts: int = 3, delay: float = 0.05) -> T:
    """Run ``func`` (which opens its own transaction) again when SQLite still reports lock
    contention after its busy timeout; any other error, or the last attempt's, propagates."""
    for attempt in range(attempts):
        try:
            return func()
        except peewee.OperationalError as exc:
            if attempt + 1 >= attempts or not is_lock_contention(exc) or db.in_transaction():
                raise
            log.warning("database busy, attempt %d of %d: %s", attempt + 1, attempts, exc)
            time.sleep(delay * (2 ** attempt) * (1 + random.random()))
    raise AssertionError("unreachable")


def _rewind_uploads() -> None:
    for storage in request.files.values():
        with contextlib.suppress(OSError, ValueError):
            storage.stream.seek(0)


def init_app(app: Flask) -> None:
    """Bind the database from configuration and open/close a connection around each request.

    A request whose transaction still finds the database locked after the busy timeout is run
    again (``DATABASE_LOCK_RETRIES`` times): its transaction rolled back, so nothing is doubled.
    """
    bind(app.config["DATABASE_URL"])
    dispatch = app.dispatch_request
    retries = int(app.config.get("DATABASE_LOCK_RETRIES", 2))

    def dispatch_with_retry() -> Any:
        def attempt() -> Any:
            _rewind_uploads()
            return dispatch()

        return retry_on_lock(attempt, attempts=retries + 1)

    app.dispatch_request = dispatch_with_retry  # type: ignore[method-assign]

    @app.before_request
    def _open_connection() -> None:
        if db.is_closed():
            db.connect()
            g._crm_db_opened = True

    @app.teardown_appcontext
    def _close_connection(exc: BaseException | None) -> None:
        if g.pop("_crm_db_opened", False) and not db.is_closed():
            db.close()


def is_postgres() -> bool:
    return isinstance(db.obj, peewee.PostgresqlDatabase)
