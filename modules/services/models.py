"""Services under contract and their sub-categories."""
from __future__ import annotations

from decimal import Decimal

import peewee as pw

from crm_portal.api import BaseModel, Company

ZERO = Decimal("0.00")


class Service(BaseModel):
    company = pw.ForeignKeyField(Company, backref="services", on_delete="CASCADE", index=True)
    name = pw.CharField(max_length=200)
    description = pw.TextField(null=True)
    contract_reference = pw.CharField(max_length=100, null=True)
    start_date = pw.DateField(null=True)
    end_date = pw.DateField(null=True)
    contracted_hours = pw.DecimalField(max_digits=10, decimal_places=2, default=ZERO)
    used_hours = pw.DecimalField(max_digits=10, decimal_places=2, default=ZERO)
    #: Inactive services stay visible in the list but are not offered for new tickets.
    active = pw.BooleanField(default=True, index=True)
    position = pw.IntegerField(default=0)
    #: The tickets module's category (its id) a request on this service is filed under, unless its
    #: sub-category names one; none: the customer chooses. A plain id: modules do not import each other.
    ticket_category_id = pw.IntegerField(null=True)

    class Meta:
        table_name = "services_service"

    def ordered_subcategories(self) -> list[ServiceSubcategory]:
        """The sub-categories in their display order (one query)."""
        return list(self.subcategories.order_by(ServiceSubcategory.position, ServiceSubcategory.name))

    @property
    def remaining_hours(self) -> Decimal:
        return (self.contracted_hours or ZERO) - (self.used_hours or ZERO)


class ServiceSubcategory(BaseModel):
    service = pw.ForeignKeyField(Service, backref="subcategories", on_delete="CASCADE", index=True)
    name = pw.CharField(max_length=200)
    position = pw.IntegerField(default=0)
    #: The tickets category of requests on this sub-category (before the service's own).
    ticket_category_id = pw.IntegerField(null=True)

    class Meta:
        table_name = "services_subcategory"
