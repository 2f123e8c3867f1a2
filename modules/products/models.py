"""Products' data: the products and licences of each company, and who may read their serials."""
from __future__ import annotations

from typing import Any

import peewee as pw

from crm_portal.api import BaseModel, Company, Contact


class Product(BaseModel):
    company = pw.ForeignKeyField(Company, backref="products", on_delete="CASCADE", index=True)
    #: The contact the product or licence is assigned to (own scope); empty: the company.
    contact = pw.ForeignKeyField(Contact, backref="products", null=True, on_delete="SET NULL", index=True)
    name = pw.CharField(max_length=200)
    code = pw.CharField(max_length=64, null=True, index=True)
    version = pw.CharField(max_length=64, null=True)
    quantity = pw.IntegerField(default=1)
    serial = pw.CharField(max_length=255, null=True)
    #: Show the serial / licence key only to users with company scope.
    serial_company_only = pw.BooleanField(default=False)
    support_end = pw.DateField(null=True, index=True)
    notes = pw.TextField(null=True)

    class Meta:
        table_name = "products_product"


class CompanySetting(BaseModel):
    """Per-company product settings decided by staff."""

    company = pw.ForeignKeyField(Company, backref="product_settings", unique=True, on_delete="CASCADE")
    #: Serials of every product of the company are shown only to company-scope users.
    serial_company_only = pw.BooleanField(default=False)

    class Meta:
        table_name = "products_company_setting"

    def __str__(self) -> str:
        return f"{self.company.name}" if self.company_id else "—"


def serial_visible(product: Product, user: Any) -> bool:
    """Whether ``user`` may read the serial / licence key of ``product``: company scope always,
    own scope unless staff reserved it (on the product or for the whole company)."""
    grant = user.grant("products") if user is not None else None
    if grant is None:
        return False
    if grant.scope == "company":
        return True
    if product.serial_company_only:
        return False
    setting = CompanySetting.get_or_none(CompanySetting.company == product.company_id)
    return not (setting and setting.serial_company_only)
