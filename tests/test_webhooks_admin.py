"""Webhooks in the admin: endpoints and the delivery log without secrets or bodies, redelivery,
an endpoint switched on again with a fresh start, a fixed number of queries, operators kept out."""
from __future__ import annotations

import pytest

from crm_portal import webhooks
from crm_portal.db import db
from crm_portal.models import StaffUser, WebhookDelivery, WebhookEndpoint
from crm_portal.rest.keys import all_scopes, create_key
from crm_portal.testing import staff_login


@pytest.fixture
def endpoint(app, demo, receiver):
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = True
    with app.test_request_context(), db.connection_context():
        integration = create_key("crm", all_scopes()).key.integration  # deliveries need the read scope
        return webhooks.create_endpoint(integration, receiver.url, ["ticket.created"])


def open_tickets(app, count: int = 1) -> None:
    from test_tickets import new_ticket

    with app.test_request_context(), db.connection_context():
        for i in range(count):
            new_ticket(title=f"Ticket {i}")


def test_lists_show_states_and_errors_never_secrets_or_bodies(app, client, endpoint, receiver):
    receiver.answers = [500]
    open_tickets(app)
    staff_login(client)
    endpoints = client.get("/admin/core_webhook_endpoint/").text
    assert receiver.url in endpoints and endpoint.secret not in endpoints
    details = client.get(f"/admin/core_webhook_endpoint/details/?id={endpoint.id}").text
    assert endpoint.secret.removeprefix("whsec_") not in details
    log = client.get("/admin/core_webhook_delivery/").text
    assert "HTTP 500" in log and "ticket.created" in log and "Printer" not in log and "Ticket 0" not in log


def test_redeliver_action(app, client, endpoint, receiver):
    open_tickets(app)
    with app.app_context(), db.connection_context():
        delivery = WebhookDelivery.get()
    staff_login(client)
    response = client.post("/admin/core_webhook_delivery/action/",
                           data={"action": "redeliver", "rowid": [str(delivery.id)]})
    assert response.status_code == 302
    assert len(receiver.requests) == 2 and receiver.requests[0][2] == receiver.requests[1][2]


def test_switching_an_endpoint_on_again_clears_its_failures(app, client, endpoint):
    with app.app_context(), db.connection_context():
        WebhookEndpoint.update(active=False, failure_count=15, disabled_reason="410 Gone").execute()
    staff_login(client)
    response = client.post(f"/admin/core_webhook_endpoint/edit/?id={endpoint.id}", data={"active": "y"})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        saved = WebhookEndpoint.get_by_id(endpoint.id)
    assert (saved.active, saved.failure_count, saved.disabled_reason) == (True, 0, None)
    assert saved.secret == endpoint.secret and saved.url == endpoint.url


def test_delivery_log_in_constant_queries(app, client, endpoint, queries):
    staff_login(client)
    open_tickets(app)

    def count() -> int:
        with queries:
            assert client.get("/admin/core_webhook_delivery/").status_code == 200
        return queries.count

    client.get("/admin/core_webhook_delivery/")
    one = count()
    open_tickets(app, 8)
    assert count() == one


def test_operators_are_kept_out(app, client, endpoint):
    with app.app_context(), db.connection_context():
        operator = StaffUser.select().where(StaffUser.role == "operator").first()
    staff_login(client, operator.email)
    for url in ("/admin/core_webhook_endpoint/", "/admin/core_webhook_delivery/"):
        response = client.get(url)
        assert response.status_code in (302, 403) or endpoint.url not in response.text


def test_a_company_changed_in_the_admin_sends_company_updated(app, client, demo, receiver):
    import json

    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = True
    with app.test_request_context(), db.connection_context():
        webhooks.create_endpoint(create_key("crm", all_scopes()).key.integration, receiver.url, ["company.updated"])
    acme = demo["companies"]["acme"]
    staff_login(client)
    response = client.post(f"/admin/core_company/edit/?id={acme.id}", data={"name": "Acme Renamed"})
    assert response.status_code == 302
    (request,) = receiver.requests
    event = json.loads(request[2])
    assert (event["type"], event["data"]["id"], event["data"]["name"]) == ("company.updated", acme.id, "Acme Renamed")
