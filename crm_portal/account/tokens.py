"""Signed one-time links: invitation, password reset and self-registration confirmation.

A link carries an itsdangerous signature with its issue time. Invitation and reset links also name
an :class:`~crm_portal.models.AccountToken` row (by nonce) and a fingerprint of the password at issue
time: the link works once, stops working when a newer link of the same kind is issued, and dies with
any password change and whenever the contact has no portal access (a link never switches access
back on). Expiry is checked against :func:`now`, which tests patch to freeze the clock:
a link is valid up to exactly ``max_age`` seconds after issue and invalid one second later.
"""
from __future__ import annotations

import enum
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from ..db import db, utcnow
from ..models import AccountToken, Contact, StaffToken, StaffUser

MAX_AGE_SETTING = {"invite": "INVITATION_MAX_AGE", "reset": "PASSWORD_RESET_MAX_AGE",
                   "register": "REGISTRATION_MAX_AGE", "staff-reset": "PASSWORD_RESET_MAX_AGE"}


def now() -> float:
    """Seconds since the epoch (the clock of every token; patched in tests)."""
    return time.time()


class _ClockSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(now())


class TokenError(enum.Enum):
    INVALID = "invalid"        # tampered, truncated or signed with another key
    EXPIRED = "expired"
    USED = "used"              # already used once
    SUPERSEDED = "superseded"  # a newer link was sent, or the password changed since


@dataclass
class TokenCheck:
    contact: Contact | None = None
    row: AccountToken | None = None
    data: dict[str, Any] | None = None
    error: TokenError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"crm-portal-account-{purpose}",
                                  signer=_ClockSigner)


def password_fingerprint(contact: Contact | StaffUser) -> str:
    return hashlib.sha256((contact.password_hash or "-").encode()).hexdigest()[:16]


def issue(contact: Contact, purpose: str) -> str:
    """A new link token for ``contact``; older unused ones of the same purpose stop working.
    Call inside the transaction that queues the email."""
    assert purpose in AccountToken.PURPOSES
    with db.atomic():
        AccountToken.update(revoked_at=utcnow()).where(
            (AccountToken.contact == contact.id) & (AccountToken.purpose == purpose)
            & AccountToken.used_at.is_null() & AccountToken.revoked_at.is_null()).execute()
        row = AccountToken.create(contact=contact.id, purpose=purpose)
    return _serializer(purpose).dumps({"c": contact.id, "n": row.nonce, "p": password_fingerprint(contact)})


def revoke_all(contact: Contact) -> None:
    """Every outstanding link of ``contact`` stops working (password changed, access revoked)."""
    AccountToken.update(revoked_at=utcnow()).where(
        (AccountToken.contact == contact.id) & AccountToken.used_at.is_null()
        & AccountToken.revoked_at.is_null()).execute()


def _load(token: str, purpose: str, max_age: int | None) -> tuple[Any, TokenError | None]:
    if not token or len(token) > 4096:
        return None, TokenError.INVALID
    max_age = max_age if max_age is not None else int(current_app.config[MAX_AGE_SETTING[purpose]])
    try:
        return _serializer(purpose).loads(token, max_age=max_age), None
    except SignatureExpired:
        return None, TokenError.EXPIRED
    except BadSignature:
        return None, TokenError.INVALID


def check(token: str, purpose: str, *, max_age: int | None = None) -> TokenCheck:
    """Whether an invitation or reset ``token`` may be used now (nothing is changed)."""
    data, error = _load(token, purpose, max_age)
    if error:
        return TokenCheck(error=error)
    if not isinstance(data, dict) or not isinstance(data.get("c"), int) or not isinstance(data.get("n"), str):
        return TokenCheck(error=TokenError.INVALID)
    row = AccountToken.get_or_none((AccountToken.nonce == data["n"]) & (AccountToken.purpose == purpose))
    contact = Contact.get_or_none(Contact.id == data["c"])
    if row is None or contact is None or row.contact_id != contact.id:
        return TokenCheck(error=TokenError.SUPERSEDED)
    if row.used_at is not None:
        return TokenCheck(contact=contact, error=TokenError.USED)
    if row.revoked_at is not None or data.get("p") != password_fingerprint(contact):
        return TokenCheck(contact=contact, error=TokenError.SUPERSEDED)
    if not contact.portal_access:  # access revoked (or never given): staff decide, not a link
        return TokenCheck(contact=contact, error=TokenError.SUPERSEDED)
    return TokenCheck(contact=contact, row=row, data=data)


def consume(result: TokenCheck) -> bool:
    """Mark a checked token used; False if another request used it first or access was revoked
    meanwhile. Call inside the transaction that sets the password."""
    assert result.row is not None
    with_access = Contact.select(Contact.id).where(Contact.portal_access == True)  # noqa: E712
    return AccountToken.update(used_at=utcnow()).where(
        (AccountToken.id == result.row.id) & AccountToken.used_at.is_null()
        & AccountToken.revoked_at.is_null() & AccountToken.contact.in_(with_access)).execute() == 1


def issue_registration(data: dict[str, Any]) -> str:
    """A confirmation token carrying the registration form (nothing is stored before confirmation)."""
    return _serializer("register").dumps(data)


def check_registration(token: str, *, max_age: int | None = None) -> TokenCheck:
    data, error = _load(token, "register", max_age)
    if error:
        return TokenCheck(error=error)
    if not isinstance(data, dict) or not isinstance(data.get("email"), str):
        return TokenCheck(error=TokenError.INVALID)
    if Contact.get_or_none(Contact.email == data["email"]) is not None:
        return TokenCheck(data=data, error=TokenError.USED)
    return TokenCheck(data=data)


# --- staff: the admin's forgotten-password links ---------------------------------------------------

@dataclass
class StaffTokenCheck:
    staff: StaffUser | None = None
    row: StaffToken | None = None
    error: TokenError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def issue_staff(staff: StaffUser) -> str:
    """A new reset link for ``staff``; their older unused ones stop working."""
    with db.atomic():
        revoke_all_staff(staff)
        row = StaffToken.create(staff=staff.id)
    return _serializer("staff-reset").dumps({"s": staff.id, "n": row.nonce, "p": password_fingerprint(staff)})


def revoke_all_staff(staff: StaffUser) -> None:
    StaffToken.update(revoked_at=utcnow()).where(
        (StaffToken.staff == staff.id) & StaffToken.used_at.is_null() & StaffToken.revoked_at.is_null()).execute()


def check_staff(token: str, *, max_age: int | None = None) -> StaffTokenCheck:
    """Whether a staff reset ``token`` may be used now: signed, not expired, the newest one, not
    used, the password unchanged since and the staff member still active."""
    data, error = _load(token, "staff-reset", max_age)
    if error:
        return StaffTokenCheck(error=error)
    if not isinstance(data, dict) or not isinstance(data.get("s"), int) or not isinstance(data.get("n"), str):
        return StaffTokenCheck(error=TokenError.INVALID)
    row = StaffToken.get_or_none(StaffToken.nonce == data["n"])
    staff = StaffUser.get_or_none(StaffUser.id == data["s"])
    if row is None or staff is None or row.staff_id != staff.id:
        return StaffTokenCheck(error=TokenError.SUPERSEDED)
    if row.used_at is not None:
        return StaffTokenCheck(staff=staff, error=TokenError.USED)
    if row.revoked_at is not None or data.get("p") != password_fingerprint(staff) or not staff.active:
        return StaffTokenCheck(staff=staff, error=TokenError.SUPERSEDED)
    return StaffTokenCheck(staff=staff, row=row)


def consume_staff(result: StaffTokenCheck) -> bool:
    """Mark a checked staff token used; False if another request used it first."""
    assert result.row is not None
    return StaffToken.update(used_at=utcnow()).where(
        (StaffToken.id == result.row.id) & StaffToken.used_at.is_null()
        & StaffToken.revoked_at.is_null()).execute() == 1
