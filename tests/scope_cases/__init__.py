"""Scope-matrix cases, one file per module (see test_scope_matrix.py for the contract)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


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
