"""Database plumbing: one deferred peewee database shared by the host and every module.

SQLite is the embedded default and PostgreSQL the scale-out database; both are reached through
``DATABASE_URL`` (``playhouse.db_url``). The proxy is bound in :func:`init_app`, so models can be
declared at import time, before any configuration exists.

Connections are pooled (``playhouse.pool``) on both databases: a request takes one from the pool
and gives it back at the end, so a connection and its settings (SQLite's pragmas) are set up once,
not on every request. A forked child (gunicorn's ``--preload``, huey's process workers) forgets the
connections it inherited without closing them: they belong to the parent.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import peewee
from flask import Flask, g, has_app_context, request
from playhouse.db_url import connect, register_database
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase, PooledSqliteDatabase
from werkzeug.wsgi import ClosingIterator

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


class CountsCommits:
    """Counts each commit made while handling a request, whatever the database: a request that
    committed is never run again on lock contention (see :func:`init_app`)."""

    def commit(self) -> None:
        super().commit()  # type: ignore[misc]
        _note_commit()


class PortalSqliteDatabase(CountsCommits, PooledSqliteDatabase):
    """SQLite tuned for a web server: WAL, foreign keys, a busy timeout, IMMEDIATE writes, and a
    pool of connections whose pragmas are set once, when each connection opens.

    A pooled connection serves one thread at a time but not always the same thread, hence
    ``check_same_thread=False``.

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
        busy = kwargs.pop("timeout", 10)
        kwargs["timeout"] = kwargs.pop("pool_wait", 10)  # the pool's "timeout": waiting for a connection
        kwargs.setdefault("check_same_thread", False)
        super().__init__(database, pragmas=pragmas, **kwargs)
        self._timeout = busy  # sqlite3's busy timeout (the pool took the keyword)

    def begin(self, lock_type: str | None = None) -> None:  # type: ignore[override]
        super().begin(lock_type or "IMMEDIATE")

    def savepoint(self):  # type: ignore[override]
        if self.transaction_depth() == 0:
            return self.transaction()
        return super().savepoint()


register_database(PortalSqliteDatabase, "sqlite")


class PortalPostgresqlDatabase(CountsCommits, PooledPostgresqlDatabase):
    """PostgreSQL through a pool of connections (``DATABASE_POOL_*`` settings)."""


register_database(PortalPostgresqlDatabase, "postgres", "postgresql")

#: Every database built by :func:`database_for` in this process (closed all at once by
#: :func:`close_all`, forgotten by a forked child).
_databases: weakref.WeakSet[peewee.Database] = weakref.WeakSet()
#: Connections a forked child inherited: kept referenced, never closed (closing a PostgreSQL
#: connection sends the server a goodbye on the socket the parent still uses).
_inherited: list[Any] = []


def close_all() -> None:
    """Close every connection of every database of this process, idle or in use, outside any
    transaction. For tests and tools that replace a database file or change how connections are
    opened; never while other threads use them."""
    for database in list(_databases):
        database.close_all()


def _forget_after_fork() -> None:
    """In a forked child: drop the parent's connections (and locks another thread may have held)."""
    for database in list(_databases):
        _inherited.extend(conn for _, _, conn in database._connections)
        _inherited.extend(p.connection for p in database._in_use.values())
        if not database._state.closed:
            _inherited.append(database._state.conn)
        database._state.reset()
        database._connections = []
        database._in_use = {}
        database._lock = threading.RLock()
        database._pool_lock = threading.RLock()
        database._pool_available = threading.Condition(database._pool_lock)


os.register_at_fork(after_in_child=_forget_after_fork)


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


#: The pool's defaults: (max connections, seconds before an idle connection is replaced, seconds
#: a request waits for a free connection). No limit by default: a process holds as many
#: connections as it has threads working at once, as it did before the pool. SQLite needs no renewal.
POOL_DEFAULTS = {"postgres": (None, 300, 10), "sqlite": (None, None, 10)}


def database_for(url: str, *, max_connections: int | None = None, stale_timeout: int | None = None,
                 pool_timeout: int | None = None) -> peewee.Database:
    """Build (without connecting) the database for a ``DATABASE_URL``, with its pool's limits
    (``None``: the defaults of :data:`POOL_DEFAULTS`; ``0``: no limit)."""
    kind = "sqlite" if url.startswith("sqlite") else "postgres"
    default_max, default_stale, default_wait = POOL_DEFAULTS[kind]
    options = {"max_connections": default_max if max_connections is None else (max_connections or None),
               "stale_timeout": default_stale if stale_timeout is None else (stale_timeout or None),
               "timeout": default_wait if pool_timeout is None else pool_timeout}
    if kind == "sqlite":
        options["pool_wait"] = options.pop("timeout")  # "timeout" is SQLite's busy timeout
    database = connect(url, **options)
    if isinstance(database, peewee.PostgresqlDatabase):
        # Server-side autorollback keeps a failed statement from poisoning the pooled connection.
        database.autorollback = True
    _databases.add(database)
    return database


def bind(url: str, **pool: Any) -> peewee.Database:
    """Point the shared proxy at ``url`` (pool limits as :func:`database_for`) and return the
    concrete database."""
    database = database_for(url, **pool)
    db.initialize(database)
    return database


def _note_commit() -> None:
    """Count a commit made while handling the current request (see :func:`init_app`)."""
    if has_app_context():
        g._crm_commits = g.get("_crm_commits", 0) + 1


def retry_on_lock(func: Callable[[], T], *, attempts: int = 3, delay: float = 0.05,
                  retry_if: Callable[[], bool] | None = None) -> T:
    """Run ``func`` (which opens its own transaction) again when SQLite still reports lock
    contention after its busy timeout; any other error, or the last attempt's, propagates, and so
    does contention when ``retry_if`` says running ``func`` again is not safe."""
    for attempt in range(attempts):
        try:
            return func()
        except peewee.OperationalError as exc:
            if (attempt + 1 >= attempts or not is_lock_contention(exc) or db.in_transaction()
                    or (retry_if is not None and not retry_if())):
                raise
            log.warning("database busy, attempt %d of %d: %s", attempt + 1, attempts, exc)
            time.sleep(delay * (2 ** attempt) * (1 + random.random()))
    raise AssertionError("unreachable")


#: Words of a driver error that means "the server is unreachable or went away" (not a bad statement).
OUTAGE_MARKERS = (
    "unable to open database", "disk i/o error", "could not connect",
    "connection refused", "server closed the connection", "connection already closed",
    "terminating connection", "the database system is", "timeout expired", "no route to host",
    "could not translate host name", "ssl connection has been closed", "connection not open",
)


def is_outage(exc: BaseException) -> bool:
    """Whether a database error means "unreachable" rather than a bad statement. Lock contention
    is not an outage: requests wait for the lock and are retried, never shown the outage page.
    Every pooled connection busy for ``DATABASE_POOL_TIMEOUT`` (overloaded) counts as one."""
    if is_lock_contention(exc):
        return False
    if isinstance(exc, (peewee.InterfaceError, MaxConnectionsExceeded)):
        return True
    if not isinstance(exc, peewee.DatabaseError):
        return False
    text = str(exc).lower()
    return any(marker in text for marker in OUTAGE_MARKERS)


def is_server_gone(exc: BaseException) -> bool:
    """Whether ``exc`` shows the database server went away (an outage other than a full pool):
    then every idle connection of the pool is dead too."""
    return is_outage(exc) and not isinstance(exc, MaxConnectionsExceeded)


def _connection_is_dead(database: peewee.Database) -> bool:
    """Whether this thread's open connection was dropped by the server, without a round trip
    (psycopg2 marks it closed, or its transaction status unknown, after a failed statement)."""
    conn = database._state.conn
    if conn is None:
        return False
    if isinstance(database, peewee.PostgresqlDatabase):
        try:
            return bool(conn.closed) or database._adapter.txn_status(conn) == database._adapter.txn_unknown
        except Exception:  # noqa: BLE001 - a driver that cannot even say: dead
            return True
    return database._is_closed(conn) if isinstance(database, PooledSqliteDatabase) else False


def discard_dead_connection() -> bool:
    """Forget this thread's connection if the server dropped it: it leaves the pool's books and is
    closed, so the next :func:`peewee.Database.connect` takes a live one. True when one was dropped."""
    database = db.obj
    if database is None or database._state.closed or not _connection_is_dead(database):
        return False
    conn = database._state.conn
    if isinstance(database, PooledPostgresqlDatabase | PooledSqliteDatabase):
        with database._pool_lock:
            database._in_use.pop(database.conn_key(conn), None)
            database._pool_available.notify()
    contexts = database._state.ctx  # an enclosing connection_context() still closes at its end
    database._state.reset()  # the transactions died with the connection
    database._state.ctx = contexts
    with contextlib.suppress(Exception):
        conn.close()
    log.warning("dropped a database connection the server had closed")
    return True


def flush_pool(exc: BaseException | None = None) -> None:
    """After an error that shows the server went away: drop this thread's dead connection and every
    idle pooled connection (they are dead too), so the next request opens fresh ones instead of
    failing on them. Nothing happens for other errors."""
    if exc is not None and not is_server_gone(exc):
        return
    discard_dead_connection()
    database = db.obj
    if isinstance(database, PooledPostgresqlDatabase | PooledSqliteDatabase):
        database.close_idle()


def open_connection() -> bool:
    """Make sure this thread holds a live connection: a dead one left from before is dropped first.
    True when it opened one (the caller closes it), False when one was already open."""
    discard_dead_connection()
    if not db.is_closed():
        return False
    db.connect()
    return True


def release_connection(exc: BaseException | None = None) -> None:
    """Give this thread's connection back to the pool (closed instead if the server dropped it);
    after an outage error the pool's idle connections go too (:func:`flush_pool`)."""
    if exc is not None:
        flush_pool(exc)
    discard_dead_connection()
    if not db.is_closed():
        db.close()


def _rewind_uploads() -> None:
    for storage in request.files.values():
        with contextlib.suppress(OSError, ValueError):
            storage.stream.seek(0)


def init_app(app: Flask) -> None:
    """Bind the database from configuration and take a pooled connection around each request
(``DATABASE_POOL_SIZE``, ``DATABASE_POOL_STALE_TIMEOUT``, ``DATABASE_POOL_TIMEOUT``).

    A request whose transaction still finds the database locked after the busy timeout is run
    again (``DATABASE_LOCK_RETRIES`` times) when it has committed nothing yet: its transaction
    rolled back, so nothing is doubled. A request that already committed a transaction is not run
    again (it would repeat what that transaction did); code with several transactions retries
    each one itself (:func:`retry_on_lock`).

    The connection is given back at teardown, so no thread keeps one between requests (it would
    die with the next database restart and fail every later request of that thread). A generated
    body (a CSV export) is sent after Flask's teardown: the connection its rows are read through
    is given back when the server closes the body, not before (nor never, as when the export
    opened a connection of its own after the teardown).
    """
    def setting(name: str) -> int | None:
        value = app.config.get(name)
        return None if value in (None, "") else int(value)

    bind(app.config["DATABASE_URL"], max_connections=setting("DATABASE_POOL_SIZE"),
         stale_timeout=setting("DATABASE_POOL_STALE_TIMEOUT"), pool_timeout=setting("DATABASE_POOL_TIMEOUT"))
    dispatch = app.dispatch_request
    retries = int(app.config.get("DATABASE_LOCK_RETRIES", 2))

    def dispatch_with_retry() -> Any:
        def attempt() -> Any:
            g._crm_commits = 0
            _rewind_uploads()
            return dispatch()

        return retry_on_lock(attempt, attempts=retries + 1, retry_if=lambda: not g.get("_crm_commits"))

    app.dispatch_request = dispatch_with_retry  # type: ignore[method-assign]

    @app.before_request
    def _open_connection() -> None:
        # Not owned when the caller (a test, a CLI command) already holds one on this thread.
        g._crm_db_owned = open_connection()

    @app.after_request
    def _hold_for_stream(response: Any) -> Any:
        # A generated body (a CSV export) may still read rows through this connection while it is
        # sent: it is given back when the server closes the body, not at the teardown.
        if g.get("_crm_db_owned") and response.is_streamed and not response.direct_passthrough:
            g._crm_db_owned = False
            response.response = ClosingIterator(response.response, [release_connection])
        return response

    @app.teardown_appcontext
    def _close_connection(exc: BaseException | None) -> None:
        if g.get("_crm_db_owned"):
            release_connection(exc)
        elif exc is not None:
            flush_pool(exc)


def is_postgres() -> bool:
    return isinstance(db.obj, peewee.PostgresqlDatabase)
