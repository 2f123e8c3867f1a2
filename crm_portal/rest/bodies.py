"""JSON bodies the database can store: text holding a NUL character is refused for every endpoint
before any of them reads it (PostgreSQL cannot store NUL in text, and no form of the portal lets
one through), with 422 naming where it is."""
from __future__ import annotations

from typing import Any

from flask import request
from flask_babel import gettext as _

from .writes import invalid


def _nul_at(value: Any, path: str) -> str | None:
    """The dotted path of the first string (value or key) holding a NUL in ``value``, if any."""
    if isinstance(value, str):
        return path or "body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return here
            found = _nul_at(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


def refuse_nul() -> None:
    """``before_request`` of the API: 422 for a JSON body with a NUL character in any text."""
    if request.method in ("GET", "HEAD", "OPTIONS") or not request.is_json:
        return
    found = _nul_at(request.get_json(silent=True), "")
    if found is not None:
        invalid({found: [_("Text may not contain the NUL character (\\u0000).")]})
