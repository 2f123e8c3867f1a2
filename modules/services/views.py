"""Services have no pages of their own beyond the host's list and detail: this file computes the
detail page's data, formats hours, and answers the tickets wizard (through the module's
``services_for`` / ``service_choice``) which services a user may open tickets on."""
from __future__ import annotations

import dataclasses
from typing import Any

from flask_babel import format_decimal

from crm_portal.api import Module, ModuleBlueprint, visible

from .models import Service, ServiceSubcategory

bp = ModuleBlueprint("services", __name__)


@dataclasses.dataclass(frozen=True)
class ServiceChoice:
    """A service a user may open tickets on: ``id``, ``name`` and ``subcategories`` as (id, name);
    the tickets category the admins mapped the service (``ticket_category_id``) and each
    sub-category (``subcategory_categories``: sub-category id → category id) to."""

    id: int
    name: str
    subcategories: list[tuple[int, str]]
    ticket_category_id: int | None = None
    subcategory_categories: dict[int, int] = dataclasses.field(default_factory=dict)

    def ticket_category(self, subcategory_id: int | None = None) -> int | None:
        """The tickets category id for a request on this service (and sub-category): the
        sub-category's mapping, else the service's, else ``None`` (the customer chooses)."""
        if subcategory_id is not None and subcategory_id in self.subcategory_categories:
            return self.subcategory_categories[subcategory_id]
        return self.ticket_category_id


# --- formatting --------------------------------------------------------------------------------
def hours(value: Any, row: Any = None) -> str:
    """Hours without trailing zeros, in the user's locale (47,5)."""
    return format_decimal(value if value is not None else 0, format="#,##0.##")


def remaining(value: Any, row: Service) -> str:
    """The hours left of ``row`` (a list cell computed from two columns)."""
    return hours(row.remaining_hours)


# --- template data -----------------------------------------------------------------------------
def detail_context(service: Service, user: Any = None) -> dict[str, Any]:
    """What the detail page shows beyond the declared fields: the sub-categories."""
    return {"subcategories": service.ordered_subcategories()}


# --- for the tickets wizard --------------------------------------------------------------------
def services_for(module: Module, user: Any) -> list[ServiceChoice]:
    """The active services ``user`` may open tickets on, with their sub-categories, through the
    scoping gate (two queries). A user whose profile does not show the module gets ``[]``."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.can(module.name, "view"):
        return []
    services = list(visible(module, user=user).where(Service.active == True)  # noqa: E712
                    .order_by(Service.position, Service.name, Service.id))
    if not services:
        return []
    subs: dict[int, list[tuple[int, str]]] = {s.id: [] for s in services}
    mapped: dict[int, dict[int, int]] = {s.id: {} for s in services}
    for sub in (ServiceSubcategory.select()
                .where(ServiceSubcategory.service.in_(list(subs)))
                .order_by(ServiceSubcategory.position, ServiceSubcategory.name, ServiceSubcategory.id)):
        subs[sub.service_id].append((sub.id, sub.name))
        if sub.ticket_category_id is not None:
            mapped[sub.service_id][sub.id] = sub.ticket_category_id
    return [ServiceChoice(id=s.id, name=s.name, subcategories=subs[s.id], ticket_category_id=s.ticket_category_id,
                          subcategory_categories=mapped[s.id]) for s in services]


def service_choice(module: Module, user: Any, service_id: Any, subcategory_id: Any = None) -> ServiceChoice | None:
    """The :class:`ServiceChoice` ``service_id`` if ``user`` may use it (and, when given,
    ``subcategory_id`` belongs to it), else ``None``: for validating a submitted wizard."""
    try:
        service_id = int(service_id)
        subcategory_id = int(subcategory_id) if subcategory_id not in (None, "") else None
    except (TypeError, ValueError):
        return None
    for choice in services_for(module, user):
        if choice.id == service_id:
            if subcategory_id is None or subcategory_id in {sid for sid, _ in choice.subcategories}:
                return choice
            return None
    return None
