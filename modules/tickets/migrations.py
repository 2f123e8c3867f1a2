"""Schema steps of the tickets tables, applied in order by ``crm-portal migrate``."""
from __future__ import annotations

from playhouse.migrate import SchemaMigrator, SqliteMigrator

from crm_portal.api import Migration

from .models import Ticket


def restrict_contact_delete(migrator: SchemaMigrator) -> list:
    """Tickets are never deleted with their contact: deleting a contact who has tickets fails.

    PostgreSQL gets the foreign key rebuilt ``ON DELETE RESTRICT``. SQLite cannot alter a foreign
    key in place, so a trigger refuses the delete before the old ``CASCADE`` would run.
    """
    if isinstance(migrator, SqliteMigrator):
        return [migrator.sql(
            "CREATE TRIGGER IF NOT EXISTS tickets_ticket_contact_restrict BEFORE DELETE ON core_contact "
            "WHEN EXISTS (SELECT 1 FROM tickets_ticket WHERE contact_id = OLD.id) "
            "BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END")]
    return [migrator.drop_foreign_key_constraint("tickets_ticket", "contact_id"),
            migrator.add_foreign_key_constraint("tickets_ticket", "contact_id", "core_contact", "id",
                                                on_delete="RESTRICT")]


MIGRATIONS = [
    Migration("0002_search_text", lambda migrator: [
        migrator.add_column("tickets_ticket", "search_text", Ticket.search_text)]),
    Migration("0003_search_index", lambda migrator: [
        migrator.add_index("tickets_ticket", ("company_id", "search_text"), False)]),
    Migration("0004_contact_restrict", restrict_contact_delete),
    Migration("0005_opened_by_staff", lambda migrator: [
        migrator.add_column("tickets_ticket", Ticket.opened_by_staff.column_name, Ticket.opened_by_staff)]),
]
