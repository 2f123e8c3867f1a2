"""Writes of a module's records pushed by a CRM (products, services, deadlines …): audited with
the integration as actor and announced with ``record-created`` / ``record-updated`` (sender the
module's name), like the core's companies and contacts (:mod:`crm_portal.crm_records`)."""
from __future__ import annotations

from typing import Any

from flask import current_app

from .. import signals
from ..audit import audit
from ..models import Contact
from .files import PushFiles, apply
from .types import SyncType


def _store_files(stype: SyncType, row: Any, values: dict[str, Any], files: PushFiles | None) -> None:
    if not any(key in values for key in stype.files):
        return
    if files is None:
        raise RuntimeError("a push carrying files needs a PushFiles to track them")
    apply(stype.model, stype.files, row, values, files)


def _check(stype: SyncType, row: Any, values: dict[str, Any]) -> None:
    """A record's contact must belong to its company (what the scoping gate relies on)."""
    from ..crm_records import RecordInvalid

    if "contact" not in stype.references or "company" not in stype.references:
        return
    contact_id = values.get("contact", row.__data__.get("contact") if row is not None else None)
    company_id = values.get("company", row.__data__.get("company") if row is not None else None)
    if contact_id is None or company_id is None:
        return
    if Contact.select(Contact.company).where(Contact.id == contact_id).scalar() != company_id:
        from flask_babel import gettext as _

        raise RecordInvalid({"contact_external_id": [_("This contact does not belong to the record's company.")]})


def create_record(stype: SyncType, values: dict[str, Any], *, user: Any, details: Any,
                  files: PushFiles | None = None) -> Any:
    """Create a record from a push's values (its files stored last, once the rest is valid)."""
    _check(stype, None, values)
    _store_files(stype, None, values, files)
    row = stype.model.create(**values)
    audit("created", row, user=user, details=details)
    module = current_app.extensions["crm_portal"].modules.get(stype.module)
    signals.record_created.send(stype.module, module=module, record=row, user=user)
    return row


def update_record(stype: SyncType, row: Any, values: dict[str, Any], *, user: Any,
                  details: Any, files: PushFiles | None = None) -> dict[str, tuple[Any, Any]]:
    """Write the values that differ from ``row``'s (a file of the same content changes nothing);
    the changes, field → (old, new)."""
    values = dict(values)
    if any(key in values for key in stype.files):
        _check(stype, row, {k: v for k, v in values.items() if k not in stype.files})
        _store_files(stype, row, values, files)
    changes = {name: (row.__data__.get(name), value) for name, value in values.items()
               if row.__data__.get(name) != value}
    if not changes:
        return {}
    _check(stype, row, values)
    for name, (_old, new) in changes.items():
        setattr(row, name, new)
    row.save(only=[stype.model._meta.fields[name] for name in changes])
    audit("updated", row, user=user, details={**details, "fields": sorted(changes)})
    module = current_app.extensions["crm_portal"].modules.get(stype.module)
    signals.record_updated.send(stype.module, module=module, record=row, user=user, changes=changes)
    return changes
