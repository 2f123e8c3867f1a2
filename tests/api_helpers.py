"""Shared by the REST API tests: keys made in the test database, bearer headers."""
from __future__ import annotations

from typing import Any

from flask import Flask

from crm_portal.db import db
from crm_portal.rest.keys import NewKey, all_scopes, create_key


def make_key(app: Flask, scopes: str | list[str] | None = None, **kwargs: Any) -> NewKey:
    """A new key of the integration "crm" (every scope by default)."""
    with app.app_context(), db.connection_context():
        return create_key(kwargs.pop("name", "crm"), scopes if scopes is not None else all_scopes(), **kwargs)


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def record_modules(app: Flask) -> list[str]:
    """Every module of the registry with records the API serves."""
    return [name for name, m in app.extensions["crm_portal"].modules.items() if m.record is not None]
