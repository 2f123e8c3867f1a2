"""Services under contract (Servizi a contratto): what the company's contract covers.

Each service has sub-categories, contracted hours and hours used. Services belong to a company:
both scopes show the user's company's services. The tickets wizard asks
:meth:`ServicesModule.services_for` which services (and sub-categories) a user may open tickets on.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import peewee as pw
from flask import current_app
from flask_admin.model.form import InlineFormAdmin
from flask_babel import format_decimal
from wtforms.validators import Optional

from crm_portal.api import (AdminModelView, BaseModel, Button, Column, Company, DemoContext, Field, Module,
                            Section, _l, visible)

__all__ = ["ServicesModule", "Service", "ServiceSubcategory", "ServiceChoice", "services_for"]

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

    class Meta:
        table_name = "services_service"

    def ordered_subcategories(self) -> list["ServiceSubcategory"]:
        return list(self.subcategories.order_by(ServiceSubcategory.position, ServiceSubcategory.name))

    @property
    def remaining_hours(self) -> Decimal:
        return (self.contracted_hours or ZERO) - (self.used_hours or ZERO)


class ServiceSubcategory(BaseModel):
    service = pw.ForeignKeyField(Service, backref="subcategories", on_delete="CASCADE", index=True)
    name = pw.CharField(max_length=200)
    position = pw.IntegerField(default=0)

    class Meta:
        table_name = "services_subcategory"


@dataclasses.dataclass(frozen=True)
class ServiceChoice:
    """A service a user may open tickets on: ``id``, ``name`` and ``subcategories`` as (id, name)."""

    id: int
    name: str
    subcategories: list[tuple[int, str]]


def _hours(value: Any, row: Any = None) -> str:
    return format_decimal(value if value is not None else 0, format="#,##0.##")


def _remaining(value: Any, row: Any) -> str:
    return _hours(row.remaining_hours)


class SubcategoryInline(InlineFormAdmin):
    form_columns = ("id", "name", "position")
    form_args = {"id": {"validators": [Optional()]}}


class ServiceAdmin(AdminModelView):
    roles = ("admin", "operator")
    inline_models = (SubcategoryInline(ServiceSubcategory),)
    column_list = ("company", "name", "contracted_hours", "used_hours", "start_date", "end_date", "active")
    column_searchable_list = ("name", "contract_reference")
    column_filters = ("active", "end_date")


class ServicesModule(Module):
    name = "services"
    label = _l("Contracted services")
    icon = "briefcase"
    description = _l("The services in your contract, with their hours.")
    position = 40
    models = (Service, ServiceSubcategory)
    record = Service
    company_field = Service.company
    default_sort = "name"
    actions = ("view", "export")
    detail_template = "services/detail.html"
    columns = [
        Column(Service.name, _l("Service"), search=True, sort=True, link=True),
        Column(Service.contract_reference, _l("Contract"), search=True, sort=True),
        Column(Service.contracted_hours, _l("Contracted hours"), sort=True, format=_hours),
        Column(Service.used_hours, _l("Hours used"), sort=True, format=_hours),
        Column(Service.id, _l("Hours left"), format=_remaining),
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
            Field("contracted_hours", _l("Contracted hours"), format=_hours),
            Field("used_hours", _l("Hours used"), format=_hours),
            Field("remaining_hours", _l("Hours left"), format=_hours),
        ]),
    ]

    def buttons(self):
        return [Button("services.list", _l("Contracted services"), endpoint="services.list", icon="briefcase",
                       description=_l("Services and hours in your contract"))]

    def admin_views(self):
        return [ServiceAdmin(Service, name=_l("Contracted services"), category=_l("Contracts"),
                             endpoint="services_service")]

    # --- public method for other modules (tickets) ----------------------------------------
    def services_for(self, user: Any) -> list[ServiceChoice]:
        """The active services ``user`` may open tickets on, with their sub-categories, through the
        scoping gate (two queries). A user whose profile does not show this module gets ``[]``."""
        if user is None or not getattr(user, "is_authenticated", False) or not user.can(self.name, "view"):
            return []
        services = list(visible(self, user=user).where(Service.active == True)  # noqa: E712
                        .order_by(Service.position, Service.name, Service.id))
        if not services:
            return []
        subs: dict[int, list[tuple[int, str]]] = {s.id: [] for s in services}
        for sub in (ServiceSubcategory.select()
                    .where(ServiceSubcategory.service.in_(list(subs)))
                    .order_by(ServiceSubcategory.position, ServiceSubcategory.name, ServiceSubcategory.id)):
            subs[sub.service_id].append((sub.id, sub.name))
        return [ServiceChoice(id=s.id, name=s.name, subcategories=subs[s.id]) for s in services]

    def service_choice(self, user: Any, service_id: Any, subcategory_id: Any = None) -> ServiceChoice | None:
        """The :class:`ServiceChoice` ``service_id`` if ``user`` may use it (and, when given,
        ``subcategory_id`` belongs to it), else ``None``: for validating a submitted wizard."""
        try:
            service_id = int(service_id)
            subcategory_id = int(subcategory_id) if subcategory_id not in (None, "") else None
        except (TypeError, ValueError):
            return None
        for choice in self.services_for(user):
            if choice.id == service_id:
                if subcategory_id is None or subcategory_id in {sid for sid, _ in choice.subcategories}:
                    return choice
                return None
        return None

    # --- demo ------------------------------------------------------------------------------
    def demo_data(self, ctx: DemoContext) -> None:
        today = dt.date.today()
        start = today.replace(month=1, day=1)
        end = start.replace(year=start.year + 1) - dt.timedelta(days=1)
        specs = [
            ("acme", "Assistenza sistemistica", "CTR-ACME-2025", "120", "47.5",
             ["Server", "Rete e firewall", "Posta elettronica", "Backup"]),
            ("acme", "Assistenza gestionale", "CTR-ACME-2025", "60", "12",
             ["Contabilità", "Magazzino", "Paghe"]),
            ("acme", "Manutenzione postazioni di lavoro", "CTR-ACME-2025", "40", "38.25",
             ["PC e portatili", "Stampanti"]),
            ("globex", "Help desk", "CTR-GLOBEX-7", "80", "20", ["Utenti", "Microsoft 365"]),
            ("initech", "Assistenza Gold", "CTR-INI-GOLD", "200", "64", ["Server", "Applicazioni", "Sicurezza"]),
            ("umbrella", "Assistenza a consumo", None, "10", "2", ["Generale"]),
        ]
        for position, (company, name, ref, hours, used, subs) in enumerate(specs):
            service = Service.create(company=ctx.companies[company], name=name, contract_reference=ref,
                                     start_date=start, end_date=end, contracted_hours=Decimal(hours),
                                     used_hours=Decimal(used), position=position,
                                     description=f"{name}: interventi da remoto e on-site secondo contratto.")
            for sub_position, sub in enumerate(subs):
                ServiceSubcategory.create(service=service, name=sub, position=sub_position)


def services_for(user: Any) -> list[ServiceChoice]:
    """:meth:`ServicesModule.services_for` of the current application (``[]`` when the module is off)."""
    module = current_app.extensions["crm_portal"].modules.get("services")
    return module.services_for(user) if module is not None else []
