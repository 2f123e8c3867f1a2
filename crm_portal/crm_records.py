"""Companies and contacts written outside the admin: the REST API, CRM sync and CSV imports.

One place validates them (the admin's rules: a unique email, a VAT number of letters, digits and
separators, an existing company) and writes them with their audit entry and the record signals
:data:`crm_portal.signals.record_created` / :data:`~crm_portal.signals.record_updated` (sender the
module name, ``companies`` or ``contacts``; ``user`` the acting principal). The caller holds the
transaction: a :class:`RecordInvalid` leaves nothing written.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from flask import current_app
from flask_babel import gettext as _

from . import signals
from .audit import audit
from .models import Company, Contact, Profile

#: The characters a VAT number may hold (as the registration form): letters, digits, spaces, . and -.
VAT_RE = re.compile(r"^[A-Za-z0-9 .\-]*$")
DOMAIN_RE = re.compile(r"^(?=.{1,200}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
PHONE_RE = re.compile(r"^[0-9+()./\- ]*$")
LANGUAGES = ("it", "en")

#: Record types of this file, by the name of the module whose records they are.
MODULE_OF = {"company": "companies", "contact": "contacts"}


class RecordInvalid(ValueError):
    """Values refused; ``errors`` maps field names to lists of messages (the API's 422)."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = dict(errors)


def _vat(value: str) -> None:
    if not VAT_RE.match(value):
        raise ma.ValidationError(_("Use letters, digits, spaces, dots and dashes only."))


def _domain(value: str) -> None:
    if not DOMAIN_RE.match(value.lower()):
        raise ma.ValidationError(_("Give a domain such as example.com."))


def _phone(value: str) -> None:
    if not PHONE_RE.match(value):
        raise ma.ValidationError(_("Use digits, spaces and + ( ) . / - only."))


def _text(size: int, *, required: bool = False, validate: Any = None, **kwargs: Any) -> ma.fields.String:
    checks = [ma.validate.Length(min=1 if required else 0, max=size)]
    if validate is not None:
        checks.append(validate)
    return ma.fields.String(required=required, allow_none=not required, validate=checks, **kwargs)


class CleanedSchema(ma.Schema):
    """Strings are stripped; an empty string is no value."""

    @ma.pre_load
    def _strip(self, data: Any, **_kwargs: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        cleaned = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = value.strip() or None
            cleaned[key] = value
        return cleaned


class CompanyData(CleanedSchema):
    """A company's values, as the API, sync and imports take them."""

    name = _text(200, required=True)
    vat_number = _text(32, validate=_vat)
    address = _text(200)
    city = _text(100)
    postal_code = _text(16)
    province = _text(64)
    country = _text(64)
    phone = _text(40, validate=_phone)
    email = ma.fields.Email(allow_none=True, validate=ma.validate.Length(max=254))
    website = _text(200)
    email_domain = _text(200, validate=_domain)
    notes = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=20000))
    reserved_conditions = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=20000))

    @ma.post_load
    def _lower(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        if data.get("email_domain"):
            data["email_domain"] = data["email_domain"].lower()
        return data


class ContactData(CleanedSchema):
    """A contact's CRM values (what sync may write), as the API, sync and imports take them."""

    first_name = _text(100, required=True)
    last_name = _text(100, required=True)
    email = ma.fields.Email(required=True, validate=ma.validate.Length(max=254))
    phone = _text(40, validate=_phone)
    mobile = _text(40, validate=_phone)
    office = _text(100)
    role = _text(100)
    company_id = ma.fields.Integer(allow_none=True, validate=ma.validate.Range(1, 2**31 - 1),
                                   metadata={"description": "id of the contact's company"})
    language = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(LANGUAGES))

    @ma.post_load
    def _lower(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        if data.get("email"):
            data["email"] = data["email"].lower()
        return data


class ContactApiData(ContactData):
    """The contacts API also sets the portal's own values, as staff do in the admin."""

    portal_access = ma.fields.Boolean(metadata={"description": "true sends the invitation (or the "
                                                               "access notice), false ends sessions and links"})
    profile = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=64),
                               metadata={"description": "the name of a portal profile"})


def load(schema: type[ma.Schema], data: Any, *, partial: bool = False) -> dict[str, Any]:
    """``data`` validated by ``schema`` (unknown fields refused), else :class:`RecordInvalid`."""
    if not isinstance(data, Mapping):
        raise RecordInvalid({"_schema": [_("Give a JSON object.")]})
    try:
        return schema(partial=partial).load(data)
    except ma.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise RecordInvalid({k: v if isinstance(v, list) else [str(v)] for k, v in messages.items()}) from exc


# --- checks against the database ------------------------------------------------------------------

def _check_contact(values: dict[str, Any], contact: Contact | None) -> None:
    errors: dict[str, list[str]] = {}
    email = values.get("email")
    if email is not None:
        taken = Contact.select(Contact.id).where(Contact.email == email)
        if contact is not None:
            taken = taken.where(Contact.id != contact.id)
        if taken.exists():
            errors["email"] = [_("This email address is already used by another contact.")]
    company_id = values.get("company_id")
    if company_id is not None and not Company.select().where(Company.id == company_id).exists():
        errors["company_id"] = [_("There is no company with this id.")]
    profile = values.get("profile")
    if profile is not None:
        found = Profile.get_or_none(Profile.name == profile)
        if found is None:
            errors["profile"] = [_("There is no profile with this name.")]
        else:
            values["profile"] = found.id
    if errors:
        raise RecordInvalid(errors)


def _module(kind: str) -> Any:
    return current_app.extensions["crm_portal"].modules.get(MODULE_OF[kind])


def _announce(kind: str, record: Any, user: Any, changes: dict[str, tuple[Any, Any]] | None) -> None:
    name = MODULE_OF[kind]
    if changes is None:
        signals.record_created.send(name, module=_module(kind), record=record, user=user)
    else:
        signals.record_updated.send(name, module=_module(kind), record=record, user=user, changes=changes)


def _changes(row: Any, values: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {name: (row.__data__.get(name), value) for name, value in values.items()
            if row.__data__.get(name) != value}


# --- writes -------------------------------------------------------------------------------------------

def create_company(values: dict[str, Any], *, user: Any, details: Any = None) -> Company:
    """A new company of validated ``values``; audited (``created``) and announced."""
    company = Company.create(**values)
    audit("created", company, user=user, details=details or {"via": "api"})
    _announce("company", company, user, None)
    return company


def update_company(company: Company, values: dict[str, Any], *, user: Any,
                   details: Any = None) -> dict[str, tuple[Any, Any]]:
    """Write the validated ``values`` that differ; the changes (none: nothing written, no signal)."""
    changes = _changes(company, values)
    if changes:
        for name, (_old, new) in changes.items():
            setattr(company, name, new)
        company.save(only=[getattr(Company, name) for name in changes])
        audit("updated", company, user=user, details={**(details or {"via": "api"}), "fields": sorted(changes)})
        _announce("company", company, user, changes)
    return changes


def _contact_columns(values: dict[str, Any]) -> dict[str, Any]:
    """Field names of the schemas as the model's columns (``company_id`` → ``company``)."""
    out = dict(values)
    if "company_id" in out:
        out["company"] = out.pop("company_id")
    return out


def create_contact(values: dict[str, Any], *, user: Any, details: Any = None) -> Contact:
    """A new contact of validated ``values`` (email unique, company and profile existing, else
    :class:`RecordInvalid`); with portal access on, the invitation is queued as the admin does."""
    from .account.service import portal_access_granted

    _check_contact(values, None)
    contact = Contact.create(**_contact_columns(values))
    audit("created", contact, user=user, details=details or {"via": "api"})
    if contact.portal_access:
        portal_access_granted(contact)
    _announce("contact", contact, user, None)
    return contact


def update_contact(contact: Contact, values: dict[str, Any], *, user: Any,
                   details: Any = None) -> dict[str, tuple[Any, Any]]:
    """Write the validated ``values`` that differ (checked as for :func:`create_contact`); portal
    access switched off ends the contact's sessions and links, switched on sends the invitation; a
    new email address ends them too and warns the old address (``login_email_changed``)."""
    from .account.service import login_email_changed, portal_access_granted, revoke_access

    _check_contact(values, contact)
    changes = _changes(contact, _contact_columns(values))
    if not changes:
        return {}
    access = changes.pop("portal_access", None)
    for name, (_old, new) in changes.items():
        setattr(contact, name, new)
    if changes:
        contact.save(only=[getattr(Contact, name) for name in changes])
    if "email" in changes:
        login_email_changed(contact, changes["email"][0])
    if access is not None:
        if access[1]:
            Contact.update(portal_access=True).where(Contact.id == contact.id).execute()
            contact.portal_access = True
        else:
            revoke_access(contact)
        changes["portal_access"] = access
    audit("updated", contact, user=user, details={**(details or {"via": "api"}), "fields": sorted(changes)})
    if access is not None and access[1]:
        portal_access_granted(contact)
    _announce("contact", contact, user, changes)
    return changes
