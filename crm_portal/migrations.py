"""Schema management: tables from the models, later changes as recorded ``playhouse.migrate`` steps.

The core and each module own their tables and their steps. A fresh install creates the current
tables and records every step as applied; an upgrade runs, in order, the steps not yet recorded.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate

from .api import Migration
from .cache import install_triggers
from .db import db
from .models import CORE_MODELS, MigrationHistory


def _contact_notify_by_email(migrator: SchemaMigrator) -> list:
    from .models import Contact

    return [migrator.add_column(Contact._meta.table_name, "notify_by_email", Contact.notify_by_email)]


def _contact_sort_indexes(migrator: SchemaMigrator):
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
)


def _owners(registry) -> list[tuple[str, Sequence[type[pw.Model]], Sequence[Migration]]]:
    owners = [("core", CORE_MODELS, CORE_MIGRATIONS)]
    owners += [(m.name, list(m.models), list(m.migrations)) for m in registry.modules.values()]
    return owners


def pending(registry) -> list[tuple[str, str]]:
    """(owner, step name) of every step not applied yet."""
    db.create_tables([MigrationHistory], safe=True)
    done = {(h.module, h.name) for h in MigrationHistory.select()}
    return [(owner, mig.name) for owner, _, migs in _owners(registry) for mig in migs
            if (owner, mig.name) not in done]


def upgrade(registry) -> list[str]:
    """Create missing tables and run pending steps; return a line per thing done."""
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
            operations: Iterable = mig.apply(SchemaMigrator.from_database(database)) or ()
            with db.atomic():
                migrate(*operations)
                MigrationHistory.create(module=owner, name=mig.name)
            applied.add((owner, mig.name))
            done_lines.append(f"{owner}: applied {mig.name}")
    done_lines += install_triggers(database)
    return done_lines
