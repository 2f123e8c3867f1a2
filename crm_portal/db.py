"""Database plumbing: one deferred peewee database shared by the host and every module.

SQLite is the embedded default and PostgreSQL the scale-out database; both are reached through
``DATABASE_URL`` (``playhouse.db_url``). The proxy is bound in :func:`init_app`, so models can be
declared at import time, before any configuration exists.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import peewee
from flask import Flask, g
from playhouse.db_url import connect, register_database

db = peewee.DatabaseProxy()


def utcnow() -> dt.datetime:
    """Naive UTC "now"; every timestamp in the database is UTC."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class PortalSqliteDatabase(peewee.SqliteDatabase):
    """SQLite tuned for a web server: WAL, foreign keys, a busy timeout, IMMEDIATE writes.

    A write transaction that starts DEFERRED can fail with "database is locked" when it upgrades
    its read lock; starting it IMMEDIATE makes concurrent writers queue on the busy timeout instead.
    """

    def __init__(self, database: str, **kwargs: Any) -> None:
        pragmas = dict(kwargs.pop("pragmas", {}) or {})
        pragmas.setdefault("journal_mode", "wal")
        pragmas.setdefault("foreign_keys", 1)
        pragmas.setdefault("synchronous", "normal")
        pragmas.setdefault("busy_timeout", 10000)
        kwargs.setdefault("timeout", 10)
        super().__init__(database, pragmas=pragmas, **kwargs)

    def atomic(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        if not args and "lock_type" not in kwargs:
            kwargs["lock_type"] = "IMMEDIATE"
        return super().atomic(*args, **kwargs)


register_database(PortalSqliteDatabase, "sqlite")


class BaseModel(peewee.Model):
    """Base of every table, host and module alike."""

    class Meta:
        database = db
        legacy_table_names = False

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


def init_app(app: Flask) -> None:
    """Bind the database from configuration and open/close a connection around each request."""
    bind(app.config["DATABASE_URL"])

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
