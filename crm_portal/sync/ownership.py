"""Who owns which field of a synced record: the CRM (overwritten by every sync, read-only here once
the record has an external reference) or the portal (never touched by sync).

``SYNC_CRM_OWNED_FIELDS`` names the CRM's fields per type; the portal's own fields of a contact
(portal access, profile, password, notification choices …) can never be given to the CRM.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app

from ..models import ExternalRef
from .types import build, sync_types

#: The default of ``SYNC_CRM_OWNED_FIELDS``: a company's registered data, a contact's name, email,
#: phones, office, role and company.
DEFAULT_CRM_OWNED: dict[str, list[str]] = {
    "company": ["name", "vat_number", "address", "city", "postal_code", "province", "country", "phone",
                "email", "website", "email_domain"],
    "contact": ["first_name", "last_name", "email", "phone", "mobile", "office", "role", "company"],
}

#: Fields the portal always owns: sync refuses a payload naming any of them.
PORTAL_OWNED: dict[str, frozenset[str]] = {
    "contact": frozenset({"portal_access", "profile", "password", "password_hash", "must_change_password",
                          "session_token", "notify_by_email", "notification_events", "last_login"}),
}


class OwnershipError(ValueError):
    """``SYNC_CRM_OWNED_FIELDS`` names a field that cannot be the CRM's."""


def check_config(app: Flask) -> None:
    """Refuse to start with an ownership setting naming unknown types or fields."""
    types = build(app)
    owned = app.config.get("SYNC_CRM_OWNED_FIELDS") or {}
    if not isinstance(owned, Mapping):
        raise OwnershipError("SYNC_CRM_OWNED_FIELDS must map a type (company, contact …) to a list of fields")
    for kind, fields in owned.items():
        if kind not in types:
            raise OwnershipError(f"SYNC_CRM_OWNED_FIELDS: unknown type {kind!r}; known: {sorted(types)}")
        wrong = sorted(set(fields) - types[kind].fields)
        if wrong:
            raise OwnershipError(f"SYNC_CRM_OWNED_FIELDS[{kind!r}]: {wrong} cannot be owned by the CRM; "
                                 f"choose among {sorted(types[kind].fields)}")


def crm_owned(kind: str) -> frozenset[str]:
    """The fields of ``kind`` the CRM owns (the setting, else the default: a module type's
    ``sync_fields``)."""
    stype = sync_types().get(kind)
    if stype is None:
        return frozenset()
    owned = current_app.config.get("SYNC_CRM_OWNED_FIELDS") or {}
    fields: Any = owned.get(kind, DEFAULT_CRM_OWNED.get(kind, stype.fields))
    return frozenset(fields) & stype.fields


def is_linked(kind: str, record_id: int | None) -> bool:
    """Whether a CRM holds ``record_id`` of ``kind`` (a live external reference)."""
    if record_id is None:
        return False
    return ExternalRef.select().where((ExternalRef.type == kind) & (ExternalRef.record_id == record_id)
                                      & ExternalRef.deleted_at.is_null()).exists()


def locked_fields(kind: str, record_id: int | None) -> frozenset[str]:
    """The fields of a record that only the CRM changes: its CRM-owned ones once it is linked."""
    return crm_owned(kind) if is_linked(kind, record_id) else frozenset()
