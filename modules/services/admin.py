"""The staff side of services: services with their sub-categories inline."""
from __future__ import annotations

from typing import Any

from flask import current_app
from flask_admin.model.form import InlineFormAdmin
from wtforms import SelectField
from wtforms.validators import Optional

from crm_portal.api import AdminModelView, _l

from .models import Service, ServiceSubcategory


def ticket_categories() -> list[tuple[str, str]]:
    """The choices of a "Ticket category" select: none, then the tickets module's categories (asked
    through the registry; only "none" when that module is not installed)."""
    tickets = current_app.extensions["crm_portal"].modules.get("tickets")
    found = getattr(tickets, "category_choices", None)
    pairs = [(str(key), str(label)) for key, label in found()] if found else []
    return [("", str(_l("— the customer chooses —")))] + pairs


def optional_int(value: Any) -> int | None:
    return int(value) if value not in (None, "", "None") else None


def category_field(description: Any) -> dict[str, Any]:
    return {"label": _l("Ticket category"), "choices": ticket_categories, "coerce": optional_int,
            "validators": [Optional()], "description": description}


def category_name(view: Any, context: Any, model: Any, name: str) -> str:
    """The mapped ticket category by name (the details page), "the customer chooses" when none."""
    value = getattr(model, name)
    return dict(ticket_categories()).get("" if value is None else str(value), str(value))


class SubcategoryInline(InlineFormAdmin):
    form_columns = ("id", "name", "position", "ticket_category_id")
    form_overrides = {"ticket_category_id": SelectField}
    # A new sub-category has no id yet: the hidden primary key must not be required.
    form_args = {"id": {"validators": [Optional()]},
                 "ticket_category_id": category_field(_l("Requests on this sub-category are filed here "
                                                         "(before the service's category)."))}


class ServiceAdmin(AdminModelView):
    roles = ("admin", "operator")
    field_labels = {"contract_reference": _l("Contract reference"), "start_date": _l("Start date"),
                    "end_date": _l("End date"), "contracted_hours": _l("Contracted hours"),
                    "used_hours": _l("Hours used"), "service": _l("Service"), "subcategories": _l("Sub-categories"),
                    "ticket_category_id": _l("Ticket category")}
    column_formatters_detail = {"ticket_category_id": category_name}
    inline_models = (SubcategoryInline(ServiceSubcategory),)
    column_list = ("company", "name", "contracted_hours", "used_hours", "start_date", "end_date", "active")
    column_searchable_list = ("name", "contract_reference")
    column_filters = ("active", "end_date")
    form_overrides = {"ticket_category_id": SelectField}
    form_args = {"ticket_category_id": category_field(_l("Requests on this service are filed under this "
                                                         "category, unless their sub-category has one."))}


def views(module: Any) -> list[ServiceAdmin]:
    """The admin views of the services module."""
    return [ServiceAdmin(Service, name=_l("Contracted services"), category=_l("Contracts"),
                         endpoint="services_service")]
