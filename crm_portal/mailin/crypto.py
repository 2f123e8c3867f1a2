"""Mailbox passwords, stored encrypted (Fernet: AES-128-CBC with an HMAC) under a key derived from
the portal's ``SECRET_KEY``. Rotating ``SECRET_KEY`` makes the stored passwords unreadable: staff
enter them again in the admin (docs/email.md).

Other secrets the portal must read back (TOTP secrets of the second factor) use the same scheme
under a key of their own (``purpose``)."""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


class PasswordUnreadable(Exception):
    """The stored password was encrypted under another ``SECRET_KEY`` (or is damaged)."""


#: The key derivation's label for mailbox passwords.
MAILBOX_PASSWORD = b"crm_portal.mailin.password"


def _fernet(purpose: bytes = MAILBOX_PASSWORD) -> Fernet:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    # A key of its own for each purpose: the same SECRET_KEY signs sessions and tokens.
    key = hashlib.sha256(purpose + b"\x00" + secret).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(password: str, purpose: bytes = MAILBOX_PASSWORD) -> str:
    """``password`` encrypted under the key of ``purpose``."""
    return _fernet(purpose).encrypt(password.encode()).decode()


def decrypt(token: str, purpose: bytes = MAILBOX_PASSWORD) -> str:
    """The plain text of ``token``; :class:`PasswordUnreadable` if another key made it."""
    if not token:
        return ""
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise PasswordUnreadable("the mailbox password cannot be read: enter it again (SECRET_KEY changed?)") from exc
