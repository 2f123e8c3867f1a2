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
- optional ``ROUTES``: :class:`scope_cases.Route` entries for the routes that read or act on one
  record — comment, download, close … — each answering its own status in scope and 404 out of scope;
- optional ``ACTIONS``: the actions to grant (default: every action the module declares).
"""
from __future__ import annotations

import html
import importlib
import pkgutil
import re

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


# The parts of a page that name the record without showing it: a detail page whose body failed to
# render still has them.
_HEADINGS = re.compile(r"<title>.*?</title>|<nav aria-label=\"breadcrumb\">.*?</nav>|<h1[ >].*?</h1>", re.S)


def _page_body(page: str) -> str:
    """The page's text but its title, breadcrumbs and heading, unescaped."""
    return html.unescape(_HEADINGS.sub("", page))


def _check_detail(client, case, record_id: int, content: str, expected: bool) -> None:
    detail = client.get(f"/{case.MODULE}/{record_id}")
    if expected:
        assert detail.status_code == 200, f"/{case.MODULE}/{record_id} answered {detail.status_code}"
        shown = content in _page_body(detail.text)
        assert shown, f"the detail page does not show {content!r}"
    else:
        assert detail.status_code == 404
        assert content not in html.unescape(detail.text)


def _check_list(client, case, scope: str, marker: str, expected: bool) -> None:
    listing = client.get(f"/{case.MODULE}/?per_page=100")
    if scope == "hidden":
        assert listing.status_code == 404
        assert marker not in listing.text
    else:
        assert listing.status_code == 200
        shown = marker in _page_body(listing.text)
        assert shown == expected, f"list page: {marker!r} shown={shown}"


def _check_export(client, case, scope: str, actions, marker: str, expected: bool) -> None:
    export = client.get(f"/{case.MODULE}/export.csv")
    if scope == "hidden":
        assert export.status_code == 404
    elif "export" not in actions:
        assert export.status_code == 403
    else:
        assert export.status_code == 200
        assert export.mimetype == "text/csv"
        rows = export.text.splitlines()[1:]  # past the header
        exported = any(marker in row for row in rows)
        assert exported == expected, f"CSV: {marker!r} exported={exported}"
    if export.status_code != 200:
        assert marker not in export.text


def _check_routes(app, client, case, record_id: int, expected: bool) -> None:
    for route in getattr(case, "ROUTES", ()):
        with app.app_context(), db.connection_context():
            if route.prepare is not None:
                route.prepare(record_id)
            url = route.path(record_id)
        response = client.open(url, method=route.method, data=route.form())
        if not expected:
            assert response.status_code == 404, f"{route.method} {url} leaked a record out of scope"
            continue
        assert response.status_code == route.status, (
            f"{route.method} {url} answered {response.status_code}, not {route.status}")
        if route.check is not None:
            with app.app_context(), db.connection_context():
                route.check(response, record_id)


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
        content = getattr(case, "content", case.marker)(record_id, demo)
    login(client, "bruno@acme.example")

    _check_detail(client, case, record_id, content, expected)
    _check_list(client, case, scope, marker, expected)
    _check_export(client, case, scope, actions, marker, expected)
    _check_routes(app, client, case, record_id, expected)
