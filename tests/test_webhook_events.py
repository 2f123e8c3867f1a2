"""Every webhook event, from the paths that make the change: each delivery verified with the
independent ``standardwebhooks`` library, its data the record as the API shows it; one event per
record and transaction; nothing for a rolled-back change; nothing sent once the integration lost
the event's read scope."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from standardwebhooks import Webhook

from crm_portal import signals, webhook_events, webhooks
from crm_portal.db import db
from crm_portal.models import ApiKey, ChangeEntry, Company, Contact, Integration, WebhookDelivery
from crm_portal.rest.keys import all_scopes, create_key, revoke_key
from crm_portal.scoping import IntegrationPrincipal
from crm_portal.testing import login, staff_login


class Hooks:
    """An endpoint of the integration "crm" subscribed to ``events`` (all by default), and what
    its receiver got, verified."""

    def __init__(self, app: Any, receiver: Any, events: list[str] | None = None, scopes: list[str] | None = None):
        self.app, self.receiver = app, receiver
        with app.test_request_context(), db.connection_context():
            self.key = create_key("crm", scopes or all_scopes()).key
            chosen = events or sorted(webhook_events.catalogue())
            with db.atomic():
                self.endpoint = webhooks.create_endpoint(self.key.integration, receiver.url, chosen)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """(type, data) of every request received, each signature checked by standardwebhooks."""
        found = []
        for _path, headers, body in self.receiver.requests:
            payload = Webhook(self.endpoint.secret).verify(body, headers)
            found.append((payload["type"], payload["data"]))
        return found

    def types(self) -> list[str]:
        return [kind for kind, _data in self.events()]

    def clear(self) -> None:
        self.receiver.requests.clear()


@pytest.fixture
def hooks(app, demo, receiver) -> Hooks:
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = True  # the receiver is local
    return Hooks(app, receiver)


def _ticket(app, number: str | None = None):
    from crm_portal.modules.tickets.models import Ticket

    with app.app_context(), db.connection_context():
        query = Ticket.select().order_by(Ticket.id)
        return query.where(Ticket.number == number).get() if number else query.first()


# --- the catalogue ------------------------------------------------------------------------------

def test_every_module_has_created_and_updated_events_with_its_read_scope(app):
    with app.app_context():
        found = webhook_events.catalogue()
        modules = app.extensions["crm_portal"].modules
        assert set(found) == set(webhooks.EVENTS)  # the portal's own modules, all installed in tests
        for name, module in modules.items():
            if module.record is not None:
                for action in ("created", "updated"):
                    assert found[f"{webhook_events.prefix(module)}.{action}"] == f"{name}:read"
        assert found["ticket.closed"] == "tickets:read" and found["quote.accepted"] == "quotes:read"
        assert found["contact.change_requested"] == "contacts:read" and found["faq.created"] == "faq:read"


def test_a_partner_module_gets_events_named_after_it():
    from crm_portal.api import Module

    class Visits(Module):
        name = "visits"
        record = Contact  # any model: the catalogue only needs to know there are records

    class Pages(Module):
        name = "pages"  # no record: no events

    registry = SimpleNamespace(modules={"visits": Visits(), "pages": Pages()})
    assert webhook_events.catalogue(registry) == {"visits.created": "visits:read", "visits.updated": "visits:read"}


def test_partner_module_events_can_be_subscribed_only_with_its_scope(app, demo, client):
    from api_helpers import bearer, make_key

    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = True
    token = make_key(app, ["webhooks:manage", "tickets:read"]).token
    response = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["deadline.created"]},
                           headers=bearer(token))
    assert response.status_code == 422 and "deadlines:read" in response.get_json()["errors"]["events"][0]
    response = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["ticket.closed",
                                                                                               "ticket.updated"]},
                           headers=bearer(token))
    assert response.status_code == 201


# --- tickets ------------------------------------------------------------------------------------

def test_staff_assigning_planning_and_adding_hours_send_ticket_updated(app, hooks, client):
    from crm_portal.modules.tickets import workflow
    from crm_portal.modules.tickets.models import Ticket

    ticket = _ticket(app)
    from crm_portal.models import StaffUser

    with app.app_context(), db.connection_context():
        olga = StaffUser.get(StaffUser.email == "operatore@example.com")
        Ticket.update(status=workflow.PLANNED, planned_for=dt.date(2030, 1, 1), assignee=None).where(
            Ticket.id == ticket.id).execute()
    staff_login(client)
    assert client.post(f"/admin/tickets_queue/work/{ticket.id}/assign",
                       data={"assignee": str(olga.id)}).status_code == 302
    [(kind, data)] = hooks.events()
    assert (kind, data["id"], data["assignee_name"]) == ("ticket.updated", ticket.id, olga.name or olga.email)
    hooks.clear()
    assert client.post(f"/admin/tickets_queue/work/{ticket.id}/assign",
                       data={"assignee": str(olga.id)}).status_code == 302
    assert hooks.events() == []  # nothing changed, nothing sent
    response = client.post(f"/admin/tickets_queue/work/{ticket.id}/update", data={
        "expected_status": workflow.PLANNED, "planned_for": "2030-02-01", "hours": "1,5"})
    assert response.status_code == 302
    assert hooks.types() == ["ticket.updated"]  # one event for the date and the hours


def test_a_move_into_a_final_state_is_ticket_closed(app, hooks):
    from test_tickets import new_ticket, staff

    from crm_portal.modules.tickets import workflow

    with app.test_request_context(), db.connection_context():
        ticket = new_ticket()
        actor = workflow.Actor.for_staff(staff())
        with db.atomic():
            workflow.change_state(ticket, workflow.WAITING_SUPPORT, actor)
        with db.atomic():
            workflow.change_state(ticket, workflow.RESOLVED, actor)
        with db.atomic():
            workflow.change_state(ticket, workflow.CLOSED, workflow.Actor.system())
        other = new_ticket(title="Duplicate")
        with db.atomic():
            workflow.change_state(other, workflow.DISCARDED, actor)
    events = hooks.events()
    assert [k for k, _d in events] == [
        "ticket.created", "ticket.status_changed", "ticket.status_changed", "ticket.status_changed", "ticket.closed",
        "ticket.created", "ticket.status_changed", "ticket.closed"]
    closed = [d for k, d in events if k == "ticket.closed"]
    assert [(d["id"], d["status"], d["previous_status"]) for d in closed] == [
        (ticket.id, "closed", "resolved"), (other.id, "discarded", "open")]


def test_signals_of_other_paths_for_tickets_send_one_event(app, hooks):
    """An API write may send record-updated and ticket-updated for one change: one event."""
    from crm_portal.modules.tickets import signals as ticket_signals
    from crm_portal.modules.tickets import workflow

    ticket = _ticket(app)
    with app.test_request_context(), db.connection_context():
        module = app.extensions["crm_portal"].modules["tickets"]
        principal = IntegrationPrincipal(Integration.get(Integration.name == "crm"))
        with db.atomic():
            workflow.assign(ticket, None)
            ticket_signals.ticket_updated.send("tickets", ticket=ticket, changes={"assignee": (1, None)},
                                               actor=workflow.Actor.system())
            signals.record_updated.send("tickets", module=module, record=ticket, user=principal,
                                        changes={"assignee": (1, None)})
    [(kind, data)] = hooks.events()
    assert (kind, data["id"], data["assignee_name"]) == ("ticket.updated", ticket.id, None)


# --- contacts and companies ---------------------------------------------------------------------

def test_my_data_sends_contact_updated(app, hooks, client):
    login(client, "bruno@acme.example")
    assert client.post("/me", data={"phone": "+39 02 999", "language": "it"}).status_code == 302
    [(kind, data)] = hooks.events()
    assert (kind, data["email"], data["phone"]) == ("contact.updated", "bruno@acme.example", "+39 02 999")
    assert "password_hash" not in data


def test_a_change_request_sends_contact_change_requested(app, hooks, client):
    login(client, "bruno@acme.example")
    response = client.post("/me/request", data={"req-field": "role", "req-message": "Now I am the CFO"})
    assert response.status_code == 302
    events = dict(hooks.events())
    data = events["contact.change_requested"]
    assert data["email"] == "bruno@acme.example"
    assert data["change_request"] == {"field": "role", "message": "Now I am the CFO"}
    assert "ticket.created" in events  # the tickets module still takes the request over


def test_a_customer_administrator_inviting_and_changing_colleagues(app, hooks, client, demo):
    from crm_portal.models import Profile

    login(client, "anna@acme.example")
    with app.app_context(), db.connection_context():
        user_profile = Profile.get(Profile.name == "user").id
    response = client.post("/contacts/invite", data={"first_name": "Nuovo", "last_name": "Collega",
                                                     "email": "nuovo@acme.example", "profile": str(user_profile)})
    assert response.status_code == 302, response.text[:300]
    [(kind, data)] = hooks.events()
    assert (kind, data["email"]) == ("contact.created", "nuovo@acme.example")
    hooks.clear()
    bruno = demo["contacts"]["bruno"]
    assert client.post(f"/contacts/{bruno.id}/revoke").status_code == 302
    [(kind, data)] = hooks.events()
    assert (kind, data["id"], data["portal_access"]) == ("contact.updated", bruno.id, False)


def test_self_registration_sends_contact_created(app, hooks):
    from crm_portal.account import service

    with app.test_request_context(), db.connection_context(), db.atomic():
        contact, _mails = service.register({"first_name": "Marta", "last_name": "Blu", "email": "marta@acme.example",
                                            "vat_number": ""}, "a long enough passphrase 42")
    [(kind, data)] = hooks.events()
    assert (kind, data["id"], data["email"]) == ("contact.created", contact.id, "marta@acme.example")


def test_api_writes_of_contacts_and_companies_send_events(app, hooks):
    """The API's writes send record-created / record-updated with the module's name as sender."""
    with app.test_request_context(), db.connection_context():
        modules = app.extensions["crm_portal"].modules
        principal = IntegrationPrincipal(Integration.get(Integration.name == "crm"))
        with db.atomic():
            company = Company.create(name="Nuova S.r.l.")
            signals.record_created.send("companies", module=modules["companies"], record=company, user=principal)
        with db.atomic():
            contact = Contact.create(first_name="Ada", last_name="Neri", email="ada@nuova.example", company=company)
            signals.record_created.send("contacts", module=modules["contacts"], record=contact, user=principal)
        with db.atomic():
            company.city = "Torino"
            company.save()
            signals.record_updated.send("companies", module=modules["companies"], record=company, user=principal,
                                        changes={"city": (None, "Torino")})
    events = hooks.events()
    assert [(k, d["id"]) for k, d in events] == [("company.created", company.id), ("contact.created", contact.id),
                                                 ("company.updated", company.id)]
    assert events[2][1]["city"] == "Torino"


def test_created_then_changed_in_one_transaction_is_one_created_event(app, hooks):
    with app.test_request_context(), db.connection_context(), db.atomic():
        contact = Contact.create(first_name="Ugo", last_name="Primo", email="ugo@acme.example")
        signals.admin_record_changed.send(Contact, record=contact, action="created", staff=None)
        contact.last_name = "Secondo"
        contact.save()
        signals.admin_record_changed.send(Contact, record=contact, action="updated", staff=None)
    [(kind, data)] = hooks.events()
    assert (kind, data["last_name"]) == ("contact.created", "Secondo")


# --- quotes, documents, every other module ------------------------------------------------------

def test_quote_decisions_send_accepted_and_rejected(app, hooks, client):
    from crm_portal.modules.quotes.models import Quote

    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        first = Quote.get(Quote.number == "P-2025-001")
    assert client.post(f"/quotes/{first.id}/accept", data={"confirm": "1"}).status_code == 302
    events = dict(hooks.events())
    assert set(events) == {"quote.accepted", "quote.updated"}
    assert (events["quote.accepted"]["id"], events["quote.accepted"]["status"]) == (first.id, "accepted")
    hooks.clear()
    with app.app_context(), db.connection_context():
        Quote.update(status="sent", decided_by=None, decided_at=None).where(Quote.id == first.id).execute()
        second = Quote.get_by_id(first.id)
    assert client.post(f"/quotes/{second.id}/reject", data={"confirm": "1"}).status_code == 302
    events = dict(hooks.events())
    assert set(events) == {"quote.rejected", "quote.updated"}
    assert events["quote.rejected"]["status"] == "rejected"


def test_a_document_added_by_staff_in_the_admin_sends_document_created(app, hooks, client, demo):
    from test_documents import add_in_admin

    staff_login(client)
    add_in_admin(client, demo["companies"]["acme"])
    [(kind, data)] = hooks.events()
    assert (kind, data["title"]) == ("document.created", "Price list") and isinstance(data["id"], int)


def test_modules_without_own_signals_send_created_and_updated(app, hooks):
    """deadlines through record-created (a portal form, an API write); faq (named after the module:
    no event_name) through the admin."""
    from crm_portal.modules.deadlines.models import Deadline
    from crm_portal.modules.faq.models import Article

    with app.test_request_context(), db.connection_context():
        modules = app.extensions["crm_portal"].modules
        deadline = Deadline.select().first()
        article = Article.select().first()
        with db.atomic():
            signals.record_created.send("deadlines", module=modules["deadlines"], record=deadline, user=None)
        with db.atomic():
            signals.admin_record_changed.send(Article, record=article, action="updated", staff=None)
        with db.atomic():
            signals.admin_record_changed.send(Article, record=article, action="deleted", staff=None)
    assert [(k, d["id"]) for k, d in hooks.events()] == [("deadline.created", deadline.id),
                                                         ("faq.updated", article.id)]


# --- transactions and scopes --------------------------------------------------------------------

def test_a_rolled_back_change_sends_nothing_and_logs_nothing(app, hooks):
    class Abort(Exception):
        pass

    with app.test_request_context(), db.connection_context():
        before = ChangeEntry.select().count()
        with pytest.raises(Abort), db.atomic():
            contact = Contact.create(first_name="Ghost", last_name="Row", email="ghost@acme.example")
            signals.admin_record_changed.send(Contact, record=contact, action="created", staff=None)
            assert WebhookDelivery.select().count() == 1 and ChangeEntry.select().count() == before + 1
            raise Abort
        assert WebhookDelivery.select().count() == 0
        assert ChangeEntry.select().count() == before
    assert hooks.events() == []


def _contact_change(app) -> None:
    with app.test_request_context(), db.connection_context(), db.atomic():
        contact = Contact.get(Contact.email == "bruno@acme.example")
        signals.admin_record_changed.send(Contact, record=contact, action="updated", staff=None)


def _last_delivery(app) -> WebhookDelivery:
    with app.app_context(), db.connection_context():
        return WebhookDelivery.select().order_by(WebhookDelivery.id.desc()).get()


def test_revoking_the_scope_stops_delivery(app, hooks, frozen_clock):
    hooks.receiver.answers = [500]
    _contact_change(app)
    assert len(hooks.receiver.requests) == 1 and _last_delivery(app).status == "pending"
    with app.app_context(), db.connection_context():
        # The key loses contacts:read (a new key without it replaces the old one).
        revoke_key(ApiKey.get_by_id(hooks.key.id))
        create_key("crm", [s for s in all_scopes() if s != "contacts:read"])
        webhooks.deliver_due(frozen_clock.advance(seconds=5))
    delivery = _last_delivery(app)
    assert delivery.status == "failed" and "contacts:read" in delivery.last_error
    assert len(hooks.receiver.requests) == 1  # the retry was not sent
    hooks.clear()
    _contact_change(app)  # a new event is not sent either ...
    assert hooks.receiver.requests == [] and "contacts:read" in _last_delivery(app).last_error
    from test_tickets import new_ticket

    with app.test_request_context(), db.connection_context():
        new_ticket()  # ... while events the new key may read still are
    assert hooks.types() == ["ticket.created"]


@pytest.mark.parametrize("how", ["revoked", "expired", "integration-off"])
def test_no_usable_key_or_a_switched_off_integration_stops_delivery(app, hooks, frozen_clock, how):
    with app.app_context(), db.connection_context():
        key = ApiKey.get_by_id(hooks.key.id)
        if how == "revoked":
            revoke_key(key)
        elif how == "expired":
            ApiKey.update(expires_at=frozen_clock.now - dt.timedelta(seconds=1)).where(ApiKey.id == key.id).execute()
        else:
            Integration.update(active=False).where(Integration.id == key.integration_id).execute()
    _contact_change(app)
    assert hooks.receiver.requests == []
    delivery = _last_delivery(app)
    assert delivery.status == "failed" and delivery.last_error.startswith("not sent:")
    with app.app_context(), db.connection_context():
        assert webhooks.deliver_due(frozen_clock.advance(hours=1)) == 0  # not retried


def test_every_module_of_the_registry_sends_created_and_updated(app, hooks):
    """Whatever the module (partners' alike): record-created and record-updated of one of its
    records are delivered as ``<prefix>.created`` and ``<prefix>.updated``, the record as the API
    shows it; and both are in the change log."""
    from crm_portal.auth import PortalUser

    expected = []
    with app.test_request_context(), db.connection_context():
        user = PortalUser(Contact.get(Contact.email == "bruno@acme.example"))
        for name, module in app.extensions["crm_portal"].modules.items():
            if module.record is None:
                continue
            row = module.record.select().order_by(module.record._meta.primary_key).first()
            if row is None:
                continue
            with db.atomic():
                signals.record_created.send(name, module=module, record=row, user=user)
            with db.atomic():
                signals.record_updated.send(name, module=module, record=row, user=user, changes={})
            prefix = webhook_events.prefix(module)
            expected += [(f"{prefix}.created", row.get_id()), (f"{prefix}.updated", row.get_id())]
        logged = [(r.type, r.record_id) for r in ChangeEntry.select().order_by(ChangeEntry.id.desc())
                  .limit(len(expected))]
    assert len(expected) >= 2 * 8
    assert [(kind, data["id"]) for kind, data in hooks.events()] == expected
    assert len(logged) == len(expected)
