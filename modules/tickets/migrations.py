"""Schema steps of the tickets tables, applied in order by ``crm-portal migrate``."""
from __future__ import annotations

from playhouse.migrate import SchemaMigrator, SqliteMigrator

from crm_portal.api import Migration

from .models import Ticket, TicketHistory


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


#: States a customer may withdraw a ticket from (close it before support resolves it); kept in step
#: with ``workflow.WITHDRAWABLE`` (this file cannot import the workflow: it reads the app's config).
WITHDRAWABLE = ("open", "waiting_support", "waiting_customer", "in_progress", "planned", "waiting_dev")


def customer_withdraw(migrator: SchemaMigrator) -> list:
    """Let customers close their open tickets: the transitions ``<open state> → closed`` for the
    actor ``customer`` on installations seeded before they were defaults. Only missing rows are
    added (nothing when the workflow was never seeded: the defaults include them)."""
    keys = ", ".join(f"'{key}'" for key in WITHDRAWABLE)
    return [migrator.sql(
        "INSERT INTO tickets_transition (from_state_id, to_state_id, actor, types) "
        "SELECT f.id, t.id, 'customer', '' FROM tickets_state f, tickets_state t "
        f"WHERE t.key = 'closed' AND f.key IN ({keys}) AND NOT EXISTS ("
        "SELECT 1 FROM tickets_transition x WHERE x.from_state_id = f.id AND x.to_state_id = t.id "
        "AND x.actor = 'customer')")]


MIGRATIONS = [
    Migration("0002_search_text", lambda migrator: [
        migrator.add_column("tickets_ticket", "search_text", Ticket.search_text)]),
    Migration("0003_search_index", lambda migrator: [
        migrator.add_index("tickets_ticket", ("company_id", "search_text"), False)]),
    Migration("0004_contact_restrict", restrict_contact_delete),
    Migration("0005_opened_by_staff", lambda migrator: [
        migrator.add_column("tickets_ticket", Ticket.opened_by_staff.column_name, Ticket.opened_by_staff)]),
    Migration("0006_news_seq", lambda migrator: [
        migrator.add_column("tickets_ticket", "news_seq", Ticket.news_seq)]),
    Migration("0007_history_note", lambda migrator: [
        migrator.add_column("tickets_history", "note", TicketHistory.note)]),
    Migration("0008_customer_withdraw", customer_withdraw),
    Migration("0009_opened_by_integration", lambda migrator: [
        migrator.add_column("tickets_ticket", "opened_by_integration", Ticket.opened_by_integration)]),
]
