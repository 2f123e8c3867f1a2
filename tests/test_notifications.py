"""Notification emails: who receives what over a full ticket cycle, per-event preferences in "My
data", one email per change, no email about one's own action, amounts and wording in the
recipient's language."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from conftest import login, staff_login

from crm_portal.db import db
from crm_portal.models import Contact, OutboxMessage
from crm_portal.modules.tickets import workflow
from crm_portal.modules.tickets.models import Ticket


def _wizard_form(client) -> str:
    """The URL of the ticket form, through the wizard's service steps when the services module is on."""
    url = "/tickets/new"
    for _ in range(3):
        page = client.get(url)
        assert page.status_code == 200
        if 'data-testid="ticket-form"' in page.text:
            return url
        links = re.findall(r'href="(/tickets/new\?[^"]+)"', page.text)
        assert links, "wizard step without choices"
        url = links[0].replace("&amp;", "&")
    raise AssertionError("no ticket form")


def received(app, since: int) -> Counter[str]:
    """Emails queued after outbox id ``since``, counted by recipient."""
    with app.app_context(), db.connection_context():
        rows = OutboxMessage.select(OutboxMessage.to_address).where(OutboxMessage.id > since)
        return Counter(row.to_address for row in rows)


def last_outbox_id(app) -> int:
    with app.app_context(), db.connection_context():
        row = OutboxMessage.select().order_by(OutboxMessage.id.desc()).first()
        return row.id if row else 0


def full_cycle(app, customer: str = "anna@acme.example") -> Ticket:
    """A ticket's whole life through the real views: the customer opens it; the operator takes it
    and replies while asking for information (one form); the customer answers; the operator moves
    it on and resolves it; the customer says it is not resolved; the operator resolves it again
    after another reply; the customer closes it with a rating."""
    client, operator = app.test_client(), app.test_client()
    login(client, customer)
    staff_login(operator, "operatore@example.com")
    url = _wizard_form(client)
    created = client.post(url, data={"title": "Payslips not printing", "description": "Blank preview.",
                                     "type": "problem", "category": "1", "priority": "medium",
                                     "severity": "non_blocking"})
    assert created.status_code == 302, created.text[:1000]
    with app.app_context(), db.connection_context():
        ticket = Ticket.get(Ticket.title == "Payslips not printing")
    work = f"/admin/tickets_queue/work/{ticket.id}"

    def operator_update(expected: str, **data: str) -> None:
        response = operator.post(f"{work}/update", data={"expected_status": expected, **data})
        assert response.status_code == 302
        with app.app_context(), db.connection_context():
            assert Ticket.get_by_id(ticket.id).status == data.get("status", expected)

    assert operator.post(f"{work}/take").status_code == 302
    operator_update("waiting_support", body="Which printer do you use?", kind="public", status="waiting_customer")
    assert client.post(f"/tickets/{ticket.id}/comment", data={"body": "The office laser."}).status_code == 302
    operator_update("waiting_support", status="in_progress")
    operator_update("in_progress", body="Driver updated.", kind="public", status="resolved")
    assert client.post(f"/tickets/{ticket.id}/reopen", data={"body": "Still blank."}).status_code == 302
    operator_update("waiting_support", body="Template fixed too.", kind="public", status="in_progress")
    operator_update("in_progress", status="resolved")
    assert client.post(f"/tickets/{ticket.id}/close", data={"rating": "5"}).status_code == 302
    with app.app_context(), db.connection_context():
        ticket = Ticket.get_by_id(ticket.id)
    assert ticket.status == "closed"
    return ticket


def test_a_full_ticket_cycle_sends_one_email_per_news(app, demo):
    """What the customer receives with the default preferences: the taking in charge, the
    operator's three replies (each with its state change: one email) and two more state changes;
    nothing about her own comment, reopening or close, and nothing twice."""
    start = last_outbox_id(app)
    ticket = full_cycle(app)
    counts = received(app, start)
    assert counts["anna@acme.example"] == 6, counts
    assert counts["bruno@acme.example"] == 0  # a colleague, not told by default
    # Support hears of the customer's comment and of the reopening.
    assert counts["supporto@example.com"] + counts["operatore@example.com"] == 2, counts
    with app.app_context(), db.connection_context():
        subjects = [m.subject for m in OutboxMessage.select().where(
            (OutboxMessage.id > start) & (OutboxMessage.to_address == "anna@acme.example")).order_by(OutboxMessage.id)]
    assert all(f"[{ticket.number}]" in s for s in subjects), subjects
