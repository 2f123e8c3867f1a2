"""Account operations shared by the portal pages and Flask-Admin.

Every function that changes data expects to run inside the caller's transaction and queues its
email there (:func:`crm_portal.outbox.queue_email`, which has the worker send it right after the
commit), returning the outbox row.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import current_app

from .. import signals
from ..audit import audit
from ..auth import hash_password
from ..db import utcnow
from ..models import AccountToken, Company, Contact, OutboxMessage, Profile, new_token
from ..outbox import external_url, queue_email
from . import tokens

#: At most this many password-reset emails per contact per hour (the rest are silently skipped).
RESET_EMAILS_PER_HOUR = 5


def _hours(seconds: int) -> int:
    return max(1, round(int(seconds) / 3600))


def send_invitation(contact: Contact) -> OutboxMessage:
    """Email ``contact`` a one-time link to choose a password (never the password itself)."""
    token = tokens.issue(contact, "invite")
    audit("invitation-sent", contact)
    return queue_email(contact.email, "invitation", language=contact.language, contact=contact,
                       link=external_url("account.accept_invitation", token=token),
                       hours=_hours(current_app.config["INVITATION_MAX_AGE"]))


def send_access_enabled(contact: Contact) -> OutboxMessage:
    """Tell a contact who already has a password that their portal access is active."""
    audit("access-enabled-sent", contact)
    return queue_email(contact.email, "access-enabled", language=contact.language, contact=contact,
                       link=external_url("auth.login"))


def portal_access_granted(contact: Contact) -> OutboxMessage | None:
    """Portal access was just switched on by staff: invite, or announce it (``INVITE_ON_PORTAL_ACCESS``)."""
    if not current_app.config.get("INVITE_ON_PORTAL_ACCESS", True):
        return None
    if contact.password_hash:
        return send_access_enabled(contact)
    return send_invitation(contact)


def send_password_reset(contact: Contact) -> OutboxMessage | None:
    """Email a reset link, unless too many were sent in the last hour."""
    hour_ago = utcnow() - dt.timedelta(hours=1)
    recent = AccountToken.select().where((AccountToken.contact == contact.id) & (AccountToken.purpose == "reset")
                                         & (AccountToken.created_at > hour_ago)).count()
    if recent >= RESET_EMAILS_PER_HOUR:
        return None
    token = tokens.issue(contact, "reset")
    audit("password-reset-requested", contact, system=True)
    return queue_email(contact.email, "password-reset", language=contact.language, contact=contact,
                       link=external_url("account.reset_password", token=token),
                       minutes=max(1, int(current_app.config["PASSWORD_RESET_MAX_AGE"]) // 60))


def set_password(contact: Contact, password: str, *, action: str = "password-changed") -> OutboxMessage:
    """Store a new password: every other session, remember-me cookie and emailed link dies, and the
    contact gets a confirmation email."""
    contact.password_hash = hash_password(password)
    contact.must_change_password = False
    contact.session_token = new_token()
    contact.save()
    tokens.revoke_all(contact)
    audit(action, contact)
    signals.password_changed.send(current_app._get_current_object(), contact=contact)
    return queue_email(contact.email, "password-changed", language=contact.language, contact=contact,
                       link=external_url("account.forgot_password"), when=utcnow())


def set_temporary_password(contact: Contact, password: str) -> None:
    """Staff give ``contact`` a password they must change at their next login. Like any password
    change, it ends the contact's sessions, emailed links and calendar feed address. The caller
    saves ``contact`` (the admin form does) in the same transaction."""
    contact.password_hash = hash_password(password)
    contact.must_change_password = True
    contact.session_token = new_token()
    if contact.id is not None:  # a contact being created has nothing to end yet
        tokens.revoke_all(contact)
        audit("temporary-password-set", contact)
        signals.password_changed.send(current_app._get_current_object(), contact=contact)


def login_email_changed(contact: Contact, old_email: str) -> OutboxMessage | None:
    """The address ``contact`` logs in with changed (staff, the API or the CRM sync changed it).
    Whoever holds the new address can now reset the password, so the change ends every session,
    remember-me cookie and emailed link of the account, and the old address — the owner's, if the
    change was not theirs — is told, with the new one. Call inside the change's transaction."""
    contact.session_token = new_token()
    Contact.update(session_token=contact.session_token).where(Contact.id == contact.id).execute()
    tokens.revoke_all(contact)
    audit("login-email-changed", contact, details={"from": old_email, "to": contact.email})
    if not old_email or not (contact.password_hash or contact.portal_access):
        return None  # no account to take over: nobody to warn
    return queue_email(old_email, "email-changed", language=contact.language, contact=contact,
                       old_email=old_email, support=current_app.config["SUPPORT_EMAIL"])


def revoke_access(contact: Contact) -> None:
    """Switch off ``contact``'s portal access, and everything that would let them back in: their
    invitation and reset links, every session and remember-me cookie (the session token rotates)
    and, through :data:`crm_portal.signals.portal_access_revoked`, what modules issued (the
    calendar feed). Every path that takes access away calls this, inside its transaction."""
    contact.portal_access = False
    contact.session_token = new_token()
    Contact.update(portal_access=False, session_token=contact.session_token).where(
        Contact.id == contact.id).execute()
    tokens.revoke_all(contact)
    audit("portal-access-revoked", contact)
    signals.portal_access_revoked.send(current_app._get_current_object(), contact=contact)


def request_change(contact: Contact, field: str, label: str, message: str) -> OutboxMessage | None:
    """A contact asks for a change of data they cannot edit. A receiver of
    :data:`crm_portal.signals.change_requested` (the tickets module) may take it over; otherwise the
    request goes to ``SUPPORT_EMAIL``."""
    results = signals.change_requested.send(current_app._get_current_object(), contact=contact, field=field,
                                            message=message)
    audit("change-requested", contact, details={"field": field})
    if any(value for _, value in results):
        return None
    return queue_email(current_app.config["SUPPORT_EMAIL"], "change-request",
                       language=current_app.config["BABEL_DEFAULT_LOCALE"], contact=contact, field=label,
                       message=message, admin_link=_admin_link(contact))


def _admin_link(contact: Contact) -> str | None:
    try:
        return external_url("core_contact.edit_view", id=contact.id)
    except Exception:  # noqa: BLE001 - admin not mounted
        return None


# --- self-registration ---------------------------------------------------------------------------

def normalize_vat(value: str | None) -> str:
    return re.sub(r"[^A-Z0-9]", "", (value or "").upper())


def match_company(email: str, vat_number: str | None) -> tuple[Company | None, bool]:
    """The company a registrant belongs to and whether that match is trusted enough to activate
    the account without staff (``REGISTRATION_AUTO_APPROVE``)."""
    policy = current_app.config.get("REGISTRATION_AUTO_APPROVE", "domain")
    domain = email.rpartition("@")[2].lower()
    company = Company.select().where(Company.email_domain == domain).first() if domain else None
    if company is not None:
        return company, policy in ("domain", "domain_or_vat")
    vat = normalize_vat(vat_number)
    if len(vat) >= 8:
        for candidate in Company.select().where(Company.vat_number.is_null(False)):
            stored = normalize_vat(candidate.vat_number)
            if stored == vat or stored.removeprefix("IT") == vat.removeprefix("IT"):
                return candidate, policy == "domain_or_vat"
    return None, False


def register(data: dict[str, Any], password: str) -> tuple[Contact, list[OutboxMessage]]:
    """Create the contact of a confirmed registration; active at once when the company matches."""
    company, trusted = match_company(data["email"], data.get("vat_number"))
    profile = Profile.get_or_none(Profile.name == current_app.config.get("REGISTRATION_PROFILE"))
    contact = Contact.create(
        first_name=data["first_name"][:100], last_name=data["last_name"][:100], email=data["email"],
        phone=(data.get("phone") or None), company=company, profile=profile, language=data.get("language"),
        portal_access=trusted, password_hash=hash_password(password),
    )
    audit("registered", contact, details={"company": company.id if company else None, "active": trusted,
                                          "company_name": data.get("company_name"),
                                          "vat_number": data.get("vat_number")})
    messages = []
    if not trusted:
        messages.append(queue_email(
            current_app.config["SUPPORT_EMAIL"], "registration-review",
            language=current_app.config["BABEL_DEFAULT_LOCALE"], contact=contact, company=company,
            company_name=data.get("company_name"), vat_number=data.get("vat_number"),
            admin_link=_admin_link(contact)))
    signals.account_registered.send(current_app._get_current_object(), contact=contact, active=trusted)
    return contact, messages
