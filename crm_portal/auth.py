"""Who is logged in: portal contacts and staff users behind one Flask-Login manager.

The session id carries the account's ``session_token``; rotating the token (password change,
logout everywhere, access revoked) kills every session and remember-me cookie issued before. A
contact's session id also names its :class:`~crm_portal.models.LoginSession` row (id and random
key): revoking that row ends the one browser (crm_portal.account.sessions). The row is read in the
same query as the contact, so checking it costs no extra query per request.
"""
from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Hashable, Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, request
from flask_babel import lazy_gettext as _l
from flask_login import AnonymousUserMixin, LoginManager, UserMixin, current_user
from peewee import JOIN

from .cache import ProcessCache
from .db import db, utcnow
from .models import Company, Contact, LoginSession, Profile, ProfileModule, StaffUser
from .prepared import PreparedSelect

login_manager = LoginManager()
# Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane): strong, and a login costs a worker
# 19 MiB instead of the library default's 64 MiB. Older hashes are upgraded at the next login.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the account does not exist, so both answers take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def _load_grants(profile_id: Hashable) -> Mapping[str, ProfileModule]:
    rows = (ProfileModule.select()
            .where(ProfileModule.profile == profile_id)
            .order_by(ProfileModule.position, ProfileModule.id))
    return MappingProxyType({row.module: row for row in rows})


#: A profile's grants by profile id, kept in the process until a profile's modules change.
profile_grants: ProcessCache[Mapping[str, ProfileModule]] = ProcessCache(
    "profiles.grants", (ProfileModule._meta.table_name,), _load_grants)


class PortalUser(UserMixin):
    """A logged-in contact. ``grants`` (module name → ProfileModule) comes from the process's
    cache of profiles (:data:`profile_grants`); treat it as read-only."""

    is_staff = False

    def __init__(self, contact: Contact, login_session: LoginSession | None = None) -> None:
        self.contact = contact
        #: This browser's session record; ``None`` outside a browser session (API, jobs).
        self.login_session = login_session

    def get_id(self) -> str:
        base = f"c:{self.contact.id}:{self.contact.session_token}"
        record = self.login_session
        return base if record is None else f"{base}:{record.id}:{record.key}"

    @property
    def is_active(self) -> bool:
        return bool(self.contact.portal_access)

    @property
    def contact_id(self) -> int:
        return self.contact.id

    @property
    def company_id(self) -> int | None:
        return self.contact.company_id

    @property
    def display_name(self) -> str:
        return self.contact.full_name

    @property
    def language(self) -> str | None:
        return self.contact.language

    @cached_property
    def grants(self) -> Mapping[str, ProfileModule]:
        if self.contact.profile_id is None:
            return MappingProxyType({})
        return profile_grants.get(self.contact.profile_id)

    def grant(self, module: str) -> ProfileModule | None:
        return self.grants.get(module)

    def can(self, module: str, action: str = "view") -> bool:
        grant = self.grant(module)
        return grant is not None and action in grant.action_set


class StaffPrincipal(UserMixin):
    """A logged-in admin or operator (Flask-Admin only)."""

    is_staff = True
    contact_id = None
    company_id = None
    grants: dict[str, ProfileModule] = {}

    def __init__(self, staff: StaffUser) -> None:
        self.staff = staff

    def get_id(self) -> str:
        return f"s:{self.staff.id}:{self.staff.session_token}"

    @property
    def is_active(self) -> bool:
        return bool(self.staff.active)

    @property
    def display_name(self) -> str:
        return self.staff.name

    @property
    def language(self) -> str | None:
        return self.staff.language

    @property
    def timezone(self) -> str | None:
        return self.staff.timezone

    def grant(self, module: str) -> None:
        return None

    def can(self, module: str, action: str = "view") -> bool:
        return False


class Anonymous(AnonymousUserMixin):
    is_staff = False
    contact_id = None
    company_id = None
    language = None
    grants: dict[str, ProfileModule] = {}

    def grant(self, module: str) -> None:
        return None

    def can(self, module: str, action: str = "view") -> bool:
        return False


def _contact_query(contact_id: int) -> Any:
    return (Contact.select(Contact, Company, Profile)
            .join_from(Contact, Company, on=(Contact.company == Company.id), join_type=JOIN.LEFT_OUTER)
            .join_from(Contact, Profile, on=(Contact.profile == Profile.id), join_type=JOIN.LEFT_OUTER)
            .where(Contact.id == contact_id)
            .limit(1))


#: Run on every request of a logged-in contact: its SQL is written once.
_contact = PreparedSelect[Contact](_contact_query)


def load_contact(contact_id: int) -> Contact | None:
    """The contact with company and profile in one query."""
    return _contact.first(contact_id)


def _login_session_query(record_id: int) -> Any:
    return (LoginSession.select(LoginSession, Contact, Company, Profile)
            .join_from(LoginSession, Contact, on=(LoginSession.contact == Contact.id))
            .join_from(Contact, Company, on=(Contact.company == Company.id), join_type=JOIN.LEFT_OUTER)
            .join_from(Contact, Profile, on=(Contact.profile == Profile.id), join_type=JOIN.LEFT_OUTER)
            .where(LoginSession.id == record_id)
            .limit(1))


#: The session record with its contact, company and profile: the one query of a contact's request.
_login_session = PreparedSelect[LoginSession](_login_session_query)

#: "Last seen" of a session is written at most this often (not on every request).
LAST_SEEN_EVERY = dt.timedelta(minutes=5)


def _touch(record: LoginSession) -> None:
    """Note that the session is in use, when its "last seen" is older than :data:`LAST_SEEN_EVERY`
    (a conditional update: concurrent requests write it once)."""
    now = utcnow()
    if now - record.last_seen_at < LAST_SEEN_EVERY:
        return
    with db.atomic():
        (LoginSession.update(last_seen_at=now, ip_address=client_ip())
         .where((LoginSession.id == record.id) & (LoginSession.last_seen_at < now - LAST_SEEN_EVERY))
         .execute())
    record.last_seen_at = now


def _load_portal_user(contact_id: int, rest: str) -> PortalUser | None:
    """The contact of session id ``c:<contact_id>:<rest>`` (``rest`` being token, record id and
    record key), if the token is current, the record not revoked and portal access on. Session ids
    without a record (issued before records existed) are refused: the contact logs in again."""
    try:
        token, raw_record, key = rest.split(":")
        record_id = int(raw_record)
    except ValueError:
        return None
    record = _login_session.first(record_id)
    if record is None or record.contact_id != contact_id or record.revoked_at is not None:
        return None
    if not secrets.compare_digest(record.key, key):
        return None
    contact = record.contact
    if not (secrets.compare_digest(contact.session_token, token) and contact.portal_access):
        return None
    _touch(record)
    return PortalUser(contact, record)


@login_manager.user_loader
def _load_user(session_id: str):
    try:
        kind, raw_id, token = session_id.split(":", 2)
        account_id = int(raw_id)
    except ValueError:
        return None
    if kind == "c":
        return _load_portal_user(account_id, token)
    if kind == "s":
        staff = StaffUser.get_or_none(StaffUser.id == account_id)
        if staff and staff.session_token == token and staff.active:
            return StaffPrincipal(staff)
    return None


def current_portal_user() -> PortalUser | None:
    """The logged-in contact, or ``None`` for anonymous visitors and staff."""
    user = current_user._get_current_object() if current_user else None
    return user if isinstance(user, PortalUser) else None


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else ``None`` (open-redirect guard)."""
    if not target or len(target) > 2000:
        return None
    if any(c in target for c in "\\\r\n\t\x00") or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def client_ip() -> str | None:
    return request.remote_addr


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.anonymous_user = Anonymous
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please log in to see this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
