"""The staff side of services: services with their sub-categories inline."""
from __future__ import annotations

from typing import Any

from flask_admin.model.form import InlineFormAdmin
from wtforms.validators import Optional

from crm_portal.api import AdminModelView, _l

from .models import Service, ServiceSubcategory


class SubcategoryInline(InlineFormAdmin):
    form_columns = ("id", "name", "position")
    # A new sub-category has no id yet: the hidden primary key must not be required.
    form_args = {"id": {"validators": [Optional()]}}


class ServiceAdmin(AdminModelView):
    roles = ("admin", "operator")
    field_labels = {"contract_reference": _l("Contract reference"), "start_date": _l("Start date"),
                    "end_date": _l("End date"), "contracted_hours": _l("Contracted hours"),
                    "used_hours": _l("Hours used"), "service": _l("Service"), "subcategories": _l("Sub-categories")}
    inline_models = (SubcategoryInline(ServiceSubcategory),)
    column_list = ("company", "name", "contracted_hours", "used_hours", "start_date", "end_date", "active")
    column_searchable_list = ("name", "contract_reference")
    column_filters = ("active", "end_date")


def views(module: Any) -> list[ServiceAdmin]:
    """The admin views of the services module."""
    return [ServiceAdmin(Service, name=_l("Contracted services"), category=_l("Contracts"),
                         endpoint="services_service")]
