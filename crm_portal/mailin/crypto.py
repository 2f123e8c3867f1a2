"""Mailbox passwords, stored encrypted (Fernet: AES-128-CBC with an HMAC) under a key derived from
the portal's ``SECRET_KEY``. Rotating ``SECRET_KEY`` makes the stored passwords unreadable: staff
enter them again in the admin (docs/email.md)."""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


class PasswordUnreadable(Exception):
    """The stored password was encrypted under another ``SECRET_KEY`` (or is damaged)."""


def _fernet() -> Fernet:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    # A key of its own for this purpose: the same SECRET_KEY signs sessions and tokens.
    key = hashlib.sha256(b"crm_portal.mailin.password\x00" + secret).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(password: str) -> str:
    return _fernet().encrypt(password.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise PasswordUnreadable("the mailbox password cannot be read: enter it again (SECRET_KEY changed?)") from exc
