"""The module's table: one row per on-site visit."""
from __future__ import annotations

from decimal import Decimal

import peewee as pw
from crm_portal.api import BaseModel, Company, Contact


class Visit(BaseModel):
    number = pw.CharField(max_length=20, unique=True)
    company = pw.ForeignKeyField(Company, index=True, on_delete="CASCADE")
    contact = pw.ForeignKeyField(Contact, null=True, index=True, on_delete="SET NULL")
    date = pw.DateField(index=True)
    technician = pw.CharField(max_length=100)
    summary = pw.TextField()
    hours = pw.DecimalField(max_digits=6, decimal_places=2, default=Decimal("0"))
    customer_notes = pw.TextField(null=True)
    rating = pw.IntegerField(null=True)  # added in 1.1, see migrations.py

    class Meta:
        table_name = "visits_visit"
