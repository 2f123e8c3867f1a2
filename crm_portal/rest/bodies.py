"""JSON bodies the database can store: text holding a NUL character is refused for every endpoint
before any of them reads it (PostgreSQL cannot store NUL in text, and no form of the portal lets
one through), with 422 naming where it is."""
from __future__ import annotations

from typing import Any

from flask import request
from flask_babel import gettext as _

from .writes import invalid

#: How deeply a JSON body may nest objects and arrays. No payload of the API nests more than a few
#: levels; a deeper one is refused before anything recurses into it.
MAX_DEPTH = 32


def _problem(value: Any) -> tuple[str, str] | None:
    """``(path, what)`` of the first thing the database or the API cannot take in ``value``: text
    (a value or a key) holding a NUL, or nesting deeper than :data:`MAX_DEPTH`. Walked without
    recursion, so no body can exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path or "body", "nul"
        elif isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                return path or "body", "depth"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            children = []
            for key, child in pairs:
                here = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return here, "nul"
                children.append((child, here, depth + 1))
            stack.extend(reversed(children))  # the first problem in document order is named
    return None


def refuse_nul() -> None:
    """``before_request`` of the API: 422 for a JSON body with a NUL character in any text, or
    nested too deeply to read (Python's parser would exhaust its stack: never a 500)."""
    if request.method in ("GET", "HEAD", "OPTIONS") or not request.is_json:
        return
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        body = None
        found: tuple[str, str] | None = ("body", "depth")
    else:
        found = _problem(body)
    if found is None:
        return
    path, what = found
    if what == "depth":
        invalid({path: [_("The JSON body is nested more than %(levels)d levels deep.", levels=MAX_DEPTH)]})
    invalid({path: [_("Text may not contain the NUL character (\\u0000).")]})
