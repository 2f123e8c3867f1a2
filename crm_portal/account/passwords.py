"""Password policy: a minimum length (``PASSWORD_MIN_LENGTH``), at most 1024 characters (so long
passphrases fit), not one of the most common passwords (``common-passwords.txt``), not the email."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _

MAX_LENGTH = 1024
COMMON_FILE = Path(__file__).parent / "common-passwords.txt"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def is_common(password: str) -> bool:
    return password.strip().lower() in common_passwords()


def problems(password: str, *, email: str | None = None) -> list[str]:
    """Why ``password`` is not acceptable (empty list: it is)."""
    minimum = int(current_app.config["PASSWORD_MIN_LENGTH"])
    found = []
    if len(password) < minimum:
        found.append(_("Use at least %(num)d characters.", num=minimum))
    elif len(password) > MAX_LENGTH:
        found.append(_("Use at most %(num)d characters.", num=MAX_LENGTH))
    elif is_common(password) or len(set(password)) < 3:
        found.append(_("This password is too common or too easy to guess; choose another one."))
    elif email and password.strip().lower() in {email.lower(), email.lower().split("@")[0]}:
        found.append(_("The password must not be your email address."))
    return found
