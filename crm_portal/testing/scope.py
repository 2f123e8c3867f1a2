"""The visibility matrix as a reusable check: a module's records seen by a contact whose profile
grants the module with the *own* scope, the *company* scope, or not at all (*hidden*).

The viewer is bruno@acme.example of the demo data (own scope by default). For each combination
of scope × record (his own, a colleague's — anna's — and another company's — carla's) the check
asserts that a record in scope answers 200 with its own content on its detail page, in the list
and in the CSV export, and that a record out of scope answers 404 and shows nowhere; every
:class:`Route` given (comment, download, accept …) answers its own status in scope and 404 out of
scope. A partner proves their module's rules in a few lines::

    from crm_portal.testing import assert_scope_matrix

    def test_visibility(app, demo):
        assert_scope_matrix(app, "visits", records=three_visits, marker=visit_number)
"""
from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from flask import Flask

SCOPE_NAMES = ("own", "company", "hidden")
RECORD_NAMES = ("own", "colleague", "other")
#: The viewer of the matrix: bruno (own scope, Acme); anna is his colleague, carla of Globex.
VIEWER = "bruno@acme.example"

#: {scope: {record: visible?}} for a module with a contact and a company field.
DEFAULT_EXPECTED: dict[str, dict[str, bool]] = {
    "own": {"own": True, "colleague": False, "other": False},
    "company": {"own": True, "colleague": True, "other": False},
    "hidden": {"own": False, "colleague": False, "other": False},
}


class Route(NamedTuple):
    """A module route that reads or acts on one record, as the scope matrix exercises it.

    ``url`` holds ``{id}`` for the record's id, or is a callable returning the path for an id.
    ``data`` is the form to send (a callable returning it when it holds files, which a request
    consumes). ``status`` is the answer expected for a record in scope (out of scope it is always
    404). ``prepare(id)`` runs before the request to put the record in the state the route acts
    on — for out-of-scope records too, so that their 404 never comes from a state check;
    ``check(response, id)`` asserts what an in-scope answer holds or changed. Both run inside an
    application context with a database connection.
    """

    method: str
    url: str | Callable[[int], str]
    status: int
    data: dict[str, Any] | Callable[[], dict[str, Any]] | None = None
    prepare: Callable[[int], None] | None = None
    check: Callable[[Any, int], None] | None = None

    def form(self) -> dict[str, Any]:
        """The form data to send, built afresh for every request."""
        return self.data() if callable(self.data) else dict(self.data or {})

    def path(self, record_id: int) -> str:
        """The URL for ``record_id``."""
        return self.url(record_id) if callable(self.url) else self.url.format(id=record_id)


@dataclass
class ScopeCase:
    """One module's part of the matrix.

    ``records(demo)`` returns the ids ``{"own": …, "colleague": …, "other": …}`` (it may create
    them); ``marker(id, demo)`` is text identifying the record on its detail page, in the list and
    in the CSV export; ``content(id, demo)`` text its detail page shows below the heading, where
    the marker is only in the heading (default: the marker). ``expected`` overrides
    :data:`DEFAULT_EXPECTED` per scope; ``actions`` are granted (default: all the module declares).
    """

    module: str
    records: Callable[[Mapping[str, Any]], Mapping[str, int]]
    marker: Callable[[int, Mapping[str, Any]], str]
    content: Callable[[int, Mapping[str, Any]], str] | None = None
    routes: Sequence[Route] = ()
    expected: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    actions: Sequence[str] | None = None

    @classmethod
    def from_module(cls, source: Any) -> ScopeCase:
        """A case from a Python module with ``MODULE``, ``records``, ``marker`` and optional
        ``content``, ``ROUTES``, ``EXPECTED`` and ``ACTIONS``."""
        return cls(module=source.MODULE, records=source.records, marker=source.marker,
                   content=getattr(source, "content", None), routes=getattr(source, "ROUTES", ()),
                   expected=getattr(source, "EXPECTED", {}), actions=getattr(source, "ACTIONS", None))


def combinations() -> list[tuple[str, str]]:
    """Every (scope, record) pair, for ``pytest.mark.parametrize``."""
    return [(scope, which) for scope in SCOPE_NAMES for which in RECORD_NAMES]


def assert_scope_matrix(app: Flask, module: str, *, records: Callable[[Mapping[str, Any]], Mapping[str, int]],
                        marker: Callable[[int, Mapping[str, Any]], str],
                        content: Callable[[int, Mapping[str, Any]], str] | None = None,
                        routes: Sequence[Route] = (), expected: Mapping[str, Mapping[str, bool]] | None = None,
                        actions: Sequence[str] | None = None) -> None:
    """Check all nine combinations of the matrix for ``module`` (see :class:`ScopeCase` for the
    arguments). The demo data is put back before each one, so routes that change records start
    from the same state every time. ``app`` is the test application (``app`` fixture)."""
    from .database import reset_demo

    case = ScopeCase(module, records, marker, content, routes, expected or {}, actions)
    for scope, which in combinations():
        demo = reset_demo(app)
        check_scope(app, app.test_client(), case, scope, which, demo)


def check_scope(app: Flask, client: Any, case: ScopeCase | Any, scope: str, which: str,
                demo: Mapping[str, Any]) -> None:
    """One combination of the matrix: ``case`` (a :class:`ScopeCase` or a module of scope-case
    attributes) seen with ``scope`` on the ``which`` record, by a fresh ``client``."""
    import pytest

    from crm_portal.db import db

    if not isinstance(case, ScopeCase):
        case = ScopeCase.from_module(case)
    module = app.extensions["crm_portal"].modules.get(case.module)
    if module is None:
        pytest.skip(f"module {case.module} is not installed")
    actions = list(case.actions or module.actions)
    _set_grant(app, case.module, scope, actions)
    expected = {**DEFAULT_EXPECTED, **case.expected}[scope][which]
    with app.app_context(), db.connection_context():
        record_id = case.records(demo)[which]
        marker = case.marker(record_id, demo)
        content = (case.content or case.marker)(record_id, demo)
    from .client import login

    login(client, VIEWER)
    where = f"{case.module}, {scope} scope, {which} record"
    _check_detail(client, case, record_id, content, expected, where)
    _check_list(client, case, scope, marker, expected, where)
    _check_export(client, case, scope, actions, marker, expected, where)
    _check_routes(app, client, case, record_id, expected, where)


def _set_grant(app: Flask, module_name: str, scope: str, actions: Iterable[str]) -> None:
    from crm_portal.db import db
    from crm_portal.models import Contact, ProfileModule

    with app.app_context(), db.connection_context():
        viewer = Contact.get(Contact.email == VIEWER)
        ProfileModule.delete().where((ProfileModule.profile == viewer.profile_id)
                                     & (ProfileModule.module == module_name)).execute()
        if scope != "hidden":
            ProfileModule.create(profile=viewer.profile_id, module=module_name, scope=scope,
                                 actions=",".join(actions))


# The parts of a page that name the record without showing it: a detail page whose body failed to
# render still has them.
_HEADINGS = re.compile(r"<title>.*?</title>|<nav aria-label=\"breadcrumb\">.*?</nav>|<h1[ >].*?</h1>", re.S)


def _page_body(page: str) -> str:
    """The page's text but its title, breadcrumbs and heading, unescaped."""
    return html.unescape(_HEADINGS.sub("", page))


def _check_detail(client: Any, case: ScopeCase, record_id: int, content: str, expected: bool, where: str) -> None:
    detail = client.get(f"/{case.module}/{record_id}")
    if expected:
        assert detail.status_code == 200, f"{where}: /{case.module}/{record_id} answered {detail.status_code}"
        assert content in _page_body(detail.text), f"{where}: the detail page does not show {content!r}"
    else:
        assert detail.status_code == 404, f"{where}: detail answered {detail.status_code}, not 404"
        assert content not in html.unescape(detail.text), f"{where}: the 404 page shows {content!r}"


def _check_list(client: Any, case: ScopeCase, scope: str, marker: str, expected: bool, where: str) -> None:
    listing = client.get(f"/{case.module}/?per_page=100")
    if scope == "hidden":
        assert listing.status_code == 404, f"{where}: list answered {listing.status_code}, not 404"
        assert marker not in listing.text, f"{where}: the 404 page shows {marker!r}"
    else:
        assert listing.status_code == 200, f"{where}: list answered {listing.status_code}"
        shown = marker in _page_body(listing.text)
        assert shown == expected, f"{where}: list page: {marker!r} shown={shown}"


def _check_export(client: Any, case: ScopeCase, scope: str, actions: Sequence[str], marker: str, expected: bool,
                  where: str) -> None:
    export = client.get(f"/{case.module}/export.csv")
    if scope == "hidden":
        assert export.status_code == 404, f"{where}: export answered {export.status_code}, not 404"
    elif "export" not in actions:
        assert export.status_code == 403, f"{where}: export without the grant answered {export.status_code}"
    else:
        assert export.status_code == 200, f"{where}: export answered {export.status_code}"
        assert export.mimetype == "text/csv"
        rows = export.text.splitlines()[1:]  # past the header
        exported = any(marker in row for row in rows)
        assert exported == expected, f"{where}: CSV: {marker!r} exported={exported}"
    if export.status_code != 200:
        assert marker not in export.text, f"{where}: the refusal shows {marker!r}"
    _check_xlsx_export(client, case, scope, actions, marker, expected, where)


def _check_xlsx_export(client: Any, case: ScopeCase, scope: str, actions: Sequence[str], marker: str,
                       expected: bool, where: str) -> None:
    """The .xlsx export passes the same gate as the CSV: read back, its cells show the marker
    exactly when the list does."""
    import io

    from openpyxl import load_workbook

    export = client.get(f"/{case.module}/export.xlsx")
    if scope == "hidden":
        assert export.status_code == 404, f"{where}: xlsx export answered {export.status_code}, not 404"
    elif "export" not in actions:
        assert export.status_code == 403, f"{where}: xlsx export without the grant answered {export.status_code}"
    else:
        assert export.status_code == 200, f"{where}: xlsx export answered {export.status_code}"
        sheet = load_workbook(io.BytesIO(export.data), read_only=True).worksheets[0]
        cells = [str(v) for row in sheet.iter_rows(min_row=2, values_only=True) for v in row if v is not None]
        exported = any(marker in cell for cell in cells)
        assert exported == expected, f"{where}: xlsx: {marker!r} exported={exported}"


def _check_routes(app: Flask, client: Any, case: ScopeCase, record_id: int, expected: bool, where: str) -> None:
    from crm_portal.db import db

    for route in case.routes:
        with app.app_context(), db.connection_context():
            if route.prepare is not None:
                route.prepare(record_id)
            url = route.path(record_id)
        response = client.open(url, method=route.method, data=route.form())
        if not expected:
            assert response.status_code == 404, f"{where}: {route.method} {url} leaked a record out of scope"
            continue
        assert response.status_code == route.status, (
            f"{where}: {route.method} {url} answered {response.status_code}, not {route.status}")
        if route.check is not None:
            with app.app_context(), db.connection_context():
                route.check(response, record_id)
