"""Testing kit for CRM Portal and its modules: a pytest plugin (fixtures ``app``, ``demo``,
``client``, ``queries``, ``frozen_clock``, see :mod:`crm_portal.testing.plugin`) and the helpers
below. Names are imported on first use: importing the kit loads nothing of the portal.

- :func:`make_app`, :func:`load_demo`, :func:`reset_demo`, :func:`demo_records`,
  :func:`database_url`, :data:`PG_URL`: applications on fresh databases;
- :class:`CsrfClient`, :func:`login`, :func:`staff_login`, :func:`csrf_token`: requests as a browser;
- :class:`QueryCounter`, :class:`FrozenClock`;
- :func:`assert_scope_matrix`, :class:`Route`, :class:`ScopeCase`, :func:`check_scope`: the
  visibility matrix.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CsrfClient": "client", "login": "client", "staff_login": "client", "csrf_token": "client",
    "make_app": "database", "load_demo": "database", "reset_demo": "database", "demo_records": "database",
    "database_url": "database", "PG_URL": "database", "TEST_CONFIG": "database",
    "QueryCounter": "queries",
    "FrozenClock": "clock",
    "assert_scope_matrix": "scope", "check_scope": "scope", "combinations": "scope", "Route": "scope",
    "ScopeCase": "scope", "DEFAULT_EXPECTED": "scope", "VIEWER": "scope",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
