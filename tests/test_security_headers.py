"""Security headers on every kind of page, HSTS over HTTPS, no-store on personal pages."""
from __future__ import annotations

import re
from pathlib import Path

import flask_admin
import pytest
from conftest import login, staff_login

from crm_portal.db import db
from crm_portal.models import OutboxMessage

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


# An inline event handler attribute (onclick=, onchange= …): the CSP refuses to run it.
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
# Views with row deletes, "with selected" actions, filters and inline models (profiles, FAQ, quotes).
ADMIN_VIEWS = ["core_company", "core_contact", "core_profile", "core_outbox", "faq_article", "quotes_quote"]
# Records the demo data lacks.
SEEDS = {"core_outbox": lambda: OutboxMessage.create(template="invitation", to_address="x@example.com",
                                                     subject="Invitation", body_text="-")}


def _admin_view(app, endpoint: str):
    return next(v for v in app.extensions["admin"][0]._views if v.endpoint == endpoint)


def _admin_pages(app, endpoint: str) -> list[str]:
    """The list, create, edit and details pages of ``endpoint`` that exist, for its first record."""
    view = _admin_view(app, endpoint)
    with app.app_context(), db.connection_context():
        record = view.model.select().order_by(view.model.id).first() or SEEDS[endpoint]()
    assert record is not None, f"the demo data has no {endpoint} record"
    pages = [f"/admin/{endpoint}/", f"/admin/{endpoint}/details/?id={record.id}"]
    pages += [f"/admin/{endpoint}/new/"] if view.can_create else []
    pages += [f"/admin/{endpoint}/edit/?id={record.id}"] if view.can_edit else []
    return pages


def _script_src(policy: str) -> str:
    return policy.split("script-src", 1)[1].split(";", 1)[0]


@pytest.mark.parametrize("endpoint", ADMIN_VIEWS)
def test_admin_pages_have_no_inline_event_handlers(app, demo, endpoint):
    """Flask-Admin's inline handlers are replaced (templates/admin, static/js/admin.js): a template
    that brings one back would silently break under the CSP (a delete without confirmation …)."""
    client = app.test_client()
    staff_login(client)
    for path in _admin_pages(app, endpoint):
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.text
        assert not INLINE_HANDLER.findall(html), (path, INLINE_HANDLER.findall(html))
        # Every script tag carries this response's nonce, and no script comes from another origin.
        nonce = re.search(r"'nonce-([^']+)'", _script_src(response.headers["Content-Security-Policy"])).group(1)
        for attributes in SCRIPT_TAG.findall(html):
            assert f'nonce="{nonce}"' in attributes, (path, attributes)
            src = re.search(r'src="([^"]*)"', attributes)
            assert src is None or src.group(1).startswith("/"), (path, attributes)
        assert 'src="/static/js/admin.js"' in html, path


def test_admin_replacements_are_in_place(app, demo):
    """The data- attributes static/js/admin.js acts on are where Flask-Admin had inline handlers."""
    client = app.test_client()
    staff_login(client)
    contacts = client.get("/admin/core_contact/").text
    assert 'data-confirm="Are you sure you want to delete this record?"' in contacts
    assert 'data-admin-action="invite"' in contacts
    assert 'id="actions-confirmation-data"' in contacts and 'id="action_form"' in contacts
    assert "admin/js/actions.js" not in contacts  # admin.js submits the actions
    assert 'data-inline-add="lines"' in client.get("/admin/quotes_quote/new/").text


def test_admin_csp_admits_no_inline_scripts(app, demo):
    client = app.test_client()
    staff_login(client)
    first = client.get("/admin/core_contact/").headers["Content-Security-Policy"]
    second = client.get("/admin/core_contact/").headers["Content-Security-Policy"]
    for keyword in ("'unsafe-inline'", "'unsafe-hashes'", "'unsafe-eval'", "'strict-dynamic'"):
        assert keyword not in _script_src(first), keyword
    assert "'nonce-" in _script_src(first) and _script_src(first) != _script_src(second)  # fresh per request
    assert "'nonce-" not in client.get("/admin/login").headers["Content-Security-Policy"].replace(
        "script-src 'self' 'nonce-", "")  # only script-src carries it
    portal = app.test_client().get("/login").headers["Content-Security-Policy"]
    assert "nonce-" not in portal and "'unsafe-inline'" not in portal  # the portal needs neither


def test_every_flask_admin_template_with_inline_handlers_is_overridden(app):
    """A Flask-Admin upgrade that adds an inline handler to a template we do not override shows here."""
    theme_root = Path(flask_admin.__file__).parent / "templates" / "bootstrap4"
    ours = Path(app.root_path) / "templates"
    unused = {"admin/file/list.html"}  # the portal has no file admin
    for template in theme_root.rglob("*.html"):
        name = template.relative_to(theme_root).as_posix()
        if name in unused or not INLINE_HANDLER.search(template.read_text()):
            continue
        override = ours / name
        assert override.is_file(), f"{name} has inline event handlers: override it in {ours}"
        assert not INLINE_HANDLER.search(override.read_text()), name
