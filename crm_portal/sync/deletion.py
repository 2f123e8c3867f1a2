"""What a deletion in the CRM does here, per type (``SYNC_DELETION_POLICY``):

- ``ignore``: nothing (the reference stays);
- ``deactivate``: a contact loses portal access (sessions and links end); a company, which has no
  state of its own, has the portal access of every contact switched off;
- ``delete``: the record is deleted ``SYNC_DELETE_AFTER_DAYS`` days later by the periodic job
  ``core.sync_purge``, unless the CRM pushes it again before. A contact with support tickets is
  never deleted (tickets are the helpdesk's history): it loses portal access instead.

The reference is marked deleted (``deleted_at``) whatever the policy but ``ignore``; a new push of
the same external id brings it back.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app
from flask_babel import gettext as _

from ..account.service import revoke_access
from ..audit import audit
from ..db import db, utcnow
from ..models import Contact, ExternalRef, Integration
from ..uploads import delete_with_files
from .types import build, sync_types

POLICIES = ("ignore", "deactivate", "delete")
#: Companies and contacts stay (without portal access); a module's records are deleted later, or
#: deactivated when the module says how (``Module.sync_deactivate``).
DEFAULT_POLICY = {"company": "deactivate", "contact": "deactivate"}


class PolicyError(ValueError):
    """``SYNC_DELETION_POLICY`` names an unknown type or policy."""


def check_config(app: Any) -> None:
    types = build(app)
    policies = app.config.get("SYNC_DELETION_POLICY") or {}
    for kind, policy in dict(policies).items():
        if kind not in types or policy not in POLICIES:
            raise PolicyError(f"SYNC_DELETION_POLICY: {kind!r} = {policy!r}; types {sorted(types)}, "
                              f"policies {list(POLICIES)}")
        if policy == "deactivate" and not types[kind].core and not types[kind].deactivate:
            raise PolicyError(f"SYNC_DELETION_POLICY: {kind} records cannot be deactivated; use ignore or delete")
    days = app.config.get("SYNC_DELETE_AFTER_DAYS")
    if not isinstance(days, int) or isinstance(days, bool) or days < 0:
        raise PolicyError("SYNC_DELETE_AFTER_DAYS must be a whole number of days (0 or more)")


def policy_of(kind: str) -> str:
    stype = sync_types()[kind]
    default = DEFAULT_POLICY.get(kind) or ("deactivate" if stype.deactivate else "delete")
    return dict(current_app.config.get("SYNC_DELETION_POLICY") or {}).get(kind, default)


def _delay() -> dt.timedelta:
    return dt.timedelta(days=int(current_app.config["SYNC_DELETE_AFTER_DAYS"]))


def _deactivate(kind: str, record: Any) -> int:
    """Switch portal access off (a contact, or every contact of a company), or write a module
    record's ``sync_deactivate`` values; how many contacts lost access."""
    stype = sync_types()[kind]
    if not stype.core:
        stype.model.update(**stype.deactivate).where(stype.model.id == record.id).execute()
        return 0
    contacts = [record] if kind == "contact" else list(
        Contact.select().where((Contact.company == record.id) & (Contact.portal_access == True)))  # noqa: E712
    count = 0
    for contact in contacts:
        if contact.portal_access:
            revoke_access(contact)
            count += 1
    return count


def delete(integration: Integration, kind: str, ref: ExternalRef, *, user: Any) -> dict[str, Any]:
    """Apply the policy of ``kind`` to the record of ``ref`` (the caller holds the transaction).
    Repeating it changes nothing more."""
    policy = policy_of(kind)
    model = sync_types()[kind].model
    record = model.get_or_none(model.id == ref.record_id)
    answer: dict[str, Any] = {"external_id": ref.external_id, "id": ref.record_id, "policy": policy}
    if policy == "ignore":
        return {**answer, "status": "ignored"}
    first = ref.deleted_at is None
    if first:
        ref.deleted_at = utcnow()
        ExternalRef.update(deleted_at=ref.deleted_at).where(ExternalRef.id == ref.id).execute()
    if policy == "deactivate":
        revoked = _deactivate(kind, record) if record is not None else 0
        if first or revoked:
            audit("sync-deleted", record, object_type=model._meta.table_name, object_id=ref.record_id, user=user,
                  details={"integration": integration.name, "external_id": ref.external_id, "policy": policy,
                           "access_revoked": revoked})
        return {**answer, "status": "deactivated"}
    if first:
        audit("sync-deleted", object_type=model._meta.table_name, object_id=ref.record_id, user=user,
              details={"integration": integration.name, "external_id": ref.external_id, "policy": policy})
    return {**answer, "status": "scheduled", "delete_after": ref.deleted_at + _delay()}


def _has_tickets(contact: Contact) -> bool:
    related = getattr(contact, "tickets", None)
    if related is None or not db.table_exists(related.model._meta.table_name):
        return False
    return bool(related.exists())


def purge(now: dt.datetime | None = None) -> int:
    """Delete the records whose CRM deletion is older than ``SYNC_DELETE_AFTER_DAYS`` (types with
    the ``delete`` policy); how many were deleted. The periodic job ``core.sync_purge``."""
    cutoff = (now or utcnow()) - _delay()
    deleted = 0
    for kind, stype in sync_types().items():
        model = stype.model
        if policy_of(kind) != "delete":
            continue
        refs = list(ExternalRef.select().where((ExternalRef.type == kind) & ExternalRef.deleted_at.is_null(False)
                                               & (ExternalRef.deleted_at <= cutoff)))
        for ref in refs:
            with db.atomic():
                record = model.get_or_none(model.id == ref.record_id)
                if record is not None and kind == "contact" and _has_tickets(record):
                    if record.portal_access:
                        revoke_access(record)
                    audit("sync-purge-kept", record, system=True,
                          details={"reason": _("The contact has support tickets, which are never deleted.")})
                elif record is not None:
                    delete_with_files(record)
                    audit("sync-purged", object_type=model._meta.table_name, object_id=ref.record_id, system=True,
                          details={"external_id": ref.external_id})
                    deleted += 1
                # The record is gone, or stays for good: either way nothing is left to purge.
                ExternalRef.delete().where(ExternalRef.id == ref.id).execute()
    return deleted
