"""API keys: scopes, creation, verification and revocation.

A token is ``crmp_<key id>_<secret>``. The key id finds the row; the secret (32 random bytes) is
stored only as an HMAC-SHA256 keyed with the application's secret key, compared in constant time.
A fast hash suffices: the secret is random, not a password anyone could guess.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import current_app

from ..db import db, utcnow
from ..models import ApiKey, Integration

PREFIX = "crmp"
TOKEN_RE = re.compile(r"^crmp_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
#: Scopes every portal has besides the modules' own ``<module>:read`` / ``<module>:write``.
CORE_SCOPES = ("companies:read", "companies:write", "contacts:read", "contacts:write",
               "sync:write", "webhooks:manage", "email:ingest")
#: ``last_used_at`` is written at most this often per key: not one write per request.
LAST_USED_EVERY = dt.timedelta(minutes=1)


class KeyRefused(ValueError):
    """A key cannot be created as asked; the message says why."""


def all_scopes(registry: Any = None) -> list[str]:
    """Every scope a key may hold: the core's and ``<module>:read`` / ``<module>:write`` for every
    module of the registry (partners' modules included)."""
    modules = (registry or current_app.extensions["crm_portal"]).modules
    found = set(CORE_SCOPES)
    for name in modules:
        found.update((f"{name}:read", f"{name}:write"))
    return sorted(found)


def parse_scopes(text: str | Iterable[str]) -> list[str]:
    """The scopes in ``text`` (space- or comma-separated); unknown ones raise :class:`KeyRefused`."""
    words = text.replace(",", " ").split() if isinstance(text, str) else [w for w in text if w]
    if not words:
        raise KeyRefused("give at least one scope")
    known = set(all_scopes())
    unknown = [w for w in words if w not in known]
    if unknown:
        raise KeyRefused(f"unknown scope(s): {', '.join(unknown)}; known scopes: {' '.join(sorted(known))}")
    return sorted(set(words))


def parse_networks(values: Iterable[str]) -> list[str]:
    """Normalised CIDR ranges; an invalid one raises :class:`KeyRefused`."""
    found = []
    for value in values:
        for word in value.replace(",", " ").split():
            try:
                found.append(str(ipaddress.ip_network(word, strict=False)))
            except ValueError as exc:
                raise KeyRefused(f"invalid IP range {word!r}: {exc}") from exc
    return found


def hash_secret(secret: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


@dataclass
class NewKey:
    key: ApiKey
    token: str


def create_key(name: str, scopes: str | Iterable[str], *, expires_days: int | None = None,
               allowed_ips: Iterable[str] = ()) -> NewKey:
    """A new key for the integration ``name`` (created if missing). The token is in the answer only."""
    name = (name or "").strip()
    if not name:
        raise KeyRefused("give the integration's name")
    if len(name) > 100 or not name.isprintable():
        raise KeyRefused("the integration's name: at most 100 printable characters")
    scope_list = parse_scopes(scopes)
    networks = parse_networks(allowed_ips)
    if expires_days is not None and expires_days < 1:
        raise KeyRefused("the expiry must be at least one day")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with db.atomic():
        integration = Integration.get_or_none(Integration.name == name) or Integration.create(name=name)
        key = ApiKey.create(
            integration=integration, key_id=key_id, secret_hash=hash_secret(secret),
            scopes=" ".join(scope_list), allowed_ips=" ".join(networks) or None,
            expires_at=utcnow() + dt.timedelta(days=expires_days) if expires_days else None)
    return NewKey(key, f"{PREFIX}_{key_id}_{secret}")


def revoke_key(key: ApiKey) -> bool:
    """Revoke ``key``; ``False`` if it already was."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = utcnow()
    key.save(only=[ApiKey.revoked_at])
    return True


def _ip_allowed(key: ApiKey, address: str | None) -> bool:
    if not key.allowed_ips:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net) for net in key.allowed_ips.split())


def verify(token: str, address: str | None) -> ApiKey | None:
    """The usable key ``token`` belongs to, or ``None`` (unknown, malformed, revoked, expired,
    inactive integration or ``address`` outside its ranges: the caller answers all alike)."""
    match = TOKEN_RE.match(token or "")
    if not match:
        return None
    key = (ApiKey.select(ApiKey, Integration).join(Integration)
           .where(ApiKey.key_id == match.group(1)).first())
    if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(match.group(2))):
        return None
    now = utcnow()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    if not key.integration.active or not _ip_allowed(key, address):
        return None
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
        key.last_used_at = now
        ApiKey.update(last_used_at=now).where(ApiKey.id == key.id).execute()
    return key
