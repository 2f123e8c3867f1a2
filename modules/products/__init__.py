"""Products and licences the customer's company owns.

A product belongs to a company and may be assigned to one contact (*own* scope shows the user's
assigned products; *company* scope every product of the company). The serial number / licence key
is shown only to company-scope users when staff ask for it, per product
(``serial_company_only``) or for a whole company (:class:`~.models.CompanySetting`); see
:func:`.models.serial_visible`. The product page links to the product's documents and to a new
ticket about it, where those modules are enabled (``views.related_links``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_portal.api import ActionLabel, Button, Column, DemoContext, Field, Module, Section, _l, date_badge

from . import admin, demo, views
from .models import CompanySetting, Product
from .views import bp, serial_text


class ProductsModule(Module):
    name = "products"
    event_name = "product"
    label = _l("Products and licences")
    icon = "box-seam"
    description = _l("The products and licences your company has, with their support dates.")
    position = 50
    models = (Product, CompanySetting)
    record = Product
    sync_type = "product"  # a CRM may push them (docs/api.md, CRM sync)
    sync_fields = ("company", "contact", "name", "code", "version", "quantity", "serial", "support_end", "notes")
    contact_field = Product.contact
    company_field = Product.company
    default_sort = "name"
    actions = ("view", "export")
    action_labels = {
        "view": ActionLabel(_l("See products and licences"),
                            _l("Products and licences, with serial numbers and expiry dates.")),
        "export": ActionLabel(_l("Export products"), _l("Download the list of products as a CSV spreadsheet.")),
    }
    detail_template = "products/detail.html"
    blueprint = bp
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
            Field("serial", _l("Serial number / licence key"), format=serial_text),
            Field("support_end", _l("Support until")),
            Field("contact.full_name", _l("Assigned to")),
            Field("notes", _l("Notes"), wide=True),
        ]),
    ]

    def buttons(self):
        return [Button("products.list", _l("Products and licences"), endpoint="products.list", icon="box-seam",
                       description=_l("Your products, licences and support dates"))]

    def admin_views(self):
        return admin.views()

    def detail_context(self, record: Any, user: Any) -> Mapping[str, Any]:
        return views.detail_context(record, user)

    def demo_data(self, ctx: DemoContext) -> None:
        demo.load(ctx)
