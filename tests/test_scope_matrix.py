"""The visibility matrix: every module × {own, company, hidden} scope × {own, colleague's, other
company's record}, through every route that reads records.

The viewer is always bruno@acme.example; the test rewrites his profile's grant on the module. A
module joins the matrix with a file in tests/scope_cases/ defining:

- ``MODULE``: the module name;
- ``records(demo)``: ids of bruno's own record, a colleague's (anna's) and another company's (carla's);
- ``marker(record_id, demo)``: text identifying that record in the list page and the CSV export;
- optional ``EXPECTED``: {scope: {which: visible?}} where it differs from the default;
- optional ``ROUTES``: extra (method, url with ``{id}``, form data) that read or act on one record —
  comment, download, close … — each of which must answer 404 for a record out of scope;
- optional ``ACTIONS``: the actions to grant (default: every action the module declares).
"""
from __future__ import annotations

import importlib
import pkgutil

import pytest

import scope_cases
from conftest import login
from crm_portal.db import db
from crm_portal.models import Contact, ProfileModule

DEFAULT_EXPECTED = {
    "own": {"own": True, "colleague": False, "other": False},
    "company": {"own": True, "colleague": True, "other": False},
    "hidden": {"own": False, "colleague": False, "other": False},
}

CASES = [importlib.import_module(f"scope_cases.{m.name}") for m in pkgutil.iter_modules(scope_cases.__path__)]
PARAMS = [(case, scope, which) for case in CASES for scope in ("own", "company", "hidden")
          for which in ("own", "colleague", "other")]


def _set_grant(app, module_name: str, scope: str, actions) -> None:
    with app.app_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        ProfileModule.delete().where((ProfileModule.profile == bruno.profile_id)
                                     & (ProfileModule.module == module_name)).execute()
        if scope != "hidden":
            ProfileModule.create(profile=bruno.profile_id, module=module_name, scope=scope,
                                 actions=",".join(actions))


@pytest.mark.parametrize("case,scope,which", PARAMS,
                         ids=[f"{c.MODULE}-{s}-{w}" for c, s, w in PARAMS])
def test_scope_matrix(app, demo, client, case, scope, which):
    module = app.extensions["crm_portal"].modules.get(case.MODULE)
    if module is None:
        pytest.skip(f"module {case.MODULE} is not installed")
    actions = getattr(case, "ACTIONS", None) or module.actions
    _set_grant(app, case.MODULE, scope, actions)
    expected = {**DEFAULT_EXPECTED, **getattr(case, "EXPECTED", {})}[scope][which]
    with app.app_context(), db.connection_context():
        record_id = case.records(demo)[which]
        marker = case.marker(record_id, demo)
    login(client, "bruno@acme.example")

    detail = client.get(f"/{case.MODULE}/{record_id}")
    assert detail.status_code == (200 if expected else 404)

    listing = client.get(f"/{case.MODULE}/?per_page=100")
    if scope == "hidden":
        assert listing.status_code == 404
    else:
        assert listing.status_code == 200
        assert (marker in listing.text) == expected

    export = client.get(f"/{case.MODULE}/export.csv")
    if scope == "hidden" or "export" not in actions:
        assert export.status_code in (403, 404)
    else:
        assert export.status_code == 200
        assert (marker in export.text) == expected

    for method, url, data in getattr(case, "ROUTES", ()):
        response = client.open(url.format(id=record_id), method=method, data=data or {})
        if not expected:
            assert response.status_code == 404, f"{method} {url} leaked a record out of scope"
        else:
            assert response.status_code != 404, f"{method} {url} hid a record in scope"
