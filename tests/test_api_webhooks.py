"""``/api/v1/webhooks``: creation with the secret shown once, field errors, one integration never
reaching another's endpoints, the scope guard, no CSRF, deliveries in a fixed number of queries,
redelivery, rotation and the OpenAPI document."""
from __future__ import annotations

import pytest
from api_helpers import bearer, make_key, openapi
from standardwebhooks import Webhook

from crm_portal.db import db
from crm_portal.models import WebhookDelivery, WebhookEndpoint

EVENTS = ["ticket.created", "ticket.status_changed"]


@pytest.fixture
def token(app, demo):
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = True
    return make_key(app, "webhooks:manage tickets:read").token


def create(client, token, receiver, events=EVENTS) -> dict:
    response = client.post("/api/v1/webhooks", json={"url": receiver.url, "events": events},
                           headers=bearer(token))
    assert response.status_code == 201, response.json
    return response.json


def open_ticket(app, title: str = "Printer broken") -> None:
    from test_tickets import new_ticket

    with app.test_request_context(), db.connection_context():
        new_ticket(title=title)


def test_create_shows_the_secret_once_and_events_are_signed_with_it(app, client, token, receiver):
    made = create(client, token, receiver)
    assert made["secret"].startswith("whsec_") and sorted(made["events"]) == EVENTS and made["active"]
    shown = client.get(f"/api/v1/webhooks/{made['id']}", headers=bearer(token)).json
    assert "secret" not in shown and shown["url"] == receiver.url
    listed = client.get("/api/v1/webhooks", headers=bearer(token)).json["items"]
    assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]
    open_ticket(app)
    _path, headers, body = receiver.requests[0]
    assert Webhook(made["secret"]).verify(body, headers)["type"] == "ticket.created"


def test_field_errors(app, client, token, receiver):
    cases = [({"url": receiver.url, "events": ["ticket.exploded"]}, "events"),
             ({"url": "ftp://example.com/", "events": EVENTS}, "url"),
             ({"url": "not a url", "events": EVENTS}, "url"),
             ({"url": receiver.url}, "events"),
             ({"events": EVENTS}, "url")]
    for payload, field in cases:
        response = client.post("/api/v1/webhooks", json=payload, headers=bearer(token))
        assert response.status_code == 422, payload
        assert response.json["code"] == "invalid" and field in response.json["errors"], response.json
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = False
    response = client.post("/api/v1/webhooks", json={"url": receiver.url, "events": EVENTS}, headers=bearer(token))
    assert response.status_code == 422 and "private" in response.json["errors"]["url"][0]
    with app.app_context(), db.connection_context():
        assert WebhookEndpoint.select().count() == 0


def test_scope_guard(app, client, token, receiver):
    other = make_key(app, "tickets:read", name="crm").token  # same integration, no webhooks:manage
    made = create(client, token, receiver)
    for method, url in [("post", "/api/v1/webhooks"), ("get", "/api/v1/webhooks"),
                        ("get", f"/api/v1/webhooks/{made['id']}"), ("patch", f"/api/v1/webhooks/{made['id']}"),
                        ("delete", f"/api/v1/webhooks/{made['id']}"),
                        ("post", f"/api/v1/webhooks/{made['id']}/rotate-secret"),
                        ("get", f"/api/v1/webhooks/{made['id']}/deliveries")]:
        response = getattr(client, method)(url, json={"url": receiver.url, "events": EVENTS}, headers=bearer(other))
        assert response.status_code == 403, (method, url)
        assert "webhooks:manage" in response.json["message"]


def test_another_integrations_endpoints_are_404(app, client, token, receiver):
    made = create(client, token, receiver)
    open_ticket(app)
    with app.app_context(), db.connection_context():
        delivery_id = WebhookDelivery.get().id
    stranger = make_key(app, "webhooks:manage", name="helpdesk").token
    assert client.get("/api/v1/webhooks", headers=bearer(stranger)).json["items"] == []
    for method, url in [("get", f"/api/v1/webhooks/{made['id']}"), ("patch", f"/api/v1/webhooks/{made['id']}"),
                        ("delete", f"/api/v1/webhooks/{made['id']}"),
                        ("post", f"/api/v1/webhooks/{made['id']}/rotate-secret"),
                        ("get", f"/api/v1/webhooks/{made['id']}/deliveries"),
                        ("post", f"/api/v1/webhooks/deliveries/{delivery_id}/redeliver")]:
        response = getattr(client, method)(url, json={"active": False}, headers=bearer(stranger))
        assert response.status_code == 404, (method, url)
    with app.app_context(), db.connection_context():
        assert WebhookEndpoint.get_by_id(made["id"]).active
    assert len(receiver.requests) == 1


def test_no_csrf_token_needed_and_cookies_are_not_credentials(app, client, token, receiver):
    from crm_portal.testing import staff_login

    response = client.post("/api/v1/webhooks", json={"url": receiver.url, "events": EVENTS}, headers=bearer(token),
                           csrf=False)
    assert response.status_code == 201
    staff_login(client, "admin@example.com")
    response = client.post("/api/v1/webhooks", json={"url": receiver.url, "events": EVENTS}, csrf=False)
    assert response.status_code == 401


def test_patch_rotate_delete(app, client, token, receiver):
    made = create(client, token, receiver)
    url = f"/api/v1/webhooks/{made['id']}"
    response = client.patch(url, json={"events": ["ticket.comment_added"]}, headers=bearer(token))
    assert response.status_code == 200 and response.json["events"] == ["ticket.comment_added"]
    response = client.patch(url, json={"events": ["nope"]}, headers=bearer(token))
    assert response.status_code == 422 and "events" in response.json["errors"]
    with app.app_context(), db.connection_context():
        WebhookEndpoint.update(active=False, disabled_reason="410 Gone", failure_count=3).execute()
    response = client.patch(url, json={"active": True, "events": ["ticket.created"]}, headers=bearer(token))
    assert response.json["active"] and response.json["failure_count"] == 0 and response.json["disabled_reason"] is None
    rotated = client.post(f"{url}/rotate-secret", headers=bearer(token)).json
    assert rotated["secret"] != made["secret"]
    open_ticket(app)
    _path, headers, body = receiver.requests[-1]
    Webhook(rotated["secret"]).verify(body, headers)
    Webhook(made["secret"]).verify(body, headers)  # the old one, during the overlap
    assert client.delete(url, headers=bearer(token)).status_code == 204
    assert client.get(url, headers=bearer(token)).status_code == 404
    with app.app_context(), db.connection_context():
        assert WebhookDelivery.select().count() == 0


def test_deliveries_in_constant_queries_and_redeliver(app, client, token, receiver, queries):
    made = create(client, token, receiver, ["ticket.created"])
    url = f"/api/v1/webhooks/{made['id']}/deliveries?limit=100"
    open_ticket(app)

    def count() -> int:
        with queries:
            response = client.get(url, headers=bearer(token))
            assert response.status_code == 200
        return queries.count

    client.get(url, headers=bearer(token))  # last_used_at is written once a minute at most
    one = count()
    for i in range(5):
        open_ticket(app, title=f"Ticket {i}")
    assert count() == one
    items = client.get(url, headers=bearer(token)).json["items"]
    assert len(items) == 6 and items[0]["id"] > items[-1]["id"]
    assert items[0]["status"] == "delivered" and items[0]["attempts"] == 1
    page = client.get(f"/api/v1/webhooks/{made['id']}/deliveries?limit=2", headers=bearer(token)).json
    rest = client.get(f"/api/v1/webhooks/{made['id']}/deliveries?limit=100&before_id={page['next_cursor']}",
                      headers=bearer(token)).json
    assert [i["id"] for i in page["items"] + rest["items"]] == [i["id"] for i in items]
    before = len(receiver.requests)
    response = client.post(f"/api/v1/webhooks/deliveries/{items[-1]['id']}/redeliver", headers=bearer(token))
    assert response.status_code == 202
    assert len(receiver.requests) == before + 1
    assert receiver.requests[-1][1]["webhook-id"] == items[-1]["webhook_id"]


def test_redeliver_to_a_switched_off_endpoint_is_refused_in_the_callers_language(app, client, token, receiver):
    made = create(client, token, receiver, ["ticket.created"])
    open_ticket(app)
    with app.app_context(), db.connection_context():
        WebhookEndpoint.update(active=False).execute()
        delivery_id = WebhookDelivery.get().id
    response = client.post(f"/api/v1/webhooks/deliveries/{delivery_id}/redeliver", headers=bearer(token))
    assert response.status_code == 409 and response.json["code"] == "conflict"
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = False
    response = client.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["ticket.created"]},
                           headers=bearer(token, **{"Accept-Language": "it"}))
    assert response.status_code == 422 and "rete privata" in response.json["errors"]["url"][0]
    assert len(receiver.requests) == 1 and made["id"]


def test_openapi_lists_the_webhook_endpoints(app, client):
    spec = openapi(app, client)
    assert {"/api/v1/webhooks", "/api/v1/webhooks/{endpoint_id}", "/api/v1/webhooks/{endpoint_id}/rotate-secret",
            "/api/v1/webhooks/{endpoint_id}/deliveries",
            "/api/v1/webhooks/deliveries/{delivery_id}/redeliver"} <= set(spec["paths"])
    assert spec["paths"]["/api/v1/webhooks"]["post"]["security"] == [{"bearer": ["webhooks:manage"]}]


def test_events_need_the_read_scope_of_what_they_carry(app, client, token, receiver):
    """An event carries its record: a key may subscribe only to the events whose records it may
    read through the API (the token here has ``tickets:read``, not ``contacts:read``)."""
    response = client.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["contact.updated"]},
                           headers=bearer(token))
    assert response.status_code == 422 and "contacts:read" in response.json["errors"]["events"][0]
    made = create(client, token, receiver, events=["ticket.created"])
    patched = client.patch(f"/api/v1/webhooks/{made['id']}", json={"events": ["ticket.created", "company.updated"]},
                           headers=bearer(token))
    assert patched.status_code == 422 and "companies:read" in patched.json["errors"]["events"][0]
    with app.app_context(), db.connection_context():
        assert WebhookEndpoint.select().count() == 1
        assert WebhookEndpoint.get().events == "ticket.created"
