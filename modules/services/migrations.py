"""Schema steps of the services tables, applied in order by ``crm-portal migrate``."""
from __future__ import annotations

from crm_portal.api import Migration

from .models import Service, ServiceSubcategory

MIGRATIONS = [
    Migration("0001_ticket_category", lambda migrator: [
        migrator.add_column("services_service", "ticket_category_id", Service.ticket_category_id),
        migrator.add_column("services_subcategory", "ticket_category_id", ServiceSubcategory.ticket_category_id)]),
]
