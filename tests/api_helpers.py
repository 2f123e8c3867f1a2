"""Shared by the REST API tests: keys made in the test database, bearer headers, and a local
webhook receiver (the ``receiver`` fixture is tests/conftest.py's)."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def openapi(app: Flask, client: Any) -> dict[str, Any]:
    """The API's OpenAPI document, read with a key (it is not public unless ``API_DOCS_PUBLIC``)."""
    response = client.get("/api/v1/openapi.json", headers=bearer(make_key(app, name="docs-reader").token))
    assert response.status_code == 200, response.status_code
    return response.get_json()


def record_modules(app: Flask) -> list[str]:
    """Every module of the registry with records the API serves."""
    return [name for name, m in app.extensions["crm_portal"].modules.items() if m.record is not None]


class Receiver:
    """A local HTTP server answering the statuses of ``answers`` in turn (200 once they run out),
    keeping every request (path, headers, body)."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
