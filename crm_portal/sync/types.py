"""The record types a CRM may push: the core's companies and contacts, and the records of every
module declaring a ``sync_type`` (products, services, deadlines …) with its ``sync_fields``.

A module type's fields are all the CRM's; its foreign keys to companies and contacts are pushed as
``<field>_external_id``. Its values are validated by a schema made from the model's fields (length,
type, choices, required).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
import peewee as pw
from flask import Flask, current_app

from ..models import Company, Contact
from .files import SyncFile

#: Core fields a CRM may be given, per type (``company`` of a contact: its company, by external id).
CORE_FIELDS: dict[str, tuple[str, ...]] = {
    "company": ("name", "vat_number", "address", "city", "postal_code", "province", "country", "phone",
                "email", "website", "email_domain", "notes", "reserved_conditions"),
    "contact": ("first_name", "last_name", "email", "phone", "mobile", "office", "role", "company", "language"),
}
_REFERENCED = {Company: "company", Contact: "contact"}


@dataclasses.dataclass(frozen=True)
class SyncType:
    """One type of record a CRM pushes."""

    name: str
    model: Any
    #: The module whose records these are (the sender of the record signals).
    module: str
    fields: frozenset[str]
    #: Foreign-key field → the type it refers to (``{"company": "company"}``).
    references: Mapping[str, str]
    deactivate: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    core: bool = False
    #: Payload key → the file it carries and the columns that take it (``Module.sync_files``).
    files: Mapping[str, SyncFile] = dataclasses.field(default_factory=dict)

    def key_of(self, field: str) -> str:
        """The payload key of ``field`` (a reference: ``<field>_external_id``)."""
        return f"{field}_external_id" if field in self.references else field


def _core_types() -> dict[str, SyncType]:
    return {
        "company": SyncType("company", Company, "companies", frozenset(CORE_FIELDS["company"]), {}, core=True),
        "contact": SyncType("contact", Contact, "contacts", frozenset(CORE_FIELDS["contact"]),
                            {"company": "company"}, core=True),
    }


def build(app: Flask) -> dict[str, SyncType]:
    """Every sync type of ``app``'s registry (core first); a module's bad declaration raises."""
    found = _core_types()
    for module in app.extensions["crm_portal"].modules.values():
        name = getattr(module, "sync_type", None)
        if not name or module.record is None:
            continue
        if name in found:
            raise ValueError(f"module {module.name}: sync type {name!r} is taken")
        model = module.record
        unknown = [f for f in module.sync_fields if f not in model._meta.fields]
        if unknown:
            raise ValueError(f"module {module.name}: sync_fields {unknown} are not fields of {model.__name__}")
        references = {}
        for field_name in module.sync_fields:
            fld = model._meta.fields[field_name]
            if isinstance(fld, pw.ForeignKeyField):
                if fld.rel_model not in _REFERENCED:
                    raise ValueError(f"module {module.name}: {field_name} refers to neither companies nor contacts")
                references[field_name] = _REFERENCED[fld.rel_model]
        files = dict(getattr(module, "sync_files", None) or {})
        _check_files(module.name, model, files, module.sync_fields)
        found[name] = SyncType(name, model, module.name, frozenset(module.sync_fields), references,
                               dict(module.sync_deactivate), files=files)
    return found


def _check_files(module: str, model: Any, files: Mapping[str, Any], fields: Any) -> None:
    """A module's ``sync_files``: keys that are no field's, columns of the model, an upload area."""
    for key, spec in files.items():
        if not isinstance(spec, SyncFile):
            raise ValueError(f"module {module}: sync_files[{key!r}] must be a SyncFile")
        if key in fields or key.endswith("_external_id"):
            raise ValueError(f"module {module}: sync_files key {key!r} clashes with a field")
        unknown = [c for c in spec.columns().values() if c not in model._meta.fields]
        if unknown:
            raise ValueError(f"module {module}: sync_files[{key!r}] names {unknown}, not fields of {model.__name__}")
        if not getattr(model, "file_area", None) or spec.stored_name not in (getattr(model, "file_fields", ()) or ()):
            raise ValueError(f"module {module}: {model.__name__} must declare file_area and list "
                             f"{spec.stored_name!r} in file_fields (the file goes with the row)")


def sync_types() -> dict[str, SyncType]:
    """The current application's sync types (built once per application)."""
    found = current_app.extensions.get("crm_portal_sync_types")
    if found is None:
        found = current_app.extensions["crm_portal_sync_types"] = build(current_app)
    return found


# --- the values of a module type ------------------------------------------------------------------

def _load_field(fld: pw.Field) -> ma.fields.Field:
    required = not fld.null and fld.default is None and not isinstance(fld, pw.ForeignKeyField)
    checks: list[Any] = []
    kind: Any
    kwargs: dict[str, Any] = {}
    if isinstance(fld, pw.BooleanField):
        kind = ma.fields.Boolean
    elif isinstance(fld, pw.DateTimeField):
        kind = ma.fields.NaiveDateTime
    elif isinstance(fld, pw.DateField):
        kind = ma.fields.Date
    elif isinstance(fld, pw.DecimalField):
        kind = ma.fields.Decimal
        kwargs["places"] = fld.decimal_places
        checks.append(ma.validate.Range(-(10 ** (fld.max_digits - fld.decimal_places)),
                                        10 ** (fld.max_digits - fld.decimal_places), min_inclusive=False,
                                        max_inclusive=False))
    elif isinstance(fld, pw.IntegerField):
        kind = ma.fields.Integer
        checks.append(ma.validate.Range(-(2**31), 2**31 - 1))
    else:
        kind = ma.fields.String
        size = getattr(fld, "max_length", None) or 20000
        checks.append(ma.validate.Length(min=1 if required else 0, max=size))
    if fld.choices:
        checks.append(ma.validate.OneOf([value for value, _label in fld.choices]))
    return kind(required=required, allow_none=fld.null, validate=checks, **kwargs)


def schema_of(stype: SyncType) -> type[ma.Schema]:
    """The schema of a module type's own fields (its references are resolved apart)."""
    from ..crm_records import CleanedSchema

    cache = current_app.extensions.setdefault("crm_portal_sync_schemas", {})
    if stype.name not in cache:
        attrs = {name: _load_field(stype.model._meta.fields[name]) for name in sorted(stype.fields)
                 if name not in stype.references}
        cache[stype.name] = CleanedSchema.from_dict(attrs, name=f"Sync{stype.name.title()}")
    return cache[stype.name]
