"""One record pushed by a CRM, by its external id: created, linked, updated or left unchanged.

The first push of an external id without a reference looks for the record by its attributes: a
company by VAT number, then by email domain; a contact by email. No match: created. One: linked
(the reference is written) and updated. Several: a :class:`~crm_portal.models.SyncConflict` for
staff, and the outcome ``conflict``. Later pushes follow the reference; a push that changes
nothing writes nothing and sends no signal (``unchanged``).

References between records use external ids: ``company_external_id`` on a contact names a company
the same integration pushed before. The caller holds the transaction (a savepoint per item).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from flask_babel import gettext as _
from peewee import fn

from ..audit import audit
from ..crm_records import (
    CompanyData,
    ContactData,
    RecordInvalid,
    create_company,
    create_contact,
    load,
    update_company,
    update_contact,
)
from ..db import utcnow
from ..models import Company, Contact, ExternalRef, Integration, SyncConflict
from ..scoping import IntegrationPrincipal
from . import files as sync_files
from .files import PushFiles
from .module_records import create_record, update_record
from .ownership import PORTAL_OWNED, crm_owned
from .types import SyncType, schema_of, sync_types

MAX_EXTERNAL_ID = 200
STATUSES = ("created", "updated", "unchanged", "conflict", "error")

_SCHEMAS: dict[str, type[ma.Schema]] = {"company": CompanyData, "contact": ContactData}


@dataclasses.dataclass
class Outcome:
    """What a push did. ``linked``: the reference was written by this push (found by attributes)."""

    external_id: str
    status: str
    id: int | None = None
    changes: list[str] = dataclasses.field(default_factory=list)
    linked: bool = False
    candidates: list[int] = dataclasses.field(default_factory=list)
    errors: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"external_id": self.external_id, "status": self.status, "id": self.id}
        if self.status in ("created", "updated", "unchanged"):
            found.update(changes=self.changes, linked=self.linked)
        if self.candidates:
            found["candidates"] = self.candidates
        if self.errors:
            found["errors"] = self.errors
        return found


def check_external_id(external_id: Any) -> str:
    """A usable external id (1–200 printable characters), else :class:`RecordInvalid`."""
    if not isinstance(external_id, str) or not external_id.strip() or len(external_id) > MAX_EXTERNAL_ID \
            or not external_id.isprintable():
        raise RecordInvalid({"external_id": [_("Give the record's id in the CRM: 1 to %(max)d printable "
                                               "characters.", max=MAX_EXTERNAL_ID)]})
    return external_id.strip()


# --- the payload ---------------------------------------------------------------------------------

def allowed_keys(kind: str) -> frozenset[str]:
    """The payload keys of ``kind``: its CRM-owned fields, references as ``<field>_external_id``,
    and its files (``Module.sync_files``)."""
    stype = sync_types()[kind]
    return frozenset(stype.key_of(name) for name in crm_owned(kind)) | frozenset(stype.files)


def _key_errors(kind: str, data: Mapping[str, Any]) -> dict[str, list[str]]:
    stype = sync_types()[kind]
    allowed = allowed_keys(kind)
    errors: dict[str, list[str]] = {}
    for key in data:
        if key in allowed:
            continue
        if key in PORTAL_OWNED.get(kind, ()):
            errors[key] = [_("This field belongs to the portal: sync never changes it.")]
        elif key in {stype.key_of(name) for name in stype.fields}:
            errors[key] = [_("This field is not owned by the CRM (SYNC_CRM_OWNED_FIELDS): sync does not "
                             "change it.")]
        else:
            errors[key] = [_("Unknown field.")]
    return errors


class RefCache:
    """External references of one integration, looked up once per (type, external id)."""

    def __init__(self, integration: Integration) -> None:
        self.integration = integration
        self._found: dict[tuple[str, str], ExternalRef | None] = {}

    def prefetch(self, kind: str, external_ids: list[str]) -> None:
        """Load the references of many external ids in one query (a batch)."""
        wanted = [e for e in external_ids if (kind, e) not in self._found]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            for e in chunk:
                self._found[(kind, e)] = None
            for ref in ExternalRef.select().where((ExternalRef.integration == self.integration.id)
                                                  & (ExternalRef.type == kind)
                                                  & ExternalRef.external_id.in_(chunk)):
                self._found[(kind, ref.external_id)] = ref

    def get(self, kind: str, external_id: str) -> ExternalRef | None:
        key = (kind, external_id)
        if key not in self._found:
            self._found[key] = ExternalRef.get_or_none(
                (ExternalRef.integration == self.integration.id) & (ExternalRef.type == kind)
                & (ExternalRef.external_id == external_id))
        return self._found[key]

    def put(self, ref: ExternalRef | None, kind: str, external_id: str) -> None:
        self._found[(kind, external_id)] = ref

    def forget(self) -> None:
        """After a rolled-back savepoint: what was cached may not exist."""
        self._found.clear()


def _reference(stype: SyncType, field: str, value: Any, refs: RefCache) -> tuple[Any, list[str] | None]:
    """The record id a ``<field>_external_id`` names, or the message refusing it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if not stype.model._meta.fields[field].null:
            return None, [_("Missing data for required field.")]
        return None, None
    kind = stype.references[field]
    if not isinstance(value, str):
        return None, [_("Give the external id as text.")]
    ref = refs.get(kind, value.strip())
    if ref is None or ref.deleted_at is not None:
        if kind == "company":
            return None, [_("No company has this external id: push the company first.")]
        return None, [_("No contact has this external id: push the contact first.")]
    return ref.record_id, None


def _values(kind: str, data: Mapping[str, Any], refs: RefCache, *, partial: bool) -> dict[str, Any]:
    stype = sync_types()[kind]
    errors = _key_errors(kind, data)
    payload = {k: v for k, v in data.items() if k not in errors}
    given = {field: payload.pop(stype.key_of(field)) for field in stype.references
             if stype.key_of(field) in payload}
    pushed_files = {key: payload.pop(key) for key in stype.files if key in payload}
    values: dict[str, Any] = {}
    try:
        values = load(_SCHEMAS.get(kind) or schema_of(stype), payload, partial=partial)
    except RecordInvalid as exc:
        errors.update(exc.errors)
    for key, value in pushed_files.items():  # decoded here, stored by module_records once all is valid
        try:
            values[key] = sync_files.decode(value)
        except ValueError as exc:
            errors[key] = [str(exc)]
        else:
            if values[key] is None and stype.files[key].required:
                errors[key] = [_("This file is required: it cannot be removed.")]
    for field, value in given.items():
        record_id, problem = _reference(stype, field, value, refs)
        if problem:
            errors[stype.key_of(field)] = problem
        else:
            values["company_id" if stype.core else field] = record_id
    if not partial:  # a new record needs its required references
        for field in stype.references:
            if field not in given and not stype.model._meta.fields[field].null and field in crm_owned(kind):
                errors.setdefault(stype.key_of(field), [_("Missing data for required field.")])
        for key, spec in stype.files.items():
            if spec.required and key not in pushed_files:
                errors.setdefault(key, [_("Missing data for required field.")])
    if errors:
        raise RecordInvalid(errors)
    return values


# --- finding the record ---------------------------------------------------------------------------

def _normalized_vat(value: str) -> str:
    from ..account.service import normalize_vat

    return normalize_vat(value)


def candidates(kind: str, values: Mapping[str, Any]) -> list[int]:
    """Ids of our records the pushed values describe: a company by VAT number, then email domain;
    a contact by email."""
    if not sync_types()[kind].core:
        return []  # a module's records are found by their reference only
    if kind == "contact":
        email = values.get("email")
        if not email:
            return []
        return [c.id for c in Contact.select(Contact.id).where(fn.LOWER(Contact.email) == email.lower())]
    vat = _normalized_vat(values.get("vat_number") or "")
    if vat:
        stored = fn.UPPER(fn.REPLACE(fn.REPLACE(fn.REPLACE(Company.vat_number, " ", ""), ".", ""), "-", ""))
        variants = {vat, vat.removeprefix("IT"), "IT" + vat.removeprefix("IT")}
        found = [c.id for c in Company.select(Company.id).where(stored.in_(sorted(variants))).order_by(Company.id)]
        if found:
            return found
    domain = (values.get("email_domain") or "").lower()
    if domain:
        return [c.id for c in Company.select(Company.id).where(fn.LOWER(Company.email_domain) == domain)
                .order_by(Company.id)]
    return []


def _conflict(integration: Integration, kind: str, external_id: str, data: Mapping[str, Any],
              found: list[int]) -> SyncConflict:
    """The open conflict of this external id, created or refreshed with the latest push."""
    row = SyncConflict.get_or_none((SyncConflict.integration == integration.id) & (SyncConflict.type == kind)
                                   & (SyncConflict.external_id == external_id) & SyncConflict.resolved_at.is_null())
    payload = json.dumps(dict(data), default=str, ensure_ascii=False)
    if row is None:
        return SyncConflict.create(integration=integration.id, type=kind, external_id=external_id,
                                   payload=payload, candidates=json.dumps(found))
    SyncConflict.update(payload=payload, candidates=json.dumps(found)).where(SyncConflict.id == row.id).execute()
    return row


def link(integration: Integration, kind: str, external_id: str, record_id: int, *, user: Any) -> ExternalRef:
    """Write the reference of ``external_id`` to our ``record_id`` (audited)."""
    ref = ExternalRef.create(integration=integration.id, type=kind, external_id=external_id, record_id=record_id)
    audit("sync-linked", object_type=sync_types()[kind].model._meta.table_name, object_id=record_id, user=user,
          details={"integration": integration.name, "external_id": external_id})
    return ref


# --- the push -------------------------------------------------------------------------------------

def _write(kind: str, row: Any, values: dict[str, Any], user: Any, details: dict[str, Any],
           files: PushFiles) -> Any:
    if not sync_types()[kind].core:
        return create_record(sync_types()[kind], values, user=user, details=details, files=files) if row is None \
            else update_record(sync_types()[kind], row, values, user=user, details=details, files=files)
    if kind == "company":
        return create_company(values, user=user, details=details) if row is None \
            else update_company(row, values, user=user, details=details)
    return create_contact(values, user=user, details=details) if row is None \
        else update_contact(row, values, user=user, details=details)


def _reported(kind: str, names: Any) -> list[str]:
    """The fields written, a file's columns named by its payload key (``file``)."""
    columns = {column: key for key, spec in sync_types()[kind].files.items() for column in spec.columns().values()}
    return sorted({columns.get(name, name) for name in names})


def upsert(integration: Integration, kind: str, external_id: str, data: Mapping[str, Any], *,
           refs: RefCache | None = None, user: Any = None, files: PushFiles | None = None) -> Outcome:
    """Apply one push; :class:`RecordInvalid` for values refused (the caller rolls back).

    ``files`` collects the files the push stores and replaces: the caller discards them when its
    savepoint rolls back and settles them when it succeeds. Without it, a failure here removes the
    stored files and a success schedules the replaced ones' removal after the commit."""
    if files is not None:
        return _upsert(integration, kind, external_id, data, refs, user, files)
    own = PushFiles()
    try:
        outcome = _upsert(integration, kind, external_id, data, refs, user, own)
    except BaseException:
        own.discard()
        raise
    own.settle()
    return outcome


def _upsert(integration: Integration, kind: str, external_id: str, data: Mapping[str, Any],
            refs: RefCache | None, user: Any, files: PushFiles) -> Outcome:
    if kind not in sync_types():
        raise RecordInvalid({"type": [_("Unknown record type.")]})
    external_id = check_external_id(external_id)
    if not isinstance(data, Mapping):
        raise RecordInvalid({"data": [_("Give a JSON object.")]})
    refs = refs or RefCache(integration)
    user = user or IntegrationPrincipal(integration)
    details = {"via": "sync", "integration": integration.name, "external_id": external_id}
    model = sync_types()[kind].model
    ref = refs.get(kind, external_id)
    row = model.get_or_none(model.id == ref.record_id) if ref is not None else None
    if ref is not None and row is None:  # our record was deleted here: the next push starts again
        ref.delete_instance()
        ref = None
        refs.put(None, kind, external_id)
    if ref is not None:
        values = _values(kind, data, refs, partial=True)
        changes = _write(kind, row, values, user, details, files)
        restored = ref.deleted_at is not None
        if changes or restored:
            ExternalRef.update(updated_at=utcnow(), deleted_at=None).where(ExternalRef.id == ref.id).execute()
            ref.deleted_at = None
        status = "updated" if changes or restored else "unchanged"
        return Outcome(external_id, status, row.id, _reported(kind, changes))
    values = _values(kind, data, refs, partial=True)
    found = candidates(kind, values)
    if len(found) == 1:
        taken = ExternalRef.get_or_none((ExternalRef.integration == integration.id) & (ExternalRef.type == kind)
                                        & (ExternalRef.record_id == found[0]))
        if taken is None:
            ref = link(integration, kind, external_id, found[0], user=user)
            refs.put(ref, kind, external_id)
            row = model.get_by_id(found[0])
            changes = _write(kind, row, values, user, details, files)
            return Outcome(external_id, "updated" if changes else "unchanged", row.id, _reported(kind, changes),
                           linked=True)
    if found:
        conflict = _conflict(integration, kind, external_id, data, found)
        audit("sync-conflict", conflict, user=user, details={**details, "candidates": found})
        return Outcome(external_id, "conflict", None, candidates=found)
    values = _values(kind, data, refs, partial=False)
    row = _write(kind, None, values, user, details, files)
    ref = link(integration, kind, external_id, row.id, user=user)
    refs.put(ref, kind, external_id)
    return Outcome(external_id, "created", row.id, _reported(kind, values))


def resolve_conflict(conflict: SyncConflict, record_id: int, *, user: Any = None) -> Outcome:
    """Staff chose ``record_id`` for ``conflict``: link it and apply the pushed data (the caller
    holds the transaction; :class:`RecordInvalid` if the data no longer fits)."""
    integration = Integration.get_by_id(conflict.integration_id)
    model = sync_types()[conflict.type].model
    if not model.select().where(model.id == record_id).exists():
        raise RecordInvalid({"record_id": [_("That record does not exist any more.")]})
    existing = ExternalRef.get_or_none((ExternalRef.integration == integration.id)
                                       & (ExternalRef.type == conflict.type)
                                       & (ExternalRef.external_id == conflict.external_id))
    if existing is None:
        link(integration, conflict.type, conflict.external_id, record_id, user=user)
    else:
        ExternalRef.update(record_id=record_id, deleted_at=None, updated_at=utcnow()).where(
            ExternalRef.id == existing.id).execute()
    SyncConflict.update(resolved_at=utcnow(), record_id=record_id).where(SyncConflict.id == conflict.id).execute()
    audit("sync-conflict-resolved", conflict, user=user, details={"record_id": record_id})
    return upsert(integration, conflict.type, conflict.external_id, json.loads(conflict.payload),
                  user=IntegrationPrincipal(integration))
