"""The test client and the login helpers: CSRF protection stays on, as in production."""
from __future__ import annotations

import re
import secrets
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse


class CsrfClient(FlaskClient):
    """A test client that sends the session's CSRF token (``X-CSRFToken``) with unsafe requests,
    the way a browser submits the token of the form it shows.

    ``client.post(url, data=…, csrf=False)`` sends none: for the tests of the CSRF guard itself.
    """

    def open(self, *args: Any, csrf: bool = True, **kwargs: Any) -> TestResponse:
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
        return URLSafeTimedSerializer(app.secret_key or "", salt="wtf-csrf-token").dumps(raw)


def login(client: FlaskClient, email: str, password: str = "demo") -> Any:
    """Log a contact in to the portal (demo password by default); fails the test if refused."""
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 302, f"login of {email} failed"
    return response


def staff_login(client: FlaskClient, email: str = "admin@example.com", password: str = "demo") -> Any:
    """Log a staff user in to the admin (the demo admin by default); fails the test if refused."""
    response = client.post("/admin/login", data={"email": email, "password": password})
    assert response.status_code == 302, f"staff login of {email} failed"
    return response


def csrf_token(html: str) -> str:
    """The CSRF token of the (first) form in a page."""
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)
