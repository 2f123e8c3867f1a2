"""The visibility gate: the only way any view, export, download or API reads module records.

A module the user's profile does not enable, and a record outside the user's scope, both answer
404: exactly what a record that does not exist answers, so nothing leaks about other customers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import peewee as pw
from flask import abort, current_app
from flask_login import current_user

if TYPE_CHECKING:  # pragma: no cover
    from .api import Module
    from .models import ProfileModule


#: The scope of an integration reading through the REST API without acting as a contact: every
#: record of the module, as staff see them in the admin. Only :class:`IntegrationPrincipal` has it.
ALL_RECORDS = "all"


class IntegrationPrincipal:
    """An integration calling the REST API with its own key, acting as no contact.

    Its API key's scopes (checked by crm_portal.rest before the gate) decide which modules it
    reads; within a module it reaches every record (:data:`ALL_RECORDS`). An integration acting as
    a contact passes that contact's :class:`~crm_portal.auth.PortalUser` instead, never this.
    """

    is_authenticated = True
    is_staff = False
    contact_id = None
    company_id = None

    def __init__(self, integration: Any) -> None:
        self.integration = integration

    def can(self, module: str, action: str = "view") -> bool:
        return True


def _module(module: Module | str) -> Module:
    if isinstance(module, str):
        found = current_app.extensions["crm_portal"].modules.get(module)
        if found is None:
            abort(404)
        return found
    return module


def _user(user: Any) -> Any:
    return current_user if user is None else user


def require(module: Module | str, action: str = "view", user: Any = None) -> ProfileModule:
    """The user's grant on ``module``. Hidden module → 404; module shown but ``action`` not granted → 403."""
    module = _module(module)
    user = _user(user)
    if isinstance(user, IntegrationPrincipal):
        from .models import ProfileModule

        return ProfileModule(module=module.name, scope=ALL_RECORDS, actions=",".join(module.actions))
    if user is None or not user.is_authenticated or user.is_staff:
        abort(404)
    grant = user.grant(module.name)
    if grant is None or "view" not in grant.action_set:
        abort(404)
    if action not in grant.action_set:
        abort(403)
    return grant


def visible(module: Module | str, user: Any = None, action: str = "view",
            query: pw.ModelSelect | None = None) -> pw.ModelSelect:
    """``query`` (default: the module's base query) narrowed to the records ``user`` may reach."""
    module = _module(module)
    user = _user(user)
    grant = require(module, action, user)
    base = module.base_query() if query is None else query
    if grant.scope == ALL_RECORDS and isinstance(user, IntegrationPrincipal):
        return base
    return module.scope_query(base, user, grant.scope)


def get_or_404(module: Module | str, record_id: Any, user: Any = None, action: str = "view",
               query: pw.ModelSelect | None = None) -> Any:
    """The record ``record_id`` if ``user`` may reach it for ``action``, else 404 (or 403 for an
    action their profile does not grant on a record they can see)."""
    module = _module(module)
    user = _user(user)
    record_model = module.record
    assert record_model is not None
    try:
        pk = record_model._meta.primary_key.adapt(record_id)
    except (TypeError, ValueError):
        abort(404)
    if isinstance(pk, int) and not -(2**31) <= pk < 2**31:
        abort(404)  # beyond any id column; PostgreSQL would raise "integer out of range"
    # Scope first with "view": a record outside scope is a 404 whatever the action.
    found = visible(module, user, "view", query).where(record_model._meta.primary_key == pk).first()
    if found is None:
        abort(404)
    if action != "view":
        require(module, action, user)
    return found
