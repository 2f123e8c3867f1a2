"""The portal's tests run on its testing kit (crm_portal.testing, a pytest plugin): a fresh
application and database for every test, built from a schema (and demo data) made once per
session.

SQLite by default (a file per test, copied from the session's template). With
``CRM_PORTAL_TEST_DATABASE_URL`` set, the same tests run on that PostgreSQL database: its tables
are emptied before each test and the demo data is restored from a copy.

CSRF protection is on, as in production. The test client (:class:`CsrfClient`) sends a valid token
with every unsafe request, the way a browser submits the token of the form it shows; a test that
checks the guard itself passes ``csrf=False`` to send none.

The names below are the kit's, kept here for the test files importing them from ``conftest``;
the fixtures are the plugin's (re-declared here so that the suite runs with the plugin switched off
too).
"""
from __future__ import annotations

import pytest

from crm_portal.testing import (
    PG_URL,
    CsrfClient,
    FrozenClock,
    QueryCounter,
    csrf_token,
    database_url,
    login,
    make_app,
    staff_login,
)
from crm_portal.testing.plugin import app, client, demo, frozen_clock, queries


@pytest.fixture
def receiver():
    """A local webhook receiver (:class:`api_helpers.Receiver`), shut down after the test."""
    from api_helpers import Receiver

    server = Receiver()
    yield server
    server.close()

__all__ = ["login", "staff_login", "make_app", "csrf_token", "CsrfClient", "QueryCounter", "FrozenClock", "PG_URL",
           "database_url", "app", "demo", "client", "queries", "frozen_clock"]
