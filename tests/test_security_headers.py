"""Security headers on every kind of page, HSTS over HTTPS, no-store on personal pages."""
from __future__ import annotations

import pytest

from conftest import login, staff_login

COMMON = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")


@pytest.mark.parametrize("path,status", [
    ("/login", 200), ("/forgot-password", 200), ("/reset-password/bogus", 400), ("/nowhere", 404),
    ("/admin/login", 200), ("/static/css/portal.css", 200),
])
def test_anonymous_pages_carry_headers(app, path, status):
    response = app.test_client().get(path)
    response.close()
    assert response.status_code == status
    for name in COMMON:
        assert name in response.headers, (path, name)
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers


def test_login_and_link_pages_are_not_cached(app):
    client = app.test_client()
    for path in ("/login", "/forgot-password", "/reset-password/bogus"):
        assert client.get(path).headers.get("Cache-Control") == "no-store", path
    static = client.get("/static/css/portal.css")
    static.close()
    assert static.headers.get("Cache-Control") != "no-store"


def test_authenticated_pages_are_not_cached(app, demo):
    client = app.test_client()
    login(client, "anna@acme.example")
    for path in ("/", "/me", "/me/password", "/contacts/"):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store", path
        for name in COMMON:
            assert name in response.headers
    static = client.get("/static/css/portal.css")
    static.close()
    assert static.headers.get("Cache-Control") != "no-store"


def test_admin_pages(app, demo):
    client = app.test_client()
    staff_login(client)
    for path in ("/admin/", "/admin/core_outbox/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"
        assert "nonce-" in response.headers["Content-Security-Policy"]


def test_hsts_over_https(app, demo):
    client = app.test_client()
    response = client.get("/login", base_url="https://portal.test")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    response = client.get("/nowhere", base_url="https://portal.test")
    assert response.status_code == 404 and "Strict-Transport-Security" in response.headers
