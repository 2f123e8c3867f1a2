"""The pytest plugin of CRM Portal (entry point ``pytest11``: ``crm_portal``), for the portal's
own tests and for partners' module tests.

Fixtures:

- ``app``: an application (test settings, CSRF on) on a fresh database with every discovered
  module's tables and no rows; ``demo``: the same with the demo data set, returning the demo
  contacts and companies by short key; ``client``: a :class:`~crm_portal.testing.CsrfClient`;
- ``queries``: a :class:`~crm_portal.testing.QueryCounter`;
- ``frozen_clock``: a :class:`~crm_portal.testing.FrozenClock` installed for the test.

Nothing of the portal is imported until a fixture runs, so the plugin costs nothing in the test
runs of other projects sharing the environment. Set ``CRM_PORTAL_TEST_DATABASE_URL`` to run on
PostgreSQL; ``-p no:crm_portal`` switches the plugin off.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient

    from .clock import FrozenClock
    from .queries import QueryCounter


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """An application on a fresh database: every table, no rows (``make_app(tmp_path)``)."""
    from crm_portal.db import close_all

    from .database import make_app

    application = make_app(tmp_path)
    yield application
    close_all()  # the pooled connections too: the test's database goes away


@pytest.fixture
def demo(app: Flask) -> dict[str, Any]:
    """The demo data set (crm_portal/demo.py and every module's ``demo_data``) in ``app``'s
    database: returns ``{"contacts": {"anna": Contact, …}, "companies": {"acme": Company, …}}``."""
    from .database import demo_records, load_demo

    load_demo(app)
    return demo_records(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of ``app`` that sends CSRF tokens with its posts (``csrf=False`` sends none)."""
    return app.test_client()


@pytest.fixture
def queries() -> QueryCounter:
    """Counts the SQL statements run inside ``with queries:``."""
    from .queries import QueryCounter

    return QueryCounter()


@pytest.fixture
def frozen_clock() -> Iterator[FrozenClock]:
    """The portal's clock frozen at the test's start: move it with ``frozen_clock.advance(days=2)``."""
    from .clock import FrozenClock

    with FrozenClock().installed() as clock:
        yield clock
