"""Schema management: tables from the models, later changes as recorded ``playhouse.migrate`` steps.

The core and each module own their tables and their steps. A fresh install creates the current
tables and records every step as applied; an upgrade runs, in order, the steps not yet recorded.

Each step runs with its history row in one transaction: a step that fails leaves the database as
it was and ``migrate`` can simply run again. On SQLite a step follows SQLite's procedure for
schema changes (:mod:`crm_portal.sqlite_schema`: foreign keys off, triggers and views set aside
and recreated, ``foreign_key_check`` before the commit), so that rebuilding a table never
deletes or empties the rows of the tables that refer to it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate

from . import sqlite_schema
from .api import Migration
from .cache import install_triggers
from .db import db
from .models import CORE_MODELS, ChangeEntry, MigrationHistory


def _contact_notify_by_email(migrator: SchemaMigrator) -> list:
    from .models import Contact

    return [migrator.add_column(Contact._meta.table_name, "notify_by_email", Contact.notify_by_email)]


def _contact_sort_indexes(migrator: SchemaMigrator) -> list:
    """Index the contact columns the contacts list sorts on."""
    return [migrator.add_index("core_contact", (column,), False)
            for column in ("first_name", "office", "role")] + [migrator.add_index("core_company", ("city",), False)]


def _outbox_claim_token(migrator: SchemaMigrator) -> list:
    from .models import OutboxMessage

    return [migrator.add_column(OutboxMessage._meta.table_name, "claim_token", OutboxMessage.claim_token)]


def _login_throttle_pending(migrator: SchemaMigrator) -> list:
    from .models import LoginThrottle

    table = LoginThrottle._meta.table_name
    return [migrator.add_column(table, "pending", LoginThrottle.pending),
            migrator.add_column(table, "pending_at", LoginThrottle.pending_at)]


def _profile_assignable(migrator: SchemaMigrator) -> list:
    from .models import Profile

    return [migrator.add_column(Profile._meta.table_name, "assignable", Profile.assignable)]


def _staff_view_as(migrator: SchemaMigrator) -> list:
    from .models import StaffUser

    return [migrator.add_column(StaffUser._meta.table_name, "can_view_as", StaffUser.can_view_as)]


def _staff_timezone(migrator: SchemaMigrator) -> list:
    from .models import StaffUser

    return [migrator.add_column(StaffUser._meta.table_name, "timezone", StaffUser.timezone)]


def _contact_notification_events(migrator: SchemaMigrator) -> list:
    from .models import Contact

    return [migrator.add_column(Contact._meta.table_name, "notification_events", Contact.notification_events)]


def _outbox_threading(migrator: SchemaMigrator) -> list:
    from .models import OutboxMessage

    table = OutboxMessage._meta.table_name
    return [migrator.add_column(table, "thread", OutboxMessage.thread),  # indexed with it
            migrator.add_column(table, "auto_submitted", OutboxMessage.auto_submitted)]


def _second_factor_required(migrator: SchemaMigrator) -> list:
    from .models import Company, Profile

    return [migrator.add_column(Profile._meta.table_name, "second_factor_required", Profile.second_factor_required),
            migrator.add_column(Company._meta.table_name, "second_factor_required", Company.second_factor_required)]


def _change_ids_never_reused(migrator: SchemaMigrator) -> list:
    """The change feed's ids are never given twice: on SQLite ``core_change`` is rebuilt with
    ``AUTOINCREMENT``, keeping its rows (PostgreSQL's sequence never goes back: nothing to do)."""
    database = migrator.database
    if not isinstance(database, pw.SqliteDatabase):
        return []
    table = ChangeEntry._meta.table_name
    row = database.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if row is None or "AUTOINCREMENT" in row[0].upper():
        return []
    return [sqlite_schema.rebuild_as_model(database, ChangeEntry)]


#: Schema steps of the core tables, in order. New core tables need no step (they are created).
CORE_MIGRATIONS: Sequence[Migration] = (
    Migration("0001_contact_notify_by_email", _contact_notify_by_email),
    Migration("0002_contact_sort_indexes", _contact_sort_indexes),
    Migration("0003_outbox_claim_token", _outbox_claim_token),
    Migration("0004_login_throttle_pending", _login_throttle_pending),
    Migration("0005_profile_assignable", _profile_assignable),
    Migration("0006_staff_view_as", _staff_view_as),
    Migration("0007_staff_timezone", _staff_timezone),
    Migration("0008_contact_notification_events", _contact_notification_events),
    Migration("0013_outbox_threading", _outbox_threading),
    Migration("0014_change_ids_never_reused", _change_ids_never_reused),
    Migration("0015_second_factor_required", _second_factor_required),
)


def _owners(registry: Any) -> list[tuple[str, Sequence[type[pw.Model]], Sequence[Migration]]]:
    owners: list[tuple[str, Sequence[type[pw.Model]], Sequence[Migration]]] = [("core", CORE_MODELS, CORE_MIGRATIONS)]
    owners += [(m.name, list(m.models), list(m.migrations)) for m in registry.modules.values()]
    return owners


@dataclasses.dataclass
class Plan:
    """What :func:`upgrade` would do now, read without changing anything."""

    #: (owner, table) of every table to create.
    create: list[tuple[str, str]]
    #: (owner, step) of every step to run, in order.
    run: list[tuple[str, str]]
    #: (owner, step) of the steps recorded as applied without running: their tables are created
    #: in their final shape.
    record: list[tuple[str, str]]

    @property
    def pending(self) -> bool:
        return bool(self.create or self.run or self.record)


def plan(registry: Any) -> Plan:
    """What :func:`upgrade` would create, run and record (reads only; creates nothing)."""
    database = db.obj
    existing = set(database.get_tables())
    applied: set[tuple[str, str]] = set()
    if MigrationHistory._meta.table_name in existing:
        applied = {(h.module, h.name) for h in MigrationHistory.select(MigrationHistory.module, MigrationHistory.name)}
    result = Plan([], [], [])
    for owner, models, migrations in _owners(registry):
        missing = [m for m in models if m._meta.table_name not in existing]
        fresh = bool(missing) and len(missing) == len(models)
        result.create += [(owner, m._meta.table_name) for m in missing]
        todo = [(owner, mig.name) for mig in migrations if (owner, mig.name) not in applied]
        (result.record if fresh else result.run).extend(todo)
    return result


def pending(registry: Any) -> list[tuple[str, str]]:
    """(owner, step name) of every step not applied yet (reads only)."""
    steps = plan(registry)
    return steps.record + steps.run


class StepFailed(RuntimeError):
    """A schema step failed; it changed nothing (the steps before it are applied and recorded)."""


def _run_step(database: pw.Database, owner: str, mig: Migration) -> None:
    """One step and its history row: all of it or nothing."""
    def body() -> None:
        migrator = SchemaMigrator.from_database(database)
        operations: Iterable = mig.apply(migrator) or ()
        if sqlite:
            operations = sqlite_schema.retire_dropped_indexes(database, operations)
        migrate(*operations)
        MigrationHistory.create(module=owner, name=mig.name)

    sqlite = isinstance(database, pw.SqliteDatabase)
    if isinstance(database, pw.SqliteDatabase):
        with sqlite_schema.schema_change(database):
            body()
    else:
        with database.atomic():  # PostgreSQL's DDL is transactional
            body()


def upgrade(registry: Any, before_first_step: Callable[[], None] | None = None) -> list[str]:
    """Create missing tables and run pending steps; return a line per thing done.

    ``before_first_step`` is called once, just before the first step that runs (not when nothing
    is pending, nor on a fresh install, whose steps are only recorded): ``migrate`` backs up there."""
    done_lines: list[str] = []
    database = db.obj
    existing = set(database.get_tables())  # before the history table exists on a fresh database
    db.create_tables([MigrationHistory], safe=True)
    applied = {(h.module, h.name) for h in MigrationHistory.select()}
    for owner, models, migrations in _owners(registry):
        missing = [m for m in models if m._meta.table_name not in existing]
        fresh = len(missing) == len(models)
        if missing:
            with db.atomic():
                db.create_tables(missing, safe=True)
                done_lines.append(f"{owner}: created {', '.join(m._meta.table_name for m in missing)}")
                if fresh:  # the new tables already have the final shape
                    for mig in migrations:
                        if (owner, mig.name) not in applied:
                            MigrationHistory.create(module=owner, name=mig.name)
                            applied.add((owner, mig.name))
        for mig in migrations:
            if (owner, mig.name) in applied:
                continue
            if before_first_step is not None:
                before_first_step()
                before_first_step = None
            try:
                _run_step(database, owner, mig)
            except Exception as exc:
                raise StepFailed(f"{owner}: step {mig.name} failed and changed nothing: {exc}") from exc
            applied.add((owner, mig.name))
            done_lines.append(f"{owner}: applied {mig.name}")
    done_lines += install_triggers(database)
    return done_lines


def backup_before_migration(folder: Path) -> Path:
    """An online copy of the SQLite database in ``folder``, named after the time (UTC) and the
    migration it precedes; nothing on other databases (PostgreSQL has its own tools)."""
    database = db.obj
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{stamp}-before-migrate.sqlite3"
    number = 1
    while target.exists():
        number += 1
        target = folder / f"{stamp}-{number}-before-migrate.sqlite3"
    return sqlite_schema.online_backup(database, target)
