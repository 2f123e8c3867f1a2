"""Password policy, checked offline wherever a password is set (portal, admin, ``crm-portal init``):

- at least ``PASSWORD_MIN_LENGTH`` characters and at most 1024 (so long passphrases fit);
- not one of the most common passwords (``common-passwords.txt``, with Italian favourites) nor of
  the 30,000 passwords most often found in breaches, the list bundled with zxcvbn (from the Xato
  corpus of leaked passwords): nothing is downloaded and no password leaves the server;
- not the email;
- a zxcvbn strength estimate of at least ``PASSWORD_MIN_SCORE`` (0–4; 0 switches it off), with the
  account's email, name and company as words an attacker would try first ("acme2024!" is weak
  for someone at Acme). Its advice is shown translated where we have the sentence.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

MAX_LENGTH = 1024
COMMON_FILE = Path(__file__).parent / "common-passwords.txt"
#: zxcvbn refuses longer input (its time grows with the length); the start of a longer passphrase is plenty.
ESTIMATE_LENGTH = 72

#: zxcvbn's advice (its English sentences) in the user's language; other sentences give a generic hint.
ADVICE = {
    "Add another word or two. Uncommon words are better.":
        _l("Add another word or two. Uncommon words are better."),
    "Use a few words, avoid common phrases.": _l("Use a few words, avoid common phrases."),
    "Avoid repeated words and characters.": _l("Avoid repeated words and characters."),
    "Avoid sequences.": _l("Avoid sequences like \"abc\" or \"6543\"."),
    "Avoid recent years.": _l("Avoid recent years."),
    "Avoid years that are associated with you.": _l("Avoid years and dates that are associated with you."),
    "Avoid dates and years that are associated with you.": _l("Avoid years and dates that are associated with you."),
    "Use a longer keyboard pattern with more turns.": _l("Avoid rows and patterns of keys."),
    "Capitalization doesn't help very much.": _l("Capital letters do not help much."),
    "All-uppercase is almost as easy to guess as all-lowercase.": _l("Capital letters do not help much."),
    "Reversed words aren't much harder to guess.": _l("Words written backwards are not much harder to guess."),
    "Predictable substitutions like '@' instead of 'a' don't help very much.":
        _l("Predictable substitutions like \"@\" for \"a\" do not help much."),
}


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=1)
def breached_passwords() -> frozenset[str]:
    """The passwords most often seen in breaches, as zxcvbn bundles them."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    lowered = password.strip().lower()
    return lowered in common_passwords() or lowered in breached_passwords()


def account_words(email: str | None, names: Iterable[str | None] = ()) -> list[str]:
    """The words of an account an attacker tries first: the email, its parts, names, company."""
    words: list[str] = []
    if email:
        words.append(email.lower())
        words += [part for part in re.split(r"[@.+_\-]", email.lower()) if len(part) > 2]
    for name in names:
        if name:
            words.append(name.lower())
            words += [part for part in re.split(r"\W+", name.lower()) if len(part) > 2]
    return list(dict.fromkeys(words))


def _advice(feedback: dict) -> str:
    for sentence in [*(feedback.get("suggestions") or []), feedback.get("warning") or ""]:
        if sentence in ADVICE:
            return str(ADVICE[sentence])
    return _("A few unrelated words are easier to remember and harder to guess.")


def strength_problem(password: str, words: Iterable[str]) -> str | None:
    """Why zxcvbn finds ``password`` too weak for ``PASSWORD_MIN_SCORE``, or ``None``."""
    minimum = int(current_app.config.get("PASSWORD_MIN_SCORE", 3))
    if minimum <= 0:
        return None
    from zxcvbn import zxcvbn

    result = zxcvbn(password[:ESTIMATE_LENGTH], user_inputs=list(words))
    if result["score"] >= minimum:
        return None
    return _("This password is too easy to guess. %(advice)s", advice=_advice(result.get("feedback") or {}))


def problems(password: str, *, email: str | None = None, names: Iterable[str | None] = ()) -> list[str]:
    """Why ``password`` is not acceptable (empty list: it is). ``names`` (the person's names, their
    company) make passwords built on them weak."""
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
    else:
        weak = strength_problem(password, account_words(email, names))
        if weak:
            found.append(weak)
    return found
