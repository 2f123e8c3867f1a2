"""REST API keys: stored hashed, refused alike whatever is wrong with them, scopes checked,
never a cookie or a token in the address; the CLI that creates, lists and revokes them."""
from __future__ import annotations

import datetime as dt

import pytest
from api_helpers import bearer, make_key

from crm_portal.db import db, utcnow
from crm_portal.models import ApiKey, AuditEntry, Integration
from crm_portal.rest.keys import KeyRefused, all_scopes, create_key, parse_scopes
from crm_portal.testing import login


def _update(app, key_id: str, **values) -> None:
    with app.app_context(), db.connection_context():
        ApiKey.update(**values).where(ApiKey.key_id == key_id).execute()


def test_secret_is_stored_nowhere_in_clear(app, demo):
    new = make_key(app, "tickets:read")
    prefix = f"crmp_{new.key.key_id}_"
    assert new.token.startswith(prefix)
    secret = new.token[len(prefix):]  # the secret's alphabet has "_" too: cut after the key id
    assert len(secret) >= 43
    with app.app_context(), db.connection_context():
        for table in db.get_tables():
            rows = db.execute_sql(f'SELECT * FROM "{table}"').fetchall()
            for row in rows:
                for value in row:
                    assert secret not in str(value), f"secret found in {table}"
        stored = ApiKey.get(ApiKey.key_id == new.key.key_id)
        assert stored.secret_hash != secret and len(stored.secret_hash) == 64


def test_valid_key_reads(app, demo, client):
    new = make_key(app, "tickets:read")
    response = client.get("/api/v1/tickets", headers=bearer(new.token))
    assert response.status_code == 200
    assert response.get_json()["items"]


@pytest.mark.parametrize("kind", ["unknown", "malformed", "wrong_secret", "revoked", "expired", "ip", "inactive",
                                  "no_header", "basic_scheme", "empty_bearer"])
def test_every_refused_key_answers_the_same_401(app, demo, client, kind):
    new = make_key(app, "tickets:read")
    token = new.token
    headers = bearer(token)
    if kind == "unknown":
        headers = bearer("crmp_000000000000_" + "A" * 43)
    elif kind == "malformed":
        headers = bearer("crmp_nonsense")
    elif kind == "wrong_secret":
        headers = bearer(token[:-4] + "AAAA" if not token.endswith("AAAA") else token[:-4] + "BBBB")
    elif kind == "revoked":
        _update(app, new.key.key_id, revoked_at=utcnow())
    elif kind == "expired":
        _update(app, new.key.key_id, expires_at=utcnow() - dt.timedelta(seconds=1))
    elif kind == "ip":
        _update(app, new.key.key_id, allowed_ips="10.1.0.0/16")
    elif kind == "inactive":
        with app.app_context(), db.connection_context():
            Integration.update(active=False).execute()
    elif kind == "no_header":
        headers = {}
    elif kind == "basic_scheme":
        headers = {"Authorization": f"Basic {token}"}
    elif kind == "empty_bearer":
        headers = {"Authorization": "Bearer "}
    reference = client.get("/api/v1/tickets", headers=bearer("crmp_000000000000_" + "B" * 43))
    response = client.get("/api/v1/tickets", headers=headers)
    assert response.status_code == 401
    assert response.data == reference.data
    assert response.get_json()["code"] == "unauthorized"


def test_allowed_ip_range_admits_its_addresses(app, demo, client):
    new = make_key(app, "tickets:read", allowed_ips=["10.1.0.0/16"])
    inside = client.get("/api/v1/tickets", headers=bearer(new.token), environ_base={"REMOTE_ADDR": "10.1.2.3"})
    outside = client.get("/api/v1/tickets", headers=bearer(new.token), environ_base={"REMOTE_ADDR": "10.2.0.1"})
    assert (inside.status_code, outside.status_code) == (200, 401)


def test_missing_scope_is_403_naming_it(app, demo, client):
    new = make_key(app, "companies:read")
    response = client.get("/api/v1/tickets", headers=bearer(new.token))
    assert response.status_code == 403
    assert "tickets:read" in response.get_json()["message"]
    assert client.get("/api/v1/tickets/1", headers=bearer(new.token)).status_code == 403


def test_token_in_query_string_is_refused(app, demo, client):
    new = make_key(app, "tickets:read")
    assert client.get(f"/api/v1/tickets?access_token={new.token}").status_code == 400
    # Even beside a valid header: the address leaks into logs, so it is never accepted.
    response = client.get(f"/api/v1/tickets?token={new.token}", headers=bearer(new.token))
    assert response.status_code == 400
    assert "Authorization" in response.get_json()["message"]


def test_portal_session_cookie_alone_is_not_api_auth(app, demo, client):
    login(client, "anna@acme.example")
    assert client.get("/tickets/").status_code == 200  # the session works in the portal
    response = client.get("/api/v1/tickets")
    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthorized"


def test_last_used_is_written_at_most_once_a_minute(app, demo, client, frozen_clock):
    new = make_key(app, "tickets:read")

    def last_used():
        with app.app_context(), db.connection_context():
            return ApiKey.get(ApiKey.key_id == new.key.key_id).last_used_at

    assert last_used() is None
    client.get("/api/v1/tickets", headers=bearer(new.token))
    first = last_used()
    assert first is not None
    frozen_clock.advance(dt.timedelta(seconds=30))
    client.get("/api/v1/tickets", headers=bearer(new.token))
    assert last_used() == first
    frozen_clock.advance(dt.timedelta(seconds=31))
    client.get("/api/v1/tickets", headers=bearer(new.token))
    assert last_used() > first


def test_scopes_come_from_the_registry(app):
    with app.app_context():
        scopes = set(all_scopes())
        for name in app.extensions["crm_portal"].modules:
            assert {f"{name}:read", f"{name}:write"} <= scopes
        assert {"companies:read", "contacts:write", "sync:write", "webhooks:manage", "email:ingest"} <= scopes
        with pytest.raises(KeyRefused, match="unknown scope.*tickets:reed"):
            parse_scopes("tickets:read tickets:reed")


def test_create_key_refuses_bad_input(app):
    with app.app_context(), db.connection_context():
        for args, kwargs in [(("crm", ""), {}), (("", "tickets:read"), {}),
                             (("crm", "tickets:read"), {"allowed_ips": ["not-an-ip"]}),
                             (("crm", "tickets:read"), {"expires_days": 0})]:
            with pytest.raises(KeyRefused):
                create_key(*args, **kwargs)
        assert ApiKey.select().count() == 0 and Integration.select().count() == 0


def test_cli_creates_lists_and_revokes_keys(app, demo, client):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["api-key", "create", "--name", "helpdesk", "--scopes", "tickets:read faq:read",
                                 "--expires-days", "30", "--allow-ip", "127.0.0.0/8"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("crmp_")
    assert client.get("/api/v1/faq", headers=bearer(token)).status_code == 200
    _, key_id, secret = token.split("_", 2)  # the secret may itself contain "_"

    listed = runner.invoke(args=["api-key", "list"])
    assert key_id in listed.output and "helpdesk" in listed.output and secret not in listed.output

    revoked = runner.invoke(args=["api-key", "revoke", key_id])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert client.get("/api/v1/faq", headers=bearer(token)).status_code == 401
    with app.app_context(), db.connection_context():
        actions = [(e.action, e.actor_type) for e in AuditEntry.select().where(
            AuditEntry.object_type == ApiKey._meta.table_name).order_by(AuditEntry.id)]
    assert actions == [("api_key.create", "system"), ("api_key.revoke", "system")]


def test_cli_refuses_unknown_scope(app):
    result = app.test_cli_runner().invoke(args=["api-key", "create", "--name", "x", "--scopes", "tickets:everything"])
    assert result.exit_code != 0
    assert "unknown scope" in result.output
    with app.app_context(), db.connection_context():
        assert ApiKey.select().count() == 0


def test_integration_actor_in_audit(app, demo):
    from crm_portal.audit import audit
    from crm_portal.scoping import IntegrationPrincipal

    with app.test_request_context(), db.connection_context():
        integration = Integration.create(name="crm")
        entry = audit("thing.sync", user=IntegrationPrincipal(integration), object_type="x", object_id=1)
    assert (entry.actor_type, entry.actor_id, entry.actor_label) == ("integration", integration.id, "crm")


def test_unique_key_ids(app):
    with app.app_context(), db.connection_context():
        ids = {create_key("crm", "faq:read").key.key_id for _ in range(20)}
    assert len(ids) == 20


def test_errors_speak_the_request_language(app, demo, client):
    response = client.get("/api/v1/tickets", headers={"Accept-Language": "it"})
    assert response.status_code == 401
    assert response.get_json()["message"] == "Chiave API mancante o non valida."


def test_audit_helper_names_the_calling_integration(app, demo, client):
    from flask import g

    from crm_portal.rest.auth import audit_integration, authenticate

    new = make_key(app, "tickets:read")
    with app.test_request_context("/api/v1/tickets", headers=bearer(new.token)), db.connection_context():
        authenticate()
        entry = audit_integration("ticket.synced", object_type="tickets_ticket", object_id=7)
        assert g.api_key.key_id == new.key.key_id
    assert (entry.actor_type, entry.actor_label, entry.object_id) == ("integration", "crm", "7")
