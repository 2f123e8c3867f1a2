"""Device cookies: a browser that has logged in to an account before is not locked out by an
attack on that account from elsewhere (OWASP, "Slow Down Online Guessing Attacks with Device
Cookies").

After a successful login the browser receives a signed cookie naming the account (by its throttle
key, never the email) and a random nonce. A later login attempt for the same account from that
browser is throttled under the device's own key (``dev:…``) instead of the account's, so the
failures of untrusted clients — an attacker anywhere — never delay it; its own failures delay only
that device. The address limit applies to every attempt as before. One cookie holds the devices of
up to :data:`MAX_ACCOUNTS` accounts (colleagues sharing a browser).
"""
from __future__ import annotations

import hashlib
import secrets

from flask import current_app, g, request
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.wrappers import Response

COOKIE_NAME = "crm_portal_device"
SALT = "crm-portal-device-cookie"
#: How long a browser stays a known device without logging in again.
MAX_AGE_DAYS = 365
#: Accounts remembered in one browser (the oldest is forgotten first).
MAX_ACCOUNTS = 5


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=SALT)


def _read() -> list[list[str]]:
    """The ``[account key, nonce]`` pairs of the request's device cookie (none if absent, forged
    or made with another secret key)."""
    raw = request.cookies.get(COOKIE_NAME)
    if not raw:
        return []
    try:
        value = _serializer().loads(raw)
    except BadSignature:
        return []
    if not isinstance(value, list):
        return []
    return [pair for pair in value
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)][:MAX_ACCOUNTS]


def _device_key(account: str, nonce: str) -> str:
    return "dev:" + hashlib.sha256(f"{account}\n{nonce}".encode()).hexdigest()[:40]


def throttle_key(account: str) -> str:
    """The key a login attempt for ``account`` is throttled under: its device's when this browser
    logged in to it before, else the account's own."""
    for key, nonce in _read():
        if secrets.compare_digest(key, account):
            return _device_key(account, nonce)
    return account


def _cookie_nonce(account: str) -> str | None:
    return next((nonce for key, nonce in _read() if secrets.compare_digest(key, account)), None)


def nonce(account: str) -> str:
    """This browser's nonce for ``account``: its cookie's, else one chosen now, which the cookie
    :func:`remember` sets at the end of this request carries."""
    chosen = g.setdefault("_device_nonces", {})
    if account not in chosen:
        chosen[account] = _cookie_nonce(account) or secrets.token_urlsafe(16)
    return chosen[account]


def device_id(account: str) -> str:
    """This browser as a device of ``account`` (a digest naming neither): what a session record
    keeps to tell later whether a login comes from a browser the account was used with before."""
    return _device_key(account, nonce(account))


def knows(account: str) -> bool:
    """Whether this request carries a valid device cookie for ``account`` (its throttle key): the
    browser logged in to the account before. A forged cookie, or one signed with another secret
    key, does not count."""
    return any(secrets.compare_digest(key, account) for key, _nonce in _read())


def remember(response: Response, account: str) -> None:
    """After a successful login to ``account``: (re)issue the device cookie on ``response``, keeping
    the device's nonce when it had one."""
    pairs = _read()
    pairs = [[account, nonce(account)]] + [pair for pair in pairs if pair[0] != account]
    response.set_cookie(COOKIE_NAME, _serializer().dumps(pairs[:MAX_ACCOUNTS]), max_age=MAX_AGE_DAYS * 86400,
                        httponly=True, samesite="Lax", secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
                        path="/")
