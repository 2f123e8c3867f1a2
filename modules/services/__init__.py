"""Services under contract (Servizi a contratto): what the company's contract covers.

Each service has sub-categories, contracted hours and hours used. Services belong to a company:
both scopes show the user's company's services. The tickets wizard asks
:meth:`ServicesModule.services_for` which services (and sub-categories) a user may open tickets on.
"""
from __future__ import annotations

from typing import Any

from crm_portal.api import ActionLabel, Button, Column, DemoContext, Field, Module, Section, _l

from . import admin, demo, views
from .migrations import MIGRATIONS
from .models import Service, ServiceSubcategory
from .views import ServiceChoice, bp, hours, remaining


class ServicesModule(Module):
    name = "services"
    event_name = "service"
    label = _l("Contracted services")
    icon = "briefcase"
    description = _l("The services in your contract, with their hours.")
    position = 40
    models = (Service, ServiceSubcategory)
    record = Service
    sync_type = "service"  # a CRM may push them (docs/api.md, CRM sync)
    sync_fields = ("company", "name", "description", "contract_reference", "start_date", "end_date",
                   "contracted_hours", "used_hours", "active")
    sync_deactivate = {"active": False}  # a service the CRM deleted stays, inactive
    company_field = Service.company
    default_sort = "name"
    actions = ("view", "export")
    action_labels = {
        "view": ActionLabel(_l("See contracted services"),
                            _l("What the contract covers, with hours contracted and used.")),
        "export": ActionLabel(_l("Export services"), _l("Download the list of services as a CSV spreadsheet.")),
    }
    detail_template = "services/detail.html"
    blueprint = bp
    migrations = MIGRATIONS
    columns = [
        Column(Service.name, _l("Service"), search=True, sort=True, link=True),
        Column(Service.contract_reference, _l("Contract"), search=True, sort=True),
        Column(Service.contracted_hours, _l("Contracted hours"), sort=True, format=hours),
        Column(Service.used_hours, _l("Hours used"), sort=True, format=hours),
        Column(Service.id, _l("Hours left"), format=remaining),
        Column(Service.end_date, _l("Contract end"), sort=True),
        Column(Service.active, _l("Active"), filter=True, choices={True: _l("Yes"), False: _l("No")}),
    ]
    detail = [
        Section(_l("Service"), [
            Field("name", _l("Service")),
            Field("description", _l("Description"), wide=True),
            Field("contract_reference", _l("Contract")),
            Field("start_date", _l("Contract start")),
            Field("end_date", _l("Contract end")),
            Field("active", _l("Active")),
        ]),
        Section(_l("Hours"), [
            Field("contracted_hours", _l("Contracted hours"), format=hours),
            Field("used_hours", _l("Hours used"), format=hours),
            Field("remaining_hours", _l("Hours left"), format=hours),
        ]),
    ]

    def buttons(self):
        return [Button("services.list", _l("Contracted services"), endpoint="services.list", icon="briefcase",
                       description=_l("Services and hours in your contract"))]

    def admin_views(self):
        return admin.views(self)

    def detail_context(self, record: Service, user: Any):
        return views.detail_context(record, user)

    def demo_data(self, ctx: DemoContext) -> None:
        demo.load(ctx)

    # --- offered to other modules (the tickets wizard), looked up through the registry ---------
    def services_for(self, user: Any) -> list[ServiceChoice]:
        """The active services ``user`` may open tickets on (see :func:`views.services_for`)."""
        return views.services_for(self, user)

    def service_choice(self, user: Any, service_id: Any, subcategory_id: Any = None) -> ServiceChoice | None:
        """``service_id`` (and ``subcategory_id``) if ``user`` may use them, else ``None``."""
        return views.service_choice(self, user, service_id, subcategory_id)
