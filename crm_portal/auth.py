"""Who is logged in: portal contacts and staff users behind one Flask-Login manager.

The session id carries the account's ``session_token``; rotating the token (password change,
logout everywhere, access revoked) kills every session and remember-me cookie issued before.
"""
from __future__ import annotations

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
from .models import Company, Contact, Profile, ProfileModule, StaffUser
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

    def __init__(self, contact: Contact) -> None:
        self.contact = contact

    def get_id(self) -> str:
        return f"c:{self.contact.id}:{self.contact.session_token}"

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


@login_manager.user_loader
def _load_user(session_id: str):
    try:
        kind, raw_id, token = session_id.split(":", 2)
        account_id = int(raw_id)
    except ValueError:
        return None
    if kind == "c":
        contact = load_contact(account_id)
        if contact and contact.session_token == token and contact.portal_access:
            return PortalUser(contact)
    elif kind == "s":
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
