"""Login throttling: a short, growing delay per account and per IP address after repeated failures.

Counters live in the database (``core_login_throttle``), so every gunicorn worker sees the same
numbers. After ``LOGIN_THROTTLE_ACCOUNT_LIMIT`` failures for one account (or
``LOGIN_THROTTLE_IP_LIMIT`` from one address) further attempts are refused with 429 for
``LOGIN_THROTTLE_BASE_DELAY`` seconds, doubling with each further failure up to
``LOGIN_THROTTLE_MAX_DELAY``. Refused attempts do not count, a success clears the account's counter
and ``LOGIN_THROTTLE_WINDOW`` seconds without failures clear any counter: once an attack stops, the
real owner gets in again after at most the maximum delay.

Checking and counting are one step (:func:`reserve_login`): before a password is verified, the
attempt takes a place among the attempts "in flight" for its account and its address, in the same
transaction that checks the delay, with the counters' rows locked (``BEGIN IMMEDIATE`` on SQLite,
``SELECT … FOR UPDATE`` on PostgreSQL). Failures plus attempts in flight never exceed the limit (and
once the delay has started, one attempt at a time is checked): an attempt beyond that waits
(briefly) for those in flight to finish. Twenty wrong
passwords sent at once therefore get at most the limit's worth of password checks, while fifty
colleagues logging in at once from one office address all get in. A failed attempt becomes a
failure (:func:`confirm_failure`); a successful one clears the account's counter and leaves the
address's failures alone (:func:`record_success`); one that ends in an error gives its places back
(:func:`release`). A place held by a worker that died lapses after ``PENDING_SECONDS``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import time
from collections.abc import Iterable
from typing import Any

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
    for _ in range(5):
        for key in ordered:
            LoginThrottle.insert(key=key, failures=0, last_failure_at=at).on_conflict_ignore().execute()
        query = LoginThrottle.select().where(LoginThrottle.key.in_(ordered)).order_by(LoginThrottle.key)
        if is_postgres():
            query = query.for_update()
        rows = {row.key: row for row in query}
        if len(rows) == len(ordered):
            return rows
        # PostgreSQL: another transaction deleted a row (the daily prune) between insert and lock.
    raise RuntimeError(f"login counters {ordered} keep disappearing")


#: How long a reserved attempt may stay unresolved (its worker died) before its place lapses.
PENDING_SECONDS = 60
#: How long an attempt waits for attempts in flight before it is refused with 429.
QUEUE_SECONDS = 10.0


def _failures(row: LoginThrottle, at: dt.datetime) -> int:
    """Failures that still count (``LOGIN_THROTTLE_WINDOW`` seconds without one clear them)."""
    window = _limits()[4]
    return 0 if (at - row.last_failure_at).total_seconds() > window else row.failures


def _pending(row: LoginThrottle, at: dt.datetime) -> int:
    if not row.pending or row.pending_at is None or (at - row.pending_at).total_seconds() > PENDING_SECONDS:
        return 0
    return row.pending


def _count(row: LoginThrottle, limit: int, at: dt.datetime, *, resolves_pending: bool = False) -> None:
    """Count one failure on ``row`` (locked by the caller); at the limit the growing delay starts."""
    _, _, base, cap, _ = _limits()
    failures = _failures(row, at) + 1
    blocked_until = None
    if failures >= limit:
        delay = min(base * 2 ** (failures - limit), cap)
        blocked_until = at + dt.timedelta(seconds=delay)
    values: dict[Any, Any] = {LoginThrottle.failures: failures, LoginThrottle.last_failure_at: at,
                              LoginThrottle.blocked_until: blocked_until}
    if resolves_pending:
        values[LoginThrottle.pending] = max(_pending(row, at) - 1, 0)
    LoginThrottle.update(values).where(LoginThrottle.id == row.id).execute()


def _wait(row: LoginThrottle, at: dt.datetime) -> int:
    if row.blocked_until is None or row.blocked_until <= at:
        return 0
    return math.ceil((row.blocked_until - at).total_seconds())


def _places(row: LoginThrottle, limit: int, at: dt.datetime) -> int:
    """How many attempts may be in flight at once: the failures left before the delay starts, and
    one at a time once it has started (each further failure doubles it)."""
    return max(limit - _failures(row, at), 1)


def _try_reserve(limits: dict[str, int], at: dt.datetime) -> int | None:
    """One locked look at the counters: seconds to wait (delay running), 0 (a place was taken for
    this attempt) or ``None`` (every place is taken by attempts in flight: try again shortly)."""
    with db.atomic():
        rows = _locked_rows(limits, at)
        wait = max((_wait(row, at) for row in rows.values()), default=0)
        if wait:
            return wait
        if any(_pending(rows[key], at) >= _places(rows[key], limit, at) for key, limit in limits.items()):
            return None
        for key in limits:
            row = rows[key]
            LoginThrottle.update(pending=_pending(row, at) + 1, pending_at=at) \
                .where(LoginThrottle.id == row.id).execute()
    return 0


def reserve_login(account: str, ip: str, at: dt.datetime | None = None) -> int:
    """Take a place for a login attempt before its password is checked: 0, or the seconds to
    wait (answer 429). Resolve it with :func:`confirm_failure` or :func:`record_success`."""
    limits = dict(login_limits(account, ip))
    deadline = time.monotonic() + QUEUE_SECONDS
    while True:
        outcome = _try_reserve(limits, at or now())
        if outcome is not None:
            return outcome
        if time.monotonic() >= deadline:
            return 1
        time.sleep(0.02 + random.random() * 0.03)


def login_limits(account: str, ip: str) -> list[tuple[str, int]]:
    """The ``(key, limit)`` pairs of a login attempt."""
    account_limit, ip_limit, *_ = _limits()
    return [(account, account_limit), (ip, ip_limit)]


def confirm_failure(account: str, ip: str, at: dt.datetime | None = None) -> None:
    """A reserved login attempt failed: it becomes a failure of the account and of the address."""
    at = at or now()
    with db.atomic():
        rows = _locked_rows([account, ip], at)
        for key, limit in login_limits(account, ip):
            _count(rows[key], limit, at, resolves_pending=True)


def record_success(account: str, ip: str, at: dt.datetime | None = None) -> None:
    """A reserved login attempt succeeded: the account's counter is cleared and the address's
    place is given back (its failures stay: successes never hide an attack from the same address)."""
    at = at or now()
    with db.atomic():
        rows = _locked_rows([account, ip], at)
        LoginThrottle.update(failures=0, blocked_until=None, pending=max(_pending(rows[account], at) - 1, 0)) \
            .where(LoginThrottle.id == rows[account].id).execute()
        LoginThrottle.update(pending=max(_pending(rows[ip], at) - 1, 0)) \
            .where(LoginThrottle.id == rows[ip].id).execute()


def release(account: str, ip: str, at: dt.datetime | None = None) -> None:
    """Give back a reserved attempt's places without counting anything: the attempt ended before
    its outcome could be stored (an error), so it is neither a failure nor a success."""
    at = at or now()
    with db.atomic():
        rows = _locked_rows([account, ip], at)
        for row in rows.values():
            LoginThrottle.update(pending=max(_pending(row, at) - 1, 0)).where(LoginThrottle.id == row.id).execute()


def mail_request_key(ip: str | None) -> str:
    """The key of the forms that send email to an address typed by anyone (password reset,
    registration): limited per IP address so the portal cannot be used to flood mailboxes."""
    return f"mail-ip:{(ip or 'unknown')[:64]}"


def reserve_mail_request(ip: str | None, at: dt.datetime | None = None) -> int:
    """Check and count one email-sending request from ``ip`` in one step: seconds to wait, or 0
    (``MAIL_REQUEST_IP_LIMIT`` per window, then the growing delay)."""
    at = at or now()
    key, limit = mail_request_key(ip), int(current_app.config["MAIL_REQUEST_IP_LIMIT"])
    with db.atomic():
        row = _locked_rows([key], at)[key]
        wait = _wait(row, at)
        if not wait:
            _count(row, limit, at)
    return wait


def clear(keys: Iterable[str]) -> None:
    with db.atomic():
        LoginThrottle.delete().where(LoginThrottle.key.in_(list(keys))).execute()


__all__ = ["account_key", "ip_key", "retry_after", "reserve_login", "login_limits", "confirm_failure",
           "record_success", "release", "clear", "now", "mail_request_key", "reserve_mail_request"]
