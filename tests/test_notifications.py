"""Notification emails: who receives what over a full ticket cycle, per-event preferences in "My
data", one email per change, no email about one's own action, amounts and wording in the
recipient's language."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from conftest import login, staff_login
from test_tickets import wizard_url

from crm_portal.db import db
from crm_portal.models import Contact, OutboxMessage, ProfileModule
from crm_portal.modules.tickets import workflow
from crm_portal.modules.tickets.models import Ticket


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
    url = wizard_url(client)
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


# --- one email per change, never about one's own action ---------------------------------------
def _contact(email: str) -> Contact:
    return Contact.get(Contact.email == email)


def _operator() -> workflow.Actor:
    from crm_portal.models import StaffUser

    return workflow.Actor.for_staff(StaffUser.get(StaffUser.email == "operatore@example.com"))


def _ticket_for(email: str, title: str = "Printer") -> Ticket:
    person = _contact(email)
    with db.atomic():
        return workflow.create_ticket(workflow.Actor.customer(person), person, title=title, description="d",
                                      type="problem")


def _last() -> int:
    from peewee import fn

    return OutboxMessage.select(fn.MAX(OutboxMessage.id)).scalar() or 0


def _mail_to(email: str, since: int) -> list[OutboxMessage]:
    return list(OutboxMessage.select().where((OutboxMessage.to_address == email) & (OutboxMessage.id > since))
                .order_by(OutboxMessage.id))


@pytest.fixture
def ctx(app, demo):
    with app.test_request_context(), db.connection_context():
        workflow.install_defaults()
        yield demo


def test_a_reply_that_changes_the_state_is_one_email(ctx):
    ticket = _ticket_for("anna@acme.example")
    start = _last()
    with db.atomic():  # what the operator's work page does with one form
        workflow.take_charge(ticket, _operator().staff)
        workflow.add_comment(ticket, _operator(), "Which printer do you use?", "public")
        workflow.change_state(ticket, "waiting_customer", _operator())
    [mail] = _mail_to("anna@acme.example", start)
    assert mail.template == "tickets_update" and mail.language == "it"
    assert "Which printer do you use?" in mail.body_text and "Which printer do you use?" in mail.body_html
    # From the first state to the last: "Aperto" → "Attesa cliente", not the step in between.
    assert '"Aperto" a "Attesa cliente"' in mail.body_text, mail.body_text
    assert mail.subject.startswith(f"[{ticket.number}]") and "risposta" in mail.subject.lower()
    assert mail.body_text.startswith("Buongiorno Anna,")


def test_no_email_about_ones_own_comment_reopening_or_close(ctx):
    ticket = _ticket_for("anna@acme.example")
    anna = workflow.Actor.customer(_contact("anna@acme.example"))
    with db.atomic():
        workflow.take_charge(ticket, _operator().staff)
        workflow.change_state(ticket, "in_progress", _operator())
        workflow.change_state(ticket, "resolved", _operator())
    start = _last()
    with db.atomic():
        workflow.reopen(ticket, anna, "Still broken")
    with db.atomic():
        workflow.add_comment(ticket, anna, "More details", "public")
    with db.atomic():
        workflow.change_state(ticket, "in_progress", _operator())
        workflow.change_state(ticket, "resolved", _operator())
    with db.atomic():
        workflow.close_by_customer(ticket, anna, 4)
    assert [m.template for m in _mail_to("anna@acme.example", start)] == ["tickets_update"]  # the operator's
    assert len(_mail_to("supporto@example.com", start) + _mail_to("operatore@example.com", start)) == 2


def test_no_email_about_ones_own_withdrawal_colleagues_who_follow_hear_of_it(ctx):
    Contact.update(notification_events='{"tickets.colleagues": true}').where(
        Contact.email == "anna@acme.example").execute()
    ticket = _ticket_for("bruno@acme.example", "Toner")
    with db.atomic():
        workflow.take_charge(ticket, _operator().staff)
    start = _last()
    with db.atomic():
        workflow.withdraw(ticket, workflow.Actor.customer(_contact("bruno@acme.example")), "The toner was empty.")
    assert Ticket.get_by_id(ticket.id).status == "closed"
    assert _mail_to("bruno@acme.example", start) == []
    [mail] = _mail_to("anna@acme.example", start)  # anna follows the requests she can see
    assert mail.subject.startswith(f"[{ticket.number}]") and '"Chiuso"' in mail.body_text, mail.body_text


# --- choices in "My data" --------------------------------------------------------------------------
def _checkboxes(html: str) -> dict[str, str]:
    """The notification checkboxes of a page: field name → the whole tag."""
    tags = re.findall(r'<input[^>]*type="checkbox"[^>]*>', html)
    return {re.search(r'name="([^"]+)"', tag).group(1): tag for tag in tags if 'name="notify-' in tag}


def test_my_data_offers_the_events_with_their_defaults_and_saves_choices(app, demo, client):
    login(client, "anna@acme.example")
    page = client.get("/me")
    assert page.status_code == 200 and 'data-testid="notification-form"' in page.text
    boxes = _checkboxes(page.text)
    assert "checked" in boxes["notify-event_tickets__reply"] and "checked" in boxes["notify-event_tickets__status"]
    assert "checked" not in boxes["notify-event_tickets__created"]
    assert "checked" not in boxes["notify-event_tickets__colleagues"]
    assert "Risposte dell'assistenza alle mie richieste" in page.text  # anna reads Italian

    # Only status changes, and colleagues' requests.
    saved = client.post("/me/notifications", data={"notify-event_tickets__status": "y",
                                                   "notify-event_tickets__colleagues": "y",
                                                   "notify-event_deadlines__reminder": "y"})
    assert saved.status_code == 302
    with app.app_context(), db.connection_context():
        stored = json.loads(_contact("anna@acme.example").notification_events)
    assert stored == {"tickets.colleagues": True, "tickets.reply": False}
    page = client.get("/me")
    boxes = _checkboxes(page.text)
    assert "checked" not in boxes["notify-event_tickets__reply"]
    assert "checked" in boxes["notify-event_tickets__colleagues"]

    with app.test_request_context(), db.connection_context():
        ticket = _ticket_for("anna@acme.example")
        start = _last()
        with db.atomic():
            workflow.take_charge(ticket, _operator().staff)
        with db.atomic():
            workflow.add_comment(ticket, _operator(), "A reply she chose not to get", "public")
        [mail] = _mail_to("anna@acme.example", start)
        assert "A reply she chose not to get" not in mail.body_text and "Attesa supporto" in mail.body_text


def test_choices_need_the_csrf_token(app, demo, client):
    login(client, "anna@acme.example")
    refused = client.post("/me/notifications", data={"notify-event_tickets__status": "y"}, csrf=False)
    assert refused.status_code == 400
    with app.app_context(), db.connection_context():
        assert _contact("anna@acme.example").notification_events is None


def test_notifications_off_means_none_but_account_emails_still_go(app, demo, client):
    with app.app_context(), db.connection_context():
        Contact.update(notify_by_email=False, notification_events='{"tickets.created": true}').where(
            Contact.email == "anna@acme.example").execute()
    with app.test_request_context(), db.connection_context():
        start = _last()
        ticket = _ticket_for("anna@acme.example")
        with db.atomic():
            workflow.take_charge(ticket, _operator().staff)
            workflow.add_comment(ticket, _operator(), "Hello", "public")
        assert _mail_to("anna@acme.example", start) == []
    login(client, "anna@acme.example")
    assert client.post("/me/password", data={"current_password": "demo", "password": "Another-pass-2031",
                                             "confirm": "Another-pass-2031"}).status_code == 302
    with app.app_context(), db.connection_context():
        [mail] = _mail_to("anna@acme.example", start)
    assert mail.template == "password-changed" and "Buongiorno Anna," in mail.body_text
    assert "Se non hai cambiato tu la password" in mail.body_text and "stato tu" not in mail.body_text


def test_colleagues_hear_only_of_requests_the_gate_shows_them(ctx):
    # anna (company scope) follows her colleagues' requests; so does bruno (own scope).
    Contact.update(notification_events='{"tickets.colleagues": true}').where(
        Contact.email.in_(["anna@acme.example", "bruno@acme.example"])).execute()
    brunos, annas = _ticket_for("bruno@acme.example", "Bruno's"), _ticket_for("anna@acme.example", "Anna's")
    start = _last()
    for ticket in (brunos, annas):
        with db.atomic():
            workflow.take_charge(ticket, _operator().staff)
            workflow.add_comment(ticket, _operator(), "On it", "public")
    to_anna, to_bruno = _mail_to("anna@acme.example", start), _mail_to("bruno@acme.example", start)
    # Each gets one email about their own ticket; anna one more about bruno's, which she can see;
    # bruno none about anna's, which his scope hides.
    assert sorted(m.subject.split("]")[0] for m in to_anna) == sorted([f"[{brunos.number}", f"[{annas.number}"])
    assert [m.subject.split("]")[0] for m in to_bruno] == [f"[{brunos.number}"]
    about_bruno = next(m for m in to_anna if brunos.number in m.subject)
    assert "Bruno Bianchi" in about_bruno.body_text and "Buongiorno Anna," in about_bruno.body_text


def test_an_undeclared_event_is_an_error(ctx):
    from crm_portal.api import notify_contact

    with pytest.raises(LookupError):
        notify_contact(_contact("anna@acme.example"), "tickets.replyy", "tickets_update")


# --- amounts ----------------------------------------------------------------------------------------
def test_amounts_in_the_recipients_format(app, demo, client):
    from decimal import Decimal

    from flask_babel import force_locale

    from crm_portal.api import format_money

    with app.test_request_context():
        with force_locale("it"):
            assert format_money(Decimal("2702.91"), "EUR") == "2.702,91\xa0€"
        with force_locale("en"):
            assert format_money(Decimal("2702.91"), "EUR") == "€2,702.91"
    from crm_portal.modules.quotes.models import Quote

    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        quote = Quote.get(Quote.number == "P-2025-001")
        start = last_outbox_id(app)
    assert client.post(f"/quotes/{quote.id}/accept", data={"confirm": "1"}).status_code == 302
    with app.app_context(), db.connection_context():
        [mail] = list(OutboxMessage.select().where(OutboxMessage.id > start))
        with app.test_request_context(), force_locale(mail.language):
            expected = format_money(quote.gross_total, quote.currency)
    assert "€" in expected and expected in mail.body_text and expected in mail.body_html
    assert "EUR" not in mail.body_text


def test_any_modules_declared_events_appear_for_those_who_see_the_module(app, demo, client, monkeypatch):
    """A module's events (a partner's as much as a built-in one's) show on "My data" as soon as it
    declares them, for contacts whose profile shows the module."""
    from crm_portal.api import NotificationEvent

    services = app.extensions["crm_portal"].modules["services"]
    monkeypatch.setattr(type(services), "notifications",
                        [NotificationEvent("services.maintenance", "Planned maintenance of my services",
                                           default=False)], raising=False)
    login(client, "bruno@acme.example")
    page = client.get("/me")
    assert "Planned maintenance of my services" in page.text
    assert "checked" not in _checkboxes(page.text)["notify-event_services__maintenance"]
    # Without the module in his profile, its events are not offered.
    with app.app_context(), db.connection_context():
        profile = _contact("bruno@acme.example").profile_id
        ProfileModule.delete().where((ProfileModule.profile == profile)
                                     & (ProfileModule.module == "services")).execute()
    assert "Planned maintenance of my services" not in client.get("/me").text


def test_a_contact_who_turned_reminders_off_gets_none(app, demo):
    from crm_portal.modules.deadlines.jobs import queue_due_reminders

    with app.test_request_context(), db.connection_context():
        Contact.update(notification_events='{"deadlines.reminder": false}').where(
            Contact.email == "bruno@acme.example").execute()
        start = _last()
        queue_due_reminders()
        recipients = {m.to_address for m in OutboxMessage.select().where(OutboxMessage.id > start)}
    assert "anna@acme.example" in recipients and "bruno@acme.example" not in recipients
