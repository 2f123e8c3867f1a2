"""Signed webhooks: Standard Webhooks signatures checked by an independent library, deliveries written
in the change's transaction, retries with back-off, 410 and repeated failures switching an endpoint
off (with an email to the administrators), private targets refused, redirects not followed."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from flask import current_app
from standardwebhooks import Webhook
from test_tickets import new_ticket, reset_tickets, staff

from crm_portal import webhooks
from crm_portal.db import db
from crm_portal.models import Integration, OutboxMessage, WebhookDelivery, WebhookEndpoint
from crm_portal.modules.tickets import workflow
from crm_portal.rest.keys import all_scopes, create_key


@pytest.fixture
def ctx(app, demo):
    """A request context with a connection, private targets allowed (the receiver is local)."""
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = True
    with app.test_request_context(), db.connection_context():
        reset_tickets()
        yield demo


def endpoint_for(url: str, events: tuple[str, ...] = webhooks.EVENTS) -> WebhookEndpoint:
    """An endpoint of the integration "crm", whose key reads everything (deliveries need the scope)."""
    integration = Integration.get_or_none(name="crm")
    if integration is None:
        integration = create_key("crm", all_scopes()).key.integration
    with db.atomic():
        return webhooks.create_endpoint(integration, url, events)


def deliveries() -> list[WebhookDelivery]:
    return list(WebhookDelivery.select().order_by(WebhookDelivery.id))


def test_ticket_created_is_signed_and_verified_by_standardwebhooks(ctx, receiver):
    endpoint = endpoint_for(receiver.url)
    ticket = new_ticket()
    assert len(receiver.requests) == 1
    path, headers, body = receiver.requests[0]
    assert path == "/hooks"
    # The independent implementation accepts the signature of the exact bytes received ...
    payload = Webhook(endpoint.secret).verify(body, headers)
    assert payload["type"] == "ticket.created"
    assert payload["data"]["id"] == ticket.id
    assert payload["data"]["title"] == "Printer broken"
    # ... and refuses them under another secret, or once a byte changed.
    with pytest.raises(Exception, match="(?i)signature"):
        Webhook(webhooks.new_secret()).verify(body, headers)
    with pytest.raises(Exception, match="(?i)signature"):
        Webhook(endpoint.secret).verify(body.replace(b"Printer", b"Scanner"), headers)
    (delivery,) = deliveries()
    assert bytes(delivery.payload) == body
    assert headers["webhook-id"] == delivery.webhook_id
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)


def test_status_change_and_comment_events(ctx, receiver):
    endpoint = endpoint_for(receiver.url, ("ticket.status_changed", "ticket.comment_added"))
    ticket = new_ticket()
    assert receiver.requests == []  # not subscribed to ticket.created
    with db.atomic():
        workflow.add_comment(ticket, workflow.Actor.for_staff(staff()), "On its way.")
    types = [json.loads(body)["type"] for _p, _h, body in receiver.requests]
    assert "ticket.comment_added" in types
    for _path, headers, body in receiver.requests:
        payload = Webhook(endpoint.secret).verify(body, headers)
        assert payload["data"]["id"] == ticket.id
        if payload["type"] == "ticket.comment_added":
            assert payload["data"]["comment"]["body"] == "On its way."
        else:
            assert payload["data"]["previous_status"] != payload["data"]["status"]


def test_rolled_back_change_sends_nothing(ctx, receiver):
    endpoint_for(receiver.url)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), db.atomic():
        new_ticket()
        assert len(deliveries()) == 1  # written in the change's transaction ...
        raise Abort
    assert deliveries() == []  # ... and gone with it
    assert receiver.requests == []


def test_500_500_200_is_three_attempts_with_back_off(ctx, receiver, frozen_clock):
    endpoint_for(receiver.url)
    receiver.answers = [500, 500]
    new_ticket()
    (delivery,) = deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, 500)
    assert webhooks.deliver_due(frozen_clock.now + dt.timedelta(seconds=4)) == 0  # not due yet
    assert webhooks.deliver_due(frozen_clock.advance(seconds=5)) == 1
    delivery = WebhookDelivery.get_by_id(delivery.id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 2, "HTTP 500")
    assert webhooks.deliver_due(frozen_clock.advance(minutes=4)) == 0
    assert webhooks.deliver_due(frozen_clock.advance(minutes=1)) == 1
    delivery = WebhookDelivery.get_by_id(delivery.id)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 3, 200)
    assert delivery.delivered_at is not None
    assert len(receiver.requests) == 3
    assert len({headers["webhook-id"] for _p, headers, _b in receiver.requests}) == 1  # one message, retried
    assert WebhookEndpoint.get().failure_count == 0


def test_gives_up_after_the_last_retry(ctx, receiver, frozen_clock):
    current_app.config["WEBHOOK_DISABLE_AFTER_FAILURES"] = 100
    endpoint_for(receiver.url)
    receiver.answers = [503] * 20
    new_ticket()
    for _ in webhooks.RETRY_DELAYS:
        webhooks.deliver_due(frozen_clock.advance(hours=10))
    (delivery,) = deliveries()
    assert (delivery.status, delivery.attempts) == ("failed", len(webhooks.RETRY_DELAYS) + 1)
    assert webhooks.deliver_due(frozen_clock.advance(days=2)) == 0


def test_410_disables_the_endpoint_and_emails_the_admins(ctx, receiver):
    endpoint = endpoint_for(receiver.url)
    receiver.answers = [410]
    new_ticket()
    endpoint = WebhookEndpoint.get_by_id(endpoint.id)
    assert not endpoint.active
    assert "410" in endpoint.disabled_reason
    assert deliveries()[0].status == "failed"
    mails = list(OutboxMessage.select().where(OutboxMessage.template == "webhook-disabled"))
    assert mails and all(receiver.url in m.body_text for m in mails)
    new_ticket(title="Another")
    assert len(receiver.requests) == 1 and len(deliveries()) == 1  # nothing more for it


def test_consecutive_failures_disable_the_endpoint(ctx, receiver, frozen_clock):
    current_app.config["WEBHOOK_DISABLE_AFTER_FAILURES"] = 2
    endpoint = endpoint_for(receiver.url)
    receiver.answers = [500, 500, 500]
    new_ticket()
    assert WebhookEndpoint.get_by_id(endpoint.id).active
    webhooks.deliver_due(frozen_clock.advance(seconds=5))
    endpoint = WebhookEndpoint.get_by_id(endpoint.id)
    assert not endpoint.active and endpoint.failure_count == 2
    assert OutboxMessage.select().where(OutboxMessage.template == "webhook-disabled").exists()
    assert webhooks.deliver_due(frozen_clock.advance(minutes=5)) == 1
    assert deliveries()[0].status == "failed"
    assert len(receiver.requests) == 2  # a disabled endpoint is not called again


def test_the_admin_email_is_in_italian_for_an_italian_admin(ctx, receiver):
    from crm_portal.models import StaffUser

    StaffUser.update(language="it").where(StaffUser.role == "admin").execute()
    endpoint_for(receiver.url)
    receiver.answers = [410]
    new_ticket()
    mail = OutboxMessage.select().where(OutboxMessage.template == "webhook-disabled").first()
    assert mail.subject.startswith("Endpoint webhook disattivato")


def test_private_addresses_are_refused_at_creation_and_at_send_time(ctx, receiver):
    app = current_app._get_current_object()
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = False
    for url in (receiver.url, "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x",
                "http://localhost/x", "http://0.0.0.0/x", "http://[::ffff:127.0.0.1]/x"):
        with pytest.raises(webhooks.WebhookRefused, match="private"):
            endpoint_for(url)
    assert WebhookEndpoint.select().count() == 0
    # Allowed when created, refused when it is time to send: nothing reaches the address.
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = True
    endpoint_for(receiver.url)
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = False
    new_ticket()
    (delivery,) = deliveries()
    assert delivery.status == "pending" and "private" in delivery.last_error
    assert receiver.requests == []


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.1", "100.64.0.1", "169.254.169.254", "192.0.0.8", "192.0.2.1", "198.18.0.1",
    "224.0.0.1", "0.0.0.0", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::127.0.0.1", "2002:7f00:1::", "2002:a00:1::1", "64:ff9b::7f00:1", "64:ff9b::a00:1",
    "64:ff9b:1::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:db8::1"])
def test_only_globally_routable_addresses_are_allowed(address):
    """IPv4 addresses carried inside IPv6 forms (mapped, compatible, 6to4, NAT64, Teredo) are
    checked too: 2002:7f00:1:: is 127.0.0.1 through a 6to4 relay."""
    assert not webhooks._allowed_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2a00:1450:4001:80b::200e",
                                     "2002:5db8:d70e::1", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address):
    assert webhooks._allowed_address(address)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http://user:pw@example.com/", "not a url",
                                 "http:///nohost", "http://example.com:99999/"])
def test_bad_urls_are_refused(ctx, url):
    with pytest.raises(webhooks.WebhookRefused):
        endpoint_for(url)


def test_unknown_events_are_refused(ctx, receiver):
    with pytest.raises(webhooks.WebhookRefused, match="ticket.exploded"):
        endpoint_for(receiver.url, ("ticket.created", "ticket.exploded"))
    with pytest.raises(webhooks.WebhookRefused):
        endpoint_for(receiver.url, ())


def test_redirects_are_not_followed(ctx, receiver):
    endpoint_for(receiver.url)
    receiver.answers = [302]
    new_ticket()
    assert [path for path, _h, _b in receiver.requests] == ["/hooks"]
    (delivery,) = deliveries()
    assert (delivery.status, delivery.last_status) == ("pending", 302)


def test_rotated_secret_signs_beside_the_old_one_during_the_overlap(ctx, receiver, frozen_clock):
    endpoint = endpoint_for(receiver.url)
    old = endpoint.secret
    with db.atomic():
        new = webhooks.rotate_secret(endpoint)
    new_ticket()
    _path, headers, body = receiver.requests[-1]
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    frozen_clock.advance(hours=25)
    new_ticket(title="After the overlap")
    _path, headers, body = receiver.requests[-1]
    assert len(headers["webhook-signature"].split()) == 1
    assert webhooks.sign(new, headers["webhook-id"], int(headers["webhook-timestamp"]), body) == \
        headers["webhook-signature"]


def test_redeliver_sends_the_same_message_again(ctx, receiver):
    endpoint_for(receiver.url)
    new_ticket()
    (delivery,) = deliveries()
    with db.atomic():
        webhooks.redeliver(delivery)
    assert len(receiver.requests) == 2
    assert receiver.requests[0][2] == receiver.requests[1][2]
    assert receiver.requests[0][1]["webhook-id"] == receiver.requests[1][1]["webhook-id"]
    assert WebhookDelivery.get_by_id(delivery.id).status == "delivered"


def test_contact_and_company_events_from_the_admin(ctx, receiver):
    from crm_portal import signals
    from crm_portal.models import Company, Contact

    endpoint = endpoint_for(receiver.url, ("contact.created", "contact.updated", "company.updated"))
    with db.atomic():
        company = Company.get(Company.name.contains("Acme"))
        company.name = "Acme Renamed"
        company.save()
        signals.admin_record_changed.send(Company, record=company, action="updated", staff=None)
        contact = Contact.create(first_name="Dora", last_name="Nuova", email="dora@acme.example", company=company,
                                 password_hash="secret-hash")
        signals.admin_record_changed.send(Contact, record=contact, action="created", staff=None)
        signals.admin_record_changed.send(Company, record=company, action="created", staff=None)  # not subscribed
    with db.atomic():
        signals.admin_record_changed.send(Contact, record=contact, action="updated", staff=None)
    events = [Webhook(endpoint.secret).verify(body, headers) for _p, headers, body in receiver.requests]
    assert [e["type"] for e in events] == ["company.updated", "contact.created", "contact.updated"]
    assert events[0]["data"]["id"] == company.id and events[0]["data"]["name"] == "Acme Renamed"
    assert events[1]["data"]["email"] == "dora@acme.example"
    assert all("secret-hash" not in body.decode() for _p, _h, body in receiver.requests)


def test_the_connection_goes_to_the_checked_address_whatever_dns_answers_next(ctx, receiver, monkeypatch):
    """DNS rebinding: the host name resolves to an allowed address when checked and to the private
    receiver a moment later; the delivery connects to the address that was checked, so the private
    receiver never gets the request."""
    import socket

    app = current_app._get_current_object()
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = False
    monkeypatch.setattr(webhooks, "_allowed_address", lambda address: address == "127.0.0.2")
    answers = iter(["127.0.0.2"])  # the check's answer; every later lookup gets the receiver's address
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "hooks.example":
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(OSError):  # nothing listens on 127.0.0.2 at the receiver's port
        webhooks.post(f"http://hooks.example:{receiver.port}/hooks", b"{}", {}, timeout=2)
    assert receiver.requests == []
