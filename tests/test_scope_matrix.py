"""The visibility matrix: every module × {own, company, hidden} scope × {own, colleague's, other
company's record}, through every route that reads records.

The viewer is always bruno@acme.example; the test rewrites his profile's grant on the module. A
record in scope answers 200 with its own content (detail page, list row, CSV row); a record out of
scope answers 404 and shows nowhere. A module joins the matrix with a file in tests/scope_cases/
defining:

- ``MODULE``: the module name;
- ``records(demo)``: ids of bruno's own record, a colleague's (anna's) and another company's (carla's);
- ``marker(record_id, demo)``: text identifying that record in its detail page, the list page and
  the CSV export (and in none of them when the record is out of scope);
- optional ``content(record_id, demo)``: text of the record that its detail page shows below the
  heading, where ``marker`` is only in the heading (default: ``marker``);
- optional ``EXPECTED``: {scope: {which: visible?}} where it differs from the default;
- optional ``ROUTES``: :class:`crm_portal.testing.Route` entries for the routes that read or act on one
  record — comment, download, close … — each answering its own status in scope and 404 out of scope;
- optional ``ACTIONS``: the actions to grant (default: every action the module declares).

The checks are the testing kit's (crm_portal.testing.scope), which partners use for their modules.
"""
from __future__ import annotations

import importlib
import pkgutil

import pytest
import scope_cases

from crm_portal.testing import check_scope, combinations

CASES = [importlib.import_module(f"scope_cases.{m.name}") for m in pkgutil.iter_modules(scope_cases.__path__)]
PARAMS = [(case, scope, which) for case in CASES for scope, which in combinations()]


@pytest.mark.parametrize("case,scope,which", PARAMS,
                         ids=[f"{c.MODULE}-{s}-{w}" for c, s, w in PARAMS])
def test_scope_matrix(app, demo, client, case, scope, which):
    check_scope(app, client, case, scope, which, demo)
