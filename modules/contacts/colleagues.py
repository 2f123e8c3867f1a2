"""What a company's own administrator (the ``manage`` action) does to colleagues, and sees of them.

Every change runs inside the caller's transaction, is audited with the acting contact as actor
(the ``audit`` helper takes the logged-in contact) and is announced as
:data:`crm_portal.signals.colleague_changed`. Emails go through the account operations of the host
(invitation, access-enabled), so the colleague receives exactly what staff would send.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import peewee as pw
from flask import current_app

from crm_portal import signals
from crm_portal.api import (
    AuditEntry,
    Contact,
    Profile,
    _l,
    audit,
    portal_access_granted,
    revoke_access,
    send_invitation,
)

#: How many of a colleague's latest audit entries their detail page shows.
ACTIVITY_ENTRIES = 10

#: Readable names of the audit actions a contact's own work leaves behind.
ACTIVITY_LABELS: Mapping[str, Any] = {
    "login": _l("Logged in"),
    "created": _l("Created a record"),
    "updated": _l("Changed a record"),
    "account-updated": _l("Updated their own data"),
    "password-changed": _l("Changed their password"),
    "password-reset": _l("Reset their password"),
    "invitation-accepted": _l("Accepted the invitation and chose a password"),
    "change-requested": _l("Asked for a change of their data"),
    "document-uploaded": _l("Uploaded a document"),
    "quote-accepted": _l("Accepted a quote"),
    "quote-rejected": _l("Rejected a quote"),
    "calendar-feed-regenerated": _l("Created a new calendar address"),
    "calendar-feed-revoked": _l("Deleted the calendar address"),
    "colleague-invited": _l("Invited a colleague"),
    "colleague-access-revoked": _l("Switched off a colleague's portal access"),
    "colleague-access-enabled": _l("Switched on a colleague's portal access"),
    "colleague-profile-changed": _l("Changed a colleague's profile"),
}

#: Actions on a module record, where the module's name says what was touched.
RECORD_ACTIONS = frozenset({"created", "updated"})


@dataclasses.dataclass(frozen=True)
class Activity:
    """One audit entry as a colleague's administrator reads it."""

    when: dt.datetime
    label: str
    #: The module of the record, or the colleague acted on; ``None`` when the label says it all.
    subject: str | None = None


def assignable_profiles() -> list[Profile]:
    """The profiles staff allow customers' administrators to give (``Profile.assignable``)."""
    return list(Profile.select().where(Profile.assignable == True).order_by(Profile.label_en))  # noqa: E712


def _changed(contact: Contact, by: Contact, change: str, details: dict[str, Any] | None = None) -> None:
    signals.colleague_changed.send(current_app._get_current_object(), contact=contact, by=by, change=change,
                                   details=details or {})


def invite(by: Contact, *, first_name: str, last_name: str, email: str, profile: Profile) -> Contact:
    """Create a colleague of ``by`` with portal access and ``profile``, and queue the invitation
    email. Raises ``peewee.IntegrityError`` when the email is already used."""
    contact = Contact.create(first_name=first_name, last_name=last_name, email=email, company=by.company_id,
                             profile=profile.id, portal_access=True, language=by.language)
    contact.profile = profile
    audit("colleague-invited", contact, details={"email": email, "profile": profile.name})
    send_invitation(contact)
    _changed(contact, by, "invited", {"profile": profile.name})
    return contact


def revoke(by: Contact, contact: Contact) -> bool:
    """Switch off ``contact``'s portal access (their sessions and links end); False if it was off."""
    if not contact.portal_access:
        return False
    revoke_access(contact)
    audit("colleague-access-revoked", contact)
    _changed(contact, by, "access-revoked")
    return True


def enable(by: Contact, contact: Contact) -> str | None:
    """Switch on ``contact``'s portal access and send the invitation (no password yet) or the
    access-enabled notice, as for staff (unless ``INVITE_ON_PORTAL_ACCESS`` is off). ``None`` if
    it was on already, else the email's template name, or ``""`` when no email was sent."""
    switched = Contact.update(portal_access=True).where(
        (Contact.id == contact.id) & (Contact.portal_access == False)).execute()  # noqa: E712
    if not switched:
        return None
    contact.portal_access = True
    audit("colleague-access-enabled", contact)
    message = portal_access_granted(contact)
    _changed(contact, by, "access-enabled")
    return message.template if message is not None else ""


def change_profile(by: Contact, contact: Contact, profile: Profile) -> bool:
    """Give ``contact`` the (assignable, checked by the caller) ``profile``; False if they had it."""
    if contact.profile_id == profile.id:
        return False
    old = Profile.select(Profile.name).where(Profile.id == contact.profile_id).scalar() \
        if contact.profile_id else None
    Contact.update(profile=profile.id).where(Contact.id == contact.id).execute()
    contact.profile = profile
    details = {"from": old, "to": profile.name}
    audit("colleague-profile-changed", contact, details=details)
    _changed(contact, by, "profile-changed", details)
    return True


# --- activity ------------------------------------------------------------------------------------

#: Entries the account operations write beside this module's own (``colleague-invited`` is
#: followed by ``invitation-sent`` …): left out of the activity, which would say everything twice.
COMPANION_ACTIONS = ("invitation-sent", "access-enabled-sent", "portal-access-revoked")


def _by_contact(contact_ids: Iterable[int]) -> pw.Expression:
    return ((AuditEntry.actor_type == "contact") & AuditEntry.actor_id.in_(list(contact_ids))
            & AuditEntry.action.not_in(COMPANION_ACTIONS))


def _module_labels() -> dict[str, Any]:
    modules = current_app.extensions["crm_portal"].modules.values()
    return {m.record._meta.table_name: m.label for m in modules if m.record is not None}


def _describe(entries: list[AuditEntry], company_id: int | None) -> list[Activity]:
    """Readable activities; the colleagues an administrator acted on are named (at most one query
    for all of them), and only colleagues of ``company_id``: a name of another company never shows."""
    contact_ids = {int(e.object_id) for e in entries
                   if e.object_type == Contact._meta.table_name and e.object_id and e.object_id.isdigit()
                   and e.action.startswith("colleague-")}
    names: dict[int, str] = {}
    if contact_ids and company_id is not None:
        rows = Contact.select(Contact.id, Contact.first_name, Contact.last_name).where(
            Contact.id.in_(contact_ids) & (Contact.company == company_id))
        names = {row.id: row.full_name for row in rows}
    modules = _module_labels() if any(e.action in RECORD_ACTIONS for e in entries) else {}
    out = []
    for entry in entries:
        label = ACTIVITY_LABELS.get(entry.action)
        text = str(label) if label is not None else entry.action.replace("-", " ").capitalize()
        subject = None
        if entry.action in RECORD_ACTIONS and entry.object_type in modules:
            subject = str(modules[entry.object_type])
        elif entry.object_id and entry.object_id.isdigit() and int(entry.object_id) in names:
            subject = names[int(entry.object_id)]
        out.append(Activity(when=entry.created_at, label=text, subject=subject))
    return out


def recent_activity(contact: Contact, limit: int = ACTIVITY_ENTRIES) -> list[Activity]:
    """The latest ``limit`` entries of the audit log made by ``contact``, newest first."""
    entries = list(AuditEntry.select().where(_by_contact([contact.id]))
                   .order_by(AuditEntry.id.desc()).limit(limit))
    return _describe(entries, contact.company_id)


def last_activity(contacts: Iterable[Contact], company_id: int | None) -> dict[int, Activity]:
    """Each contact's latest audit entry (contact id → activity), in one query for all of them."""
    ids = [c.id for c in contacts]
    if not ids:
        return {}
    latest = (AuditEntry.select(pw.fn.MAX(AuditEntry.id)).where(_by_contact(ids))
              .group_by(AuditEntry.actor_id))
    entries = list(AuditEntry.select().where(AuditEntry.id.in_(latest)))
    described = zip(entries, _describe(entries, company_id), strict=True)
    return {int(entry.actor_id or 0): activity for entry, activity in described}
