"""API keys in the admin: issued with the token shown once, listed without secrets, revoked,
audited with the staff member as actor; operators kept out."""
from __future__ import annotations

import re

from api_helpers import bearer, make_key

from crm_portal.db import db
from crm_portal.models import ApiKey, AuditEntry, StaffUser
from crm_portal.testing import staff_login


def _token(page: str) -> str:
    found = re.search(r"crmp_[a-z0-9]{12}_[A-Za-z0-9_-]{43}", page)
    assert found, page
    return found.group(0)


def test_admin_issues_a_key_shown_once(app, demo, client):
    staff_login(client)
    assert client.get("/admin/core_api_key/new/").status_code == 200
    response = client.post("/admin/core_api_key/new/", data={
        "integration": "helpdesk", "scopes": ["tickets:read", "faq:read"], "expires_days": "30",
        "allowed_ips": "127.0.0.0/8\n10.0.0.0/8"})
    assert response.status_code == 200
    token = _token(response.text)
    assert client.get("/api/v1/tickets", headers=bearer(token)).status_code == 200
    listing = client.get("/admin/core_api_key/").text
    _, key_id, secret = token.split("_", 2)  # the secret may itself contain "_"
    assert key_id in listing and secret not in listing
    with app.app_context(), db.connection_context():
        key = ApiKey.get(ApiKey.key_id == key_id)
        assert key.scopes == "faq:read tickets:read" and key.allowed_ips == "127.0.0.0/8 10.0.0.0/8"
        entry = AuditEntry.get(AuditEntry.action == "api_key.create")
        assert (entry.actor_type, entry.actor_label) == ("staff", "admin@example.com")
        details = client.get(f"/admin/core_api_key/details/?id={key.id}").text
    assert key.secret_hash not in details and key.secret_hash not in listing


def test_admin_refuses_bad_input_and_writes_nothing(app, demo, client):
    staff_login(client)
    for data in ({"integration": "", "scopes": ["tickets:read"]},
                 {"integration": "crm", "scopes": []},
                 {"integration": "crm", "scopes": ["tickets:everything"]},
                 {"integration": "crm", "scopes": ["tickets:read"], "allowed_ips": "not an ip"},
                 {"integration": "crm", "scopes": ["tickets:read"], "expires_days": "0"},
                 {"integration": "c\x00rm", "scopes": ["tickets:read"]}):
        response = client.post("/admin/core_api_key/new/", data=data)
        assert response.status_code == 400, data
        assert "crmp_" not in response.text
    with app.app_context(), db.connection_context():
        assert ApiKey.select().count() == 0


def test_admin_form_needs_csrf(app, demo, client):
    staff_login(client)
    response = client.post("/admin/core_api_key/new/", data={"integration": "crm", "scopes": ["tickets:read"]},
                           csrf=False)
    assert response.status_code == 400
    with app.app_context(), db.connection_context():
        assert ApiKey.select().count() == 0


def test_admin_revokes_keys(app, demo, client):
    new = make_key(app, "tickets:read")
    staff_login(client)
    response = client.post("/admin/core_api_key/action/", data={"action": "revoke", "rowid": [str(new.key.id)]})
    assert response.status_code == 302
    assert client.get("/api/v1/tickets", headers=bearer(new.token)).status_code == 401
    with app.app_context(), db.connection_context():
        entry = AuditEntry.get(AuditEntry.action == "api_key.revoke")
        assert entry.actor_type == "staff" and entry.object_id == str(new.key.id)


def test_operators_cannot_manage_keys(app, demo, client):
    with app.app_context(), db.connection_context():
        operator = StaffUser.select().where(StaffUser.role == "operator").first()
    staff_login(client, operator.email)
    assert client.get("/admin/core_api_key/").status_code in (302, 403)
    response = client.post("/admin/core_api_key/new/", data={"integration": "x", "scopes": ["tickets:read"]})
    assert response.status_code in (302, 403)
    with app.app_context(), db.connection_context():
        assert ApiKey.select().count() == 0
