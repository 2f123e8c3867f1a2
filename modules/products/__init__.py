"""Products and licences the customer's company owns.

A product belongs to a company and may be assigned to one contact (*own* scope shows the user's
assigned products; *company* scope every product of the company). The serial number / licence key
is shown only to company-scope users when staff ask for it, per product
(``serial_company_only``) or for a whole company (:class:`CompanySetting`).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import peewee as pw
from flask import current_app, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm_portal.api import (AdminModelView, BaseModel, Button, Column, Company, Contact, DemoContext, Field, Module,
                            Section, _l, date_badge)

__all__ = ["ProductsModule", "Product", "CompanySetting", "serial_visible"]


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
    """Whether ``user`` may read the serial / licence key of ``product``."""
    grant = user.grant(ProductsModule.name) if user is not None else None
    if grant is None:
        return False
    if grant.scope == "company":
        return True
    if product.serial_company_only:
        return False
    setting = CompanySetting.get_or_none(CompanySetting.company == product.company_id)
    return not (setting and setting.serial_company_only)


def _serial(value: Any, row: Product) -> Any:
    if not value:
        return None
    return value if serial_visible(row, current_user) else _("Visible to your company's administrators only")


class ProductAdmin(AdminModelView):
    roles = ("admin", "operator")
    column_list = ("company", "contact", "name", "code", "version", "quantity", "support_end",
                   "serial_company_only")
    column_searchable_list = ("name", "code", "serial")
    column_filters = ("support_end", "serial_company_only")


class CompanySettingAdmin(AdminModelView):
    roles = ("admin",)
    column_list = ("company", "serial_company_only")


class ProductsModule(Module):
    name = "products"
    label = _l("Products and licences")
    icon = "box-seam"
    description = _l("The products and licences your company has, with their support dates.")
    position = 50
    models = (Product, CompanySetting)
    record = Product
    contact_field = Product.contact
    company_field = Product.company
    default_sort = "name"
    actions = ("view", "export")
    detail_template = "products/detail.html"
    columns = [
        Column(Product.name, _l("Product"), search=True, sort=True, link=True),
        Column(Product.code, _l("Code"), search=True, sort=True),
        Column(Product.version, _l("Version"), search=True),
        Column(Product.quantity, _l("Quantity"), sort=True),
        Column(Product.support_end, _l("Support until"), sort=True, badge=date_badge(60)),
        Column(Product.contact, _l("Assigned to"), display="last_name", sort=True, search=True,
               format=lambda contact, row: contact.full_name),
    ]
    detail = [
        Section(_l("Product"), [
            Field("name", _l("Product")),
            Field("code", _l("Code")),
            Field("version", _l("Version")),
            Field("quantity", _l("Quantity")),
            Field("serial", _l("Serial number / licence key"), format=_serial),
            Field("support_end", _l("Support until")),
            Field("contact.full_name", _l("Assigned to")),
            Field("notes", _l("Notes"), wide=True),
        ]),
    ]

    def buttons(self):
        return [Button("products.list", _l("Products and licences"), endpoint="products.list", icon="box-seam",
                       description=_l("Your products, licences and support dates"))]

    def admin_views(self):
        category = _l("Products and licences")
        return [ProductAdmin(Product, name=_l("Products"), category=category, endpoint="products_product"),
                CompanySettingAdmin(CompanySetting, name=_l("Company settings"), category=category,
                                    endpoint="products_company_setting")]

    def register_views(self, bp):
        @bp.app_template_global("products_links")
        def products_links(product: Product) -> list[tuple[str, str, str]]:
            """(label, url, icon) of the pages related to a product that exist in this portal."""
            views = current_app.view_functions
            links = []
            if product.code and "documents.list" in views and current_user.can("documents"):
                links.append((_("Documents about this product"),
                              url_for("documents.list", s_product_code=product.code), "folder2-open"))
            if "tickets.create" in views and current_user.can("tickets", "create"):
                links.append((_("Open a ticket about this product"),
                              url_for("tickets.create", product=product.id), "life-preserver"))
            return links

    def demo_data(self, ctx: DemoContext) -> None:
        today = dt.date.today()
        c, co = ctx.contacts, ctx.companies
        specs = [
            ("acme", "bruno", "Gestionale ContaPiù", "GES-USR", "2025.2", 5, "GES-ACME-5U-7781-2291", False, 220),
            ("acme", "anna", "Firewall FW-200", "FW-200", "7.4.3", 1, "FW200-SN-00A1B2C3", True, 400),
            ("acme", "anna", "Backup in cloud 1 TB", "BCK-1T", None, 1, "BCK-ACME-0091", False, 25),
            ("acme", None, "Microsoft 365 Business Basic", "M365-BB", None, 18, None, False, 150),
            ("acme", "chiara", "Antivirus Endpoint", "AV-END", "12.1", 20, "AVE-ACME-20-5521", False, -12),
            ("globex", "carla", "Microsoft 365 Business Standard", "M365-BS", None, 15, "M365-GLOBEX-15", False, 300),
            ("initech", "elena", "Server HPE ProLiant DL380", "SRV-DL380", "Gen11", 2, "CZJ1234ABC", True, 700),
        ]
        for company, contact, name, code, version, qty, serial, company_only, days in specs:
            Product.create(company=co[company], contact=c[contact] if contact else None, name=name, code=code,
                           version=version, quantity=qty, serial=serial, serial_company_only=company_only,
                           support_end=today + dt.timedelta(days=days))
        CompanySetting.create(company=co["initech"], serial_company_only=True)
