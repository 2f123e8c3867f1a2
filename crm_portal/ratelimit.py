"""Login throttling: a short, growing delay per account and per IP address after repeated failures.

Counters live in the database (``core_login_throttle``), so every gunicorn worker sees the same
numbers. After ``LOGIN_THROTTLE_ACCOUNT_LIMIT`` failures for one account (or
``LOGIN_THROTTLE_IP_LIMIT`` from one address) further attempts are refused with 429 for
``LOGIN_THROTTLE_BASE_DELAY`` seconds, doubling with each further failure up to
``LOGIN_THROTTLE_MAX_DELAY``. Refused attempts do not count, a success clears the account's counter
and ``LOGIN_THROTTLE_WINDOW`` seconds without failures clear any counter: once an attack stops, the
real owner gets in again after at most the maximum delay.

Checking and counting are one step (:func:`reserve`): an attempt is counted as a failure *before*
the password is verified, in the same transaction that checks the delay, with the counters'
rows locked (``BEGIN IMMEDIATE`` on SQLite, ``SELECT … FOR UPDATE`` on PostgreSQL). Twenty
attempts sent at once therefore never get more than the limit's worth of password checks. A
successful login clears the account's counter and gives its attempt back to the IP address
(:func:`record_success`).
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


def _locked_rows(keys: Iterable[str], at: dt.datetime) -> dict[str, LoginThrottle]:
    """The counters of ``keys`` (created when missing), locked until the transaction ends. Rows are
    locked in key order, so two requests never wait for each other's second row."""
    ordered = sorted(set(keys))
    for key in ordered:
        LoginThrottle.insert(key=key, failures=0, last_failure_at=at).on_conflict_ignore().execute()
    query = LoginThrottle.select().where(LoginThrottle.key.in_(ordered)).order_by(LoginThrottle.key)
    if is_postgres():
        query = query.for_update()
    return {row.key: row for row in query}


def _count(key: str, limit: int, at: dt.datetime, row: LoginThrottle | None = None, *,
           pending: bool = False) -> None:
    """Count one failure against ``key`` (its row locked by the caller, or here). A ``pending``
    attempt (reserved, its outcome not known yet) does not move ``last_failure_at`` unless it starts
    a new window: :func:`confirm_failure` does once it failed, a success gives it back."""
    _, _, base, cap, window = _limits()
    if row is None:
        row = _locked_rows([key], at)[key]
    quiet = (at - row.last_failure_at).total_seconds() > window
    failures = 1 if quiet else row.failures + 1
    blocked_until = None
    if failures >= limit:
        delay = min(base * 2 ** (failures - limit), cap)
        blocked_until = at + dt.timedelta(seconds=delay)
    last_failure_at = row.last_failure_at if pending and not quiet else at
    LoginThrottle.update(failures=failures, last_failure_at=last_failure_at, blocked_until=blocked_until) \
        .where(LoginThrottle.id == row.id).execute()


def _wait(row: LoginThrottle, at: dt.datetime) -> int:
    if row.blocked_until is None or row.blocked_until <= at:
        return 0
    return math.ceil((row.blocked_until - at).total_seconds())


def reserve(limits: Iterable[tuple[str, int]], at: dt.datetime | None = None, *, pending: bool = False) -> int:
    """Check and count one attempt in one transaction: the seconds to wait when any key is waiting
    (nothing is counted then), else 0 after counting the attempt as a failure against every key.

    ``limits`` are ``(key, limit)`` pairs. Call it before the expensive or abusable step (the
    password check, the email): concurrent requests queue on the counters' lock, so at most
    ``limit`` of them get through per key before the delay starts. ``pending``: the outcome comes
    later (:func:`confirm_failure` or :func:`record_success`)."""
    at = at or now()
    limits = dict(limits)
    with db.atomic():
        rows = _locked_rows(limits, at)
        wait = max((_wait(row, at) for row in rows.values()), default=0)
        if wait:
            return wait
        for key, limit in limits.items():
            _count(key, limit, at, rows[key], pending=pending)
    return 0


def login_limits(account: str, ip: str) -> list[tuple[str, int]]:
    """The ``(key, limit)`` pairs of a login attempt."""
    account_limit, ip_limit, *_ = _limits()
    return [(account, account_limit), (ip, ip_limit)]


def reserve_login(account: str, ip: str, at: dt.datetime | None = None) -> int:
    """Reserve a login attempt before the password is checked: seconds to wait (429), or 0."""
    return reserve(login_limits(account, ip), at, pending=True)


def confirm_failure(account: str, ip: str, at: dt.datetime | None = None) -> None:
    """A reserved login attempt failed (it is already counted): the quiet window starts again."""
    with db.atomic():
        LoginThrottle.update(last_failure_at=at or now()).where(LoginThrottle.key.in_([account, ip])).execute()


def record_failure(account: str, ip: str, at: dt.datetime | None = None) -> None:
    """Count a failed attempt that was not reserved against the account key and the IP key."""
    at = at or now()
    with db.atomic():
        rows = _locked_rows([account, ip], at)
        for key, limit in login_limits(account, ip):
            _count(key, limit, at, rows[key])


def mail_request_key(ip: str | None) -> str:
    """The key of the forms that send email to an address typed by anyone (password reset,
    registration): limited per IP address so the portal cannot be used to flood mailboxes."""
    return f"mail-ip:{(ip or 'unknown')[:64]}"


def record_mail_request(ip: str | None, at: dt.datetime | None = None) -> None:
    """Count one such request from ``ip`` (``MAIL_REQUEST_IP_LIMIT`` per window, then the growing delay)."""
    with db.atomic():
        _count(mail_request_key(ip), int(current_app.config["MAIL_REQUEST_IP_LIMIT"]), at or now())


def reserve_mail_request(ip: str | None, at: dt.datetime | None = None) -> int:
    """Check and count one email-sending request from ``ip`` at once: seconds to wait, or 0."""
    return reserve([(mail_request_key(ip), int(current_app.config["MAIL_REQUEST_IP_LIMIT"]))], at)


def record_success(account: str, ip: str | None = None) -> None:
    """A login succeeded: clear the account's counter and, for a reserved attempt, give it back to
    the IP address (successful logins never count against an office's shared address)."""
    _, ip_limit, *_ = _limits()
    with db.atomic():
        LoginThrottle.delete().where(LoginThrottle.key == account).execute()
        if ip is None:
            return
        row = _locked_rows([ip], now())[ip]
        failures = max(row.failures - 1, 0)
        # Below the limit again: a delay this attempt started is lifted; at or above it, the delay
        # earned by real failures stays.
        blocked_until = row.blocked_until if failures >= ip_limit else None
        LoginThrottle.update(failures=failures, blocked_until=blocked_until).where(LoginThrottle.id == row.id).execute()


def clear(keys: Iterable[str]) -> None:
    with db.atomic():
        LoginThrottle.delete().where(LoginThrottle.key.in_(list(keys))).execute()


__all__ = ["account_key", "ip_key", "retry_after", "reserve", "reserve_login", "login_limits", "confirm_failure",
           "record_failure", "record_success", "clear", "now", "mail_request_key", "record_mail_request",
           "reserve_mail_request"]
