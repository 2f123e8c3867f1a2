"""Test fixtures: a fresh application and database for every test.

SQLite by default (a new file per test). With ``CRM_PORTAL_TEST_DATABASE_URL`` set, the same tests
run on that PostgreSQL database: tables are created as needed and emptied before each test.

CSRF protection is on, as in production. The test client (:class:`CsrfClient`) sends a valid token
with every unsafe request, the way a browser submits the token of the form it shows; a test that
checks the guard itself passes ``csrf=False`` to send none.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

import peewee as pw
import pytest
from flask import Flask
from flask.testing import FlaskClient

from crm_portal import create_app
from crm_portal.db import db
from crm_portal.migrations import upgrade

PG_URL = os.environ.get("CRM_PORTAL_TEST_DATABASE_URL") or None


def database_url(tmp_path) -> str:
    return PG_URL or f"sqlite:///{tmp_path / 'test.db'}"


_pg_schema_reset = False


def _empty_postgres() -> None:
    """Empty every table but the schema history (the tables stay, so their steps stay applied).
    The first time in a run, start from an empty schema so no table of an older run lingers."""
    global _pg_schema_reset
    if not _pg_schema_reset:
        db.execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        _pg_schema_reset = True
        return
    tables = [t for t in db.obj.get_tables() if t != "core_migration_history"]
    if tables:
        db.execute_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


class CsrfClient(FlaskClient):
    """A test client that sends the session's CSRF token (``X-CSRFToken``) with unsafe requests.

    ``client.post(url, data=…, csrf=False)`` sends none: for the tests of the CSRF guard itself.
    """

    def open(self, *args: Any, csrf: bool = True, **kwargs: Any):  # type: ignore[override]
        # Read the whole answer and close it, as a server does: downloads served from files
        # (flask.send_file) release their file at once instead of when the response is collected.
        kwargs.setdefault("buffered", True)
        method = (kwargs.get("method") or "GET").upper()
        if csrf and method not in ("GET", "HEAD", "OPTIONS", "TRACE") and self.application.config.get(
                "WTF_CSRF_ENABLED", True):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token())
            base_url = kwargs.get("base_url") or ""
            if base_url.startswith("https://"):
                headers.setdefault("Referer", base_url.rstrip("/") + "/")  # as a browser sends it over HTTPS
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)

    def csrf_token(self) -> str:
        """A valid token for this client's session (created in the session when it has none)."""
        from itsdangerous import URLSafeTimedSerializer

        app = self.application
        field = app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        with self.session_transaction() as session:
            raw = session.get(field)
            if raw is None:
                raw = session[field] = secrets.token_hex(20)
        return URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw)


def make_app(tmp_path, **overrides: Any) -> Flask:
    """A configured application with its schema ready and no rows (for tests that need options)."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url(tmp_path),
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SERVER_NAME": "portal.test",
        "BABEL_DEFAULT_LOCALE": "en",
    }
    config.update(overrides)
    app = create_app(config)
    app.test_client_class = CsrfClient
    with db.connection_context():
        if PG_URL:
            _empty_postgres()
        upgrade(app.extensions["crm_portal"])
    return app


@pytest.fixture
def app(tmp_path) -> Iterator[Flask]:
    application = make_app(tmp_path)
    yield application
    if not db.is_closed():
        db.close()


@pytest.fixture
def demo(app: Flask) -> dict[str, Any]:
    """The demo data set (see crm_portal/demo.py): returns contacts and companies by key."""
    from crm_portal.demo import load_demo
    from crm_portal.models import Company, Contact

    with app.app_context(), db.connection_context():
        load_demo(app)
        contacts = {c.email.split("@")[0]: c for c in Contact.select()}
        companies = {c.name.split()[0].lower(): c for c in Company.select()}
    return {"contacts": contacts, "companies": companies}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def login(client: FlaskClient, email: str, password: str = "demo") -> Any:
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 302, f"login of {email} failed"
    return response


def staff_login(client: FlaskClient, email: str = "admin@example.com", password: str = "demo") -> Any:
    response = client.post("/admin/login", data={"email": email, "password": password})
    assert response.status_code == 302, f"staff login of {email} failed"
    return response


class QueryCounter(logging.Handler):
    """Counts SQL statements run inside ``with counter:`` (peewee logs each one at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.queries: list[str] = []

    @property
    def count(self) -> int:
        return len(self.queries)

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg
        self.queries.append(msg[0] if isinstance(msg, tuple) else str(msg))

    def __enter__(self) -> "QueryCounter":
        self.queries = []
        logger = logging.getLogger("peewee")
        self._level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logger = logging.getLogger("peewee")
        logger.removeHandler(self)
        logger.setLevel(self._level)


@pytest.fixture
def queries() -> QueryCounter:
    return QueryCounter()


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)


__all__ = ["login", "staff_login", "make_app", "csrf_token", "CsrfClient", "QueryCounter", "pw"]
