"""The second factor: time-based one-time passwords (TOTP, RFC 6238) and single-use recovery codes.

A contact or staff member enrols by scanning a QR code (or typing the secret) into an
authenticator app and confirming with a current code. The TOTP secret is stored encrypted
(:mod:`crm_portal.mailin.crypto`, a key of its own derived from ``SECRET_KEY``). A code is accepted
one time step (30 s) either side of now, and once only: the step of the last accepted code is
stored and the update that stores it refuses an older or equal step, so two requests racing with
the same code cannot both pass.

Recovery codes are 10 random codes of 50 bits each, stored as HMAC-SHA256 digests under a key
derived from ``SECRET_KEY``: with that much entropy a slow hash (argon2) adds nothing against
guessing, and a keyed digest lets the code be found and spent in one conditional ``UPDATE`` (single
use even under races) instead of verifying ten argon2 hashes per attempt.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import pyotp
import segno
from flask import current_app
from markupsafe import Markup

from .db import db, utcnow
from .mailin import crypto
from .models import Contact, RecoveryCode, SecondFactor, StaffUser

#: The encryption key's label for TOTP secrets.
SECRET_PURPOSE = b"crm_portal.second_factor.totp"
RECOVERY_PURPOSE = b"crm_portal.second_factor.recovery"
RECOVERY_CODES = 10
#: Accepted drift of the authenticator's clock, in time steps either side.
VALID_WINDOW = 1
ISSUER = "CRM Portal"


def now() -> float:
    """The TOTP clock (patched in tests)."""
    return time.time()


def account_id(account: Contact | StaffUser) -> str:
    """``c:<id>`` for a contact, ``s:<id>`` for a staff member."""
    return f"{'s' if isinstance(account, StaffUser) else 'c'}:{account.id}"


def factor_of(account: Contact | StaffUser) -> SecondFactor | None:
    """The account's factor, enabled or waiting for its first code."""
    return SecondFactor.get_or_none(SecondFactor.account == account_id(account))


def enabled_factor(account: Contact | StaffUser) -> SecondFactor | None:
    """The account's factor if it is switched on."""
    factor = factor_of(account)
    return factor if factor is not None and factor.enabled_at is not None else None


def required(account: Contact | StaffUser) -> bool:
    """Must this account log in with a second factor? Staff: ``STAFF_REQUIRE_SECOND_FACTOR``;
    contacts: their profile's or their company's option."""
    if isinstance(account, StaffUser):
        return bool(current_app.config["STAFF_REQUIRE_SECOND_FACTOR"])
    profile = account.profile if account.profile_id is not None else None
    company = account.company if account.company_id is not None else None
    return bool((profile is not None and profile.second_factor_required)
                or (company is not None and company.second_factor_required))


def secret_of(factor: SecondFactor) -> str:
    return crypto.decrypt(factor.secret, SECRET_PURPOSE)


def start_enrolment(account: Contact | StaffUser) -> SecondFactor:
    """A new secret waiting for its first code (replacing an earlier unconfirmed one). The caller
    makes sure no factor is enabled."""
    with db.atomic():
        SecondFactor.delete().where((SecondFactor.account == account_id(account))
                                    & SecondFactor.enabled_at.is_null()).execute()
        return SecondFactor.create(account=account_id(account),
                                   secret=crypto.encrypt(pyotp.random_base32(), SECRET_PURPOSE))


def provisioning_uri(factor: SecondFactor, account: Contact | StaffUser) -> str:
    issuer = str(current_app.config.get("PORTAL_NAME") or ISSUER)
    return pyotp.TOTP(secret_of(factor)).provisioning_uri(name=account.email, issuer_name=issuer)


def qr_svg(uri: str) -> Markup:
    """The QR code of ``uri`` as inline SVG (no script, no external request)."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, border=2, light="#fff", title="QR code")
    return Markup(svg)  # noqa: S704 - segno's own SVG; the URI's characters are escaped by segno


def _matching_step(factor: SecondFactor, code: str) -> int | None:
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    try:
        totp = pyotp.TOTP(secret_of(factor))
    except crypto.PasswordUnreadable:
        current_app.logger.error("second factor %s: secret unreadable (SECRET_KEY changed?)", factor.account)
        return None
    step = int(now()) // totp.interval
    for candidate in range(step - VALID_WINDOW, step + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.at(candidate * totp.interval), code):
            return candidate
    return None


def use_code(factor: SecondFactor, code: str) -> bool:
    """Accept ``code`` if it is current and newer than the last accepted one; store its step."""
    step = _matching_step(factor, code)
    if step is None:
        return False
    with db.atomic():
        changed = SecondFactor.update(last_step=step).where(
            (SecondFactor.id == factor.id) & (SecondFactor.last_step < step)).execute()
    if changed:
        factor.last_step = step
    return bool(changed)


def _digest(code: str) -> str:
    key = hashlib.sha256(RECOVERY_PURPOSE + b"\x00" + str(current_app.config["SECRET_KEY"]).encode()).digest()
    normal = "".join(code.split()).replace("-", "").lower()
    return hmac.new(key, normal.encode(), hashlib.sha256).hexdigest()


_CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def _new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))  # 10 characters of base 32: 50 bits
    return f"{raw[:5]}-{raw[5:]}"


def new_recovery_codes(factor: SecondFactor) -> list[str]:
    """Replace the factor's recovery codes by :data:`RECOVERY_CODES` new ones, returned in clear
    text this once."""
    codes = [_new_code() for _ in range(RECOVERY_CODES)]
    with db.atomic():
        RecoveryCode.delete().where(RecoveryCode.factor == factor.id).execute()
        RecoveryCode.insert_many([{"factor": factor.id, "code_hash": _digest(c)} for c in codes]).execute()
    return codes


def use_recovery_code(factor: SecondFactor, code: str) -> bool:
    """Spend an unused recovery code of the factor (one conditional update: single use)."""
    if not code or len(code) > 40:
        return False
    with db.atomic():
        return bool(RecoveryCode.update(used_at=utcnow()).where(
            (RecoveryCode.factor == factor.id) & (RecoveryCode.code_hash == _digest(code))
            & RecoveryCode.used_at.is_null()).execute())


def unused_recovery_codes(factor: SecondFactor) -> int:
    return RecoveryCode.select().where((RecoveryCode.factor == factor.id) & RecoveryCode.used_at.is_null()).count()


def enable(factor: SecondFactor) -> None:
    """Switch a confirmed factor on (a fresh nonce: earlier remembered devices do not count)."""
    factor.enabled_at = utcnow()
    factor.nonce = secrets.token_hex(16)
    factor.save()


def remove(account: Contact | StaffUser) -> bool:
    """Switch the account's factor off and forget it (recovery codes included)."""
    with db.atomic():
        factor = factor_of(account)
        if factor is None:
            return False
        RecoveryCode.delete().where(RecoveryCode.factor == factor.id).execute()
        factor.delete_instance()
    return True


@dataclass(frozen=True)
class Verification:
    """The outcome of one code submitted at login: ``ok``, and ``recovery`` when a recovery code did it."""

    ok: bool
    recovery: bool = False


def verify(factor: SecondFactor, code: str) -> Verification:
    """A TOTP code or, failing that, a recovery code."""
    if use_code(factor, code):
        return Verification(True)
    if use_recovery_code(factor, code):
        return Verification(True, recovery=True)
    return Verification(False)


def fingerprint(factor: SecondFactor, account: Contact | StaffUser) -> str:
    """What a remembered device is bound to: this enrolment and this password."""
    material = f"{factor.account}\n{factor.nonce}\n{account.password_hash or ''}".encode()
    return hashlib.sha256(material).hexdigest()[:32]
