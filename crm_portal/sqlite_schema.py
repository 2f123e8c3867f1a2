"""Schema changes on SQLite by its documented procedure, so that no step can destroy data.

https://www.sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema Changes": SQLite
changes most of a table's shape by building a new table, copying the rows, dropping the old table
and renaming the new one (``playhouse.migrate.SqliteMigrator`` does so for a NOT NULL column, a
default, a legacy drop or rename). With ``PRAGMA foreign_keys = ON`` (every portal connection) the
``DROP TABLE`` deletes the rows of every child table declared ``ON DELETE CASCADE`` and empties the
columns declared ``SET NULL``; and the rename re-reads every trigger and view of the database, so a
trigger of *another* table that names the dropped table makes it fail half-way.

:func:`schema_change` wraps one step in that procedure, whatever the step does:

* foreign keys switched off on the connection the step uses, outside any transaction (SQLite
  ignores the pragma inside one), checked off, switched back on in a ``finally``;
* one ``BEGIN IMMEDIATE`` transaction for the whole step (its history row included);
* every trigger and view saved and dropped before the step and created again after it (unless the
  step made its own of the same name, dropped the table a trigger belongs to, or :func:`retire`\\ d it),
  every index and every ``sqlite_sequence`` counter kept;
* ``PRAGMA foreign_key_check`` before the commit: a row left pointing at a missing parent aborts
  the step, and a step that fails leaves the database exactly as it was.
"""
from __future__ import annotations

import contextvars
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee as pw
from playhouse.sqlite_ext import AutoIncrementField


class SchemaChangeError(RuntimeError):
    """A schema step refused: it would break the database, or could not run safely."""


@dataclass(frozen=True)
class SchemaObject:
    """A row of ``sqlite_master``: an index, trigger or view, and the SQL that makes it."""

    type: str
    name: str
    table: str
    sql: str


#: Names the running step removes for good (see :func:`retire`).
_retired: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("retired", default=None)


class retire:  # noqa: N801 - used like the migrator's operations (lower case, in a step's list)
    """An operation for a step's list: the trigger, view or index ``name`` is dropped and stays
    dropped (without it, :func:`schema_change` recreates every trigger, view and index it saved).
    With ``drop=False`` it only records that a later operation of the step drops it."""

    def __init__(self, database: pw.Database, name: str, *, drop: bool = True) -> None:
        self.database, self.name, self.drop = database, name, drop

    def run(self) -> None:
        names = _retired.get()
        if names is None:
            raise SchemaChangeError("retire() runs only inside schema_change()")
        names.add(self.name)
        if not self.drop:
            return
        found = self.database.execute_sql("SELECT type FROM sqlite_master WHERE name = ? AND type != 'table'",
                                          (self.name,)).fetchone()
        if found is not None:
            self.database.execute_sql(f'DROP {found[0].upper()} "{self.name}"')


class SqliteAutoIncrementField(AutoIncrementField):
    """An id SQLite never gives twice (``AUTOINCREMENT``: the largest id ever given is kept in
    ``sqlite_sequence``, even when every row is deleted); a plain ``SERIAL`` elsewhere, whose
    sequence never goes back either."""

    def ddl(self, ctx: Any) -> Any:
        database = self.model._meta.database
        database = getattr(database, "obj", database)  # the shared proxy
        if isinstance(database, pw.SqliteDatabase):
            return super().ddl(ctx)
        return pw.AutoField.ddl(self, ctx)


def _pragma(connection: sqlite3.Connection, name: str) -> Any:
    return connection.execute(f"PRAGMA {name}").fetchone()[0]


@contextmanager
def foreign_keys_off(database: pw.SqliteDatabase) -> Iterator[sqlite3.Connection]:
    """Switch foreign keys off on the connection this thread uses (the pool hands each thread its
    own), outside any transaction, and back to what they were afterwards, whatever happens."""
    if database.in_transaction():
        raise SchemaChangeError("a schema step must start outside any transaction: "
                                "SQLite ignores PRAGMA foreign_keys inside one")
    connection = database.connection()
    was_on = bool(_pragma(connection, "foreign_keys"))
    connection.execute("PRAGMA foreign_keys = OFF")
    try:
        if _pragma(connection, "foreign_keys"):
            raise SchemaChangeError("could not switch foreign keys off for the schema step")
        yield connection
    finally:
        if connection.in_transaction:  # never give the connection back half-way through
            connection.rollback()
        if was_on:
            connection.execute("PRAGMA foreign_keys = ON")


def schema_objects(database: pw.Database, types: Iterable[str] = ("index", "trigger", "view")) -> list[SchemaObject]:
    """The indexes, triggers and views of the database (``CREATE`` order), those SQLite makes for
    its own constraints excepted."""
    kinds = tuple(types)
    marks = ", ".join("?" * len(kinds))
    rows = database.execute_sql(f"SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ({marks}) "
                                "AND sql IS NOT NULL ORDER BY rowid", kinds).fetchall()
    return [SchemaObject(*row) for row in rows]


def _sequences(database: pw.Database) -> dict[str, int]:
    if not database.execute_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        return {}
    return dict(database.execute_sql("SELECT name, seq FROM sqlite_sequence").fetchall())


def _exists(database: pw.Database, name: str) -> bool:
    return database.execute_sql("SELECT 1 FROM sqlite_master WHERE name = ? COLLATE NOCASE",
                                (name,)).fetchone() is not None


def _restore(database: pw.Database, saved: list[SchemaObject], sequences: dict[str, int]) -> None:
    """Create again what the step's rebuilds took away (views first: triggers may act on them)."""
    retired = _retired.get() or set()
    ordered = [o for o in saved if o.type == "view"] + [o for o in saved if o.type != "view"]
    for obj in ordered:
        if obj.name in retired or _exists(database, obj.name):
            continue  # retired, or replaced by the step
        if obj.type != "view" and not _exists(database, obj.table):
            continue  # gone with its table
        try:
            database.execute_sql(obj.sql)
        except pw.OperationalError as exc:
            if obj.type == "index" and "no such column" in str(exc):
                continue  # the step removed a column it indexed: the index goes with it
            raise SchemaChangeError(f"the step leaves {obj.type} {obj.name} impossible to recreate "
                                    f"({exc}); retire it in the step or replace it") from exc
    for table, seq in sequences.items():  # an AUTOINCREMENT id is never given twice, even after a rebuild
        if not _exists(database, table):
            continue
        row = database.execute_sql("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        if row is None:
            database.execute_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, seq))
        elif row[0] < seq:
            database.execute_sql("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (seq, table))


def check_foreign_keys(database: pw.Database) -> None:
    """Raise :class:`SchemaChangeError` naming the rows that point at a missing parent."""
    problems = database.execute_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        shown = "; ".join(f"{table} row {rowid} -> {parent}" for table, rowid, parent, _ in problems[:10])
        more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise SchemaChangeError(f"the step would leave {len(problems)} rows pointing at missing parents "
                                f"({shown}{more}); nothing was changed")


@contextmanager
def schema_change(database: pw.SqliteDatabase) -> Iterator[None]:
    """Run the body (a schema step and its history row) by SQLite's documented procedure: all of
    it or, if anything fails, nothing."""
    with foreign_keys_off(database) as connection:
        token = _retired.set(set())
        try:
            with database.atomic(lock_type="IMMEDIATE"):
                if database.connection() is not connection or _pragma(connection, "foreign_keys"):
                    raise SchemaChangeError("the schema step is not on the connection whose foreign keys are off")
                saved = schema_objects(database)
                sequences = _sequences(database)
                for obj in saved:
                    if obj.type in ("trigger", "view") and _exists(database, obj.name):
                        database.execute_sql(f'DROP {obj.type.upper()} "{obj.name}"')  # a view may go first
                yield
                _restore(database, saved, sequences)
                check_foreign_keys(database)
        finally:
            _retired.reset(token)


def online_backup(database: pw.SqliteDatabase, target: Path) -> Path:
    """Copy the database to ``target`` with SQLite's online backup (a consistent copy while
    other connections keep reading and writing)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise FileExistsError(target)
    copy = sqlite3.connect(target)
    try:
        database.connection().backup(copy)
    finally:
        copy.close()
    return target


class rebuild_as_model:  # noqa: N801 - an operation for a step's list, like the migrator's
    """An operation that rebuilds ``model``'s table in the shape the model declares now (for what
    ``ALTER TABLE`` cannot change, such as ``AUTOINCREMENT``), keeping every row of the columns
    the old and new shapes share. Run it inside :func:`schema_change`: it drops the old table."""

    def __init__(self, database: pw.SqliteDatabase, model: type[pw.Model]) -> None:
        self.database, self.model = database, model

    def run(self) -> None:
        table = self.model._meta.table_name
        new = f"{table}__new"
        old_columns = {column.name for column in self.database.get_columns(table)}
        create, params = self.model._schema._create_table(safe=False).query()  # type: ignore[attr-defined]
        prefix = f'CREATE TABLE "{table}"'
        if not create.startswith(prefix):
            raise SchemaChangeError(f"unexpected DDL for {table}: {create[:80]}")
        self.database.execute_sql(f'CREATE TABLE "{new}"{create[len(prefix):]}', params)
        columns = ", ".join(f'"{field.column_name}"' for field in self.model._meta.sorted_fields
                            if field.column_name in old_columns)
        self.database.execute_sql(f'INSERT INTO "{new}" ({columns}) SELECT {columns} FROM "{table}"')
        self.database.execute_sql(f'DROP TABLE "{table}"')
        self.database.execute_sql(f'ALTER TABLE "{new}" RENAME TO "{table}"')
        self.model._schema.create_indexes(safe=True)  # type: ignore[attr-defined]


def retire_dropped_indexes(database: pw.Database, operations: Iterable[Any]) -> list[Any]:
    """The step's operations, each ``migrator.drop_index(table, name)`` preceded by a :class:`retire`
    of that index (else :func:`schema_change` would recreate it)."""
    result: list[Any] = []
    for operation in operations:
        fn = getattr(operation, "fn", None)
        if getattr(fn, "__name__", "") == "drop_index":
            name = operation.kwargs.get("index_name") or operation.args[1]
            result.append(retire(database, name, drop=False))
        result.append(operation)
    return result
