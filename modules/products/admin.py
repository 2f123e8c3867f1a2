"""The staff side: products and the per-company settings."""
from __future__ import annotations

from crm_portal.api import AdminModelView, _l

from .models import CompanySetting, Product

#: The names of the products' fields in the admin (the shared ones come from the portal).
LABELS = {"code": _l("Code"), "version": _l("Version"), "serial": _l("Serial number"),
          "serial_company_only": _l("Serial numbers for the whole company"), "support_end": _l("End of support")}


class ProductAdmin(AdminModelView):
    roles = ("admin", "operator")
    field_labels = LABELS
    column_list = ("company", "contact", "name", "code", "version", "quantity", "support_end",
                   "serial_company_only")
    column_searchable_list = ("name", "code", "serial")
    column_filters = ("support_end", "serial_company_only")


class CompanySettingAdmin(AdminModelView):
    roles = ("admin",)
    field_labels = LABELS
    column_list = ("company", "serial_company_only")


def views() -> list[AdminModelView]:
    """The module's admin views, under one menu category."""
    category = _l("Products and licences")
    return [ProductAdmin(Product, name=_l("Products"), category=category, endpoint="products_product"),
            CompanySettingAdmin(CompanySetting, name=_l("Company settings"), category=category,
                                endpoint="products_company_setting")]
