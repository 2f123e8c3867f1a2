"""Login throttling: a short, growing delay per account and per IP address after repeated failures.

Counters live in the database (``core_login_throttle``), so every gunicorn worker sees the same
numbers. After ``LOGIN_THROTTLE_ACCOUNT_LIMIT`` failures for one account (or
``LOGIN_THROTTLE_IP_LIMIT`` from one address) further attempts are refused with 429 for
``LOGIN_THROTTLE_BASE_DELAY`` seconds, doubling with each further failure up to
``LOGIN_THROTTLE_MAX_DELAY``. Refused attempts do not count, a success clears the account's counter
and ``LOGIN_THROTTLE_WINDOW`` seconds without failures clear any counter: once an attack stops, the
real owner gets in again after at most the maximum delay.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable

from flask import current_app

from .db import db, is_postgres, utcnow
from .models import LoginThrottle


def now() -> dt.datetime:
    """The throttle's clock (patched in tests)."""
    return utcnow()


def account_key(email: str, *, staff: bool = False) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]
    return f"{'s' if staff else 'c'}:{digest}"


def ip_key(ip: str | None) -> str:
    return f"ip:{(ip or 'unknown')[:64]}"


def _limits() -> tuple[int, int, int, int, int]:
    c = current_app.config
    return (int(c["LOGIN_THROTTLE_ACCOUNT_LIMIT"]), int(c["LOGIN_THROTTLE_IP_LIMIT"]),
            int(c["LOGIN_THROTTLE_BASE_DELAY"]), int(c["LOGIN_THROTTLE_MAX_DELAY"]),
            int(c["LOGIN_THROTTLE_WINDOW"]))


def retry_after(keys: Iterable[str], at: dt.datetime | None = None) -> int:
    """Seconds until any of ``keys`` may try again (0: go ahead)."""
    at = at or now()
    rows = LoginThrottle.select(LoginThrottle.blocked_until).where(
        LoginThrottle.key.in_(list(keys)) & (LoginThrottle.blocked_until > at))
    waits = [(row.blocked_until - at).total_seconds() for row in rows]
    return max((math.ceil(w) for w in waits), default=0)


def _count(key: str, limit: int, at: dt.datetime) -> None:
    _, _, base, cap, window = _limits()
    LoginThrottle.insert(key=key, failures=0, last_failure_at=at).on_conflict_ignore().execute()
    query = LoginThrottle.select().where(LoginThrottle.key == key)
    if is_postgres():
        query = query.for_update()
    row = query.get()
    quiet = (at - row.last_failure_at).total_seconds() > window
    failures = 1 if quiet else row.failures + 1
    blocked_until = None
    if failures >= limit:
        delay = min(base * 2 ** (failures - limit), cap)
        blocked_until = at + dt.timedelta(seconds=delay)
    LoginThrottle.update(failures=failures, last_failure_at=at, blocked_until=blocked_until) \
        .where(LoginThrottle.id == row.id).execute()


def record_failure(account: str, ip: str, at: dt.datetime | None = None) -> None:
    """Count a failed attempt against the account key and the IP key."""
    at = at or now()
    account_limit, ip_limit, *_ = _limits()
    with db.atomic():
        for key, limit in ((account, account_limit), (ip, ip_limit)):
            _count(key, limit, at)


def mail_request_key(ip: str | None) -> str:
    """The key of the forms that send email to an address typed by anyone (password reset,
    registration): limited per IP address so the portal cannot be used to flood mailboxes."""
    return f"mail-ip:{(ip or 'unknown')[:64]}"


def record_mail_request(ip: str | None, at: dt.datetime | None = None) -> None:
    """Count one such request from ``ip`` (``MAIL_REQUEST_IP_LIMIT`` per window, then the growing delay)."""
    with db.atomic():
        _count(mail_request_key(ip), int(current_app.config["MAIL_REQUEST_IP_LIMIT"]), at or now())


def record_success(account: str) -> None:
    with db.atomic():
        LoginThrottle.delete().where(LoginThrottle.key == account).execute()


def clear(keys: Iterable[str]) -> None:
    with db.atomic():
        LoginThrottle.delete().where(LoginThrottle.key.in_(list(keys))).execute()


__all__ = ["account_key", "ip_key", "retry_after", "record_failure", "record_success", "clear", "now",
           "mail_request_key", "record_mail_request"]
