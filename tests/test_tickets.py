"""Tickets: workflow, numbering, auto-close, notifications, customer views and the operator side."""
from __future__ import annotations

import datetime as dt
import io
import re
import threading

import pytest
from conftest import PG_URL, login, make_app, staff_login

from crm_portal.db import db
from crm_portal.models import Contact, OutboxMessage, StaffUser
from crm_portal.modules.tickets import workflow
from crm_portal.modules.tickets.models import (
    Ticket,
    TicketAttachment,
    TicketComment,
    TicketCounter,
    TicketHistory,
    TicketState,
    TicketTransition,
)

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def reset_tickets() -> None:
    """Remove the demo tickets and queued email: numbering starts again at TT1."""
    workflow.install_defaults()
    Ticket.delete().execute()
    TicketCounter.update(value=0).execute()
    OutboxMessage.delete().execute()


@pytest.fixture
def ctx(app, demo):
    """A request context with a connection, the default workflow and no tickets yet."""
    with app.test_request_context(), db.connection_context():
        reset_tickets()
        yield demo


def contact(email: str) -> Contact:
    return Contact.get(Contact.email == email)


def staff(email: str = "operatore@example.com") -> StaffUser:
    return StaffUser.get(StaffUser.email == email)


def new_ticket(email: str = "bruno@acme.example", type_: str = "question", title: str = "Printer broken") -> Ticket:
    person = contact(email)
    with db.atomic():
        return workflow.create_ticket(workflow.Actor.customer(person), person, title=title,
                                      description="It does not print.", type=type_)


def outbox(to: str | None = None, template: str | None = None) -> list[OutboxMessage]:
    query = OutboxMessage.select().order_by(OutboxMessage.id)
    if to:
        query = query.where(OutboxMessage.to_address == to)
    if template:
        query = query.where(OutboxMessage.template == template)
    return list(query)


def wizard_url(client, service_index: int = 0) -> str:
    """Walk the wizard's service steps (present when the services module is) to the form's URL."""
    url = "/tickets/new"
    for _ in range(2):
        page = client.get(url)
        assert page.status_code == 200
        if 'data-testid="ticket-form"' in page.text:
            return url
        links = re.findall(r'href="(/tickets/new\?[^"]+)"', page.text)
        assert links, "wizard step without choices"
        url = links[service_index].replace("&amp;", "&")
    assert 'data-testid="ticket-form"' in client.get(url).text
    return url


def form_data(**extra):
    data = {"title": "Cannot print invoices", "description": "The print preview stays blank.", "type": "problem",
            "category": "1", "priority": "urgent", "severity": "blocking"}
    data.update(extra)
    return data


# --- workflow -----------------------------------------------------------------------------------
def test_defaults_are_idempotent_and_bilingual(ctx):
    assert workflow.install_defaults() == []
    states = {s.key: s for s in TicketState.select()}
    assert len(states) == 10
    assert (states["waiting_dev"].label_en, states["waiting_dev"].label_it) == ("Waiting for development",
                                                                               "Attesa programmazione")
    assert states["closed"].final and states["discarded"].final and not states["resolved"].final
    assert states["planned"].needs_date
    assert TicketCounter.select().count() == 1


def test_question_workflow(ctx):
    ticket = new_ticket()
    assert (ticket.number, ticket.status) == ("TT1", "open")
    op = workflow.Actor.for_staff(staff())
    customer = workflow.Actor.customer(contact("bruno@acme.example"))
    assert workflow.allowed_targets(ticket, "customer") == ["closed"]  # withdrawing: the only customer move
    with db.atomic():
        workflow.take_charge(ticket, staff())
    assert ticket.status == "waiting_support" and ticket.assignee_name == "Olga Operatrice" and ticket.taken_at
    # A question is answered directly; problems and requests need the longer path.
    assert "resolved" in workflow.allowed_targets(ticket, "staff")
    assert "in_progress" not in workflow.allowed_targets(ticket, "staff")
    with db.atomic():
        workflow.add_comment(ticket, op, "Which version?", "public")
        workflow.change_state(ticket, "waiting_customer", op)
    with db.atomic():
        workflow.add_comment(ticket, customer, "Version 12.", "public")
    assert ticket.status == "waiting_support"  # the customer's reply sends it back to support
    with db.atomic():
        workflow.change_state(ticket, "resolved", op)
    assert ticket.resolved_at is not None
    with db.atomic():
        workflow.close_by_customer(ticket, customer, 4, "Thanks")
    assert ticket.status == "closed" and ticket.rating == 4 and ticket.closed_at
    steps = [(h.from_state, h.to_state, h.actor_type) for h in
             TicketHistory.select().where(TicketHistory.ticket == ticket.id).order_by(TicketHistory.id)]
    assert steps == [(None, "open", "customer"), ("open", "waiting_support", "staff"),
                     ("waiting_support", "waiting_customer", "staff"),
                     ("waiting_customer", "waiting_support", "customer"),
                     ("waiting_support", "resolved", "staff"), ("resolved", "closed", "customer")]
    # Closed: no more comments, attachments or changes from the customer.
    with pytest.raises(workflow.TransitionRefused):
        with db.atomic():
            workflow.add_comment(ticket, customer, "one more thing", "public")
    assert TicketComment.select().where(TicketComment.ticket == ticket.id).count() == 2


def test_problem_workflow_and_refused_transitions(ctx):
    ticket = new_ticket(type_="problem")
    op = workflow.Actor.for_staff(staff())
    before = TicketHistory.select().count()
    for target in ("resolved", "closed", "in_progress"):
        with pytest.raises(workflow.TransitionRefused):
            with db.atomic():
                workflow.change_state(ticket, target, op)
    assert Ticket.get_by_id(ticket.id).status == "open" and TicketHistory.select().count() == before
    with db.atomic():
        workflow.take_charge(ticket, staff())
    assert "resolved" not in workflow.allowed_targets(ticket, "staff")
    assert {"in_progress", "waiting_dev", "waiting_customer"} <= set(workflow.allowed_targets(ticket, "staff"))
    with db.atomic():
        workflow.change_state(ticket, "in_progress", op)
    with pytest.raises(workflow.TransitionRefused):  # Planned needs a date
        with db.atomic():
            workflow.change_state(ticket, "planned", op)
    with db.atomic():
        workflow.change_state(ticket, "planned", op, planned_for=dt.date(2030, 1, 15))
        workflow.change_state(ticket, "resolved", op)
    customer = workflow.Actor.customer(contact("bruno@acme.example"))
    with db.atomic():  # "not resolved": the customer's comment reopens it
        workflow.add_comment(ticket, customer, "Still broken", "public")
    assert ticket.status == "waiting_support" and ticket.resolved_at is None
    # Administrators change the workflow in tables: a removed transition is refused at once.
    TicketTransition.delete().where(TicketTransition.actor == "staff").execute()
    workflow._forget_cache()
    with pytest.raises(workflow.TransitionRefused):
        with db.atomic():
            workflow.change_state(ticket, "in_progress", op)


def test_private_and_internal_notes_are_kept_apart(ctx):
    ticket = new_ticket()
    customer = workflow.Actor.customer(contact("bruno@acme.example"))
    op = workflow.Actor.for_staff(staff())
    with pytest.raises(ValueError):
        workflow.add_comment(ticket, customer, "x", "internal")
    with pytest.raises(ValueError):
        workflow.add_comment(ticket, op, "x", "private")
    with db.atomic():
        workflow.add_comment(ticket, op, "Customer seems confused", "internal")
    assert Ticket.get_by_id(ticket.id).public_comments == 0
    # No email carries an internal note.
    assert not [m for m in outbox() if "confused" in m.body_text or "confused" in (m.body_html or "")]


# --- numbering ----------------------------------------------------------------------------------
def test_concurrent_creation_gives_consecutive_unique_numbers(app, demo):
    with app.app_context(), db.connection_context():
        reset_tickets()
        bruno_id = contact("bruno@acme.example").id
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def worker(i: int) -> None:
        try:
            with app.app_context(), db.connection_context():
                person = Contact.get_by_id(bruno_id)
                barrier.wait(timeout=30)
                with db.atomic():
                    workflow.create_ticket(workflow.Actor.customer(person), person, title=f"T{i}", description="d")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    with app.app_context(), db.connection_context():
        seqs = sorted(s for (s,) in Ticket.select(Ticket.seq).tuples())
        numbers = {n for (n,) in Ticket.select(Ticket.number).tuples()}
    assert seqs == list(range(1, 51))
    assert numbers == {f"TT{i}" for i in range(1, 51)}


def test_a_rolled_back_creation_gives_its_number_back(ctx):
    person = contact("bruno@acme.example")
    with pytest.raises(RuntimeError):
        with db.atomic():
            workflow.create_ticket(workflow.Actor.customer(person), person, title="lost", description="d")
            raise RuntimeError("fail after insert")
    assert new_ticket().number == "TT1"
    with pytest.raises(RuntimeError):
        workflow.next_number()  # outside a transaction: refused


# --- notifications ------------------------------------------------------------------------------
def test_notifications_share_the_transaction(ctx):
    # The confirmation of one's own new ticket is a choice (off by default).
    Contact.update(notification_events='{"tickets.created": true}').where(
        Contact.email == "bruno@acme.example").execute()
    ticket = new_ticket()
    assert [m.template for m in outbox("bruno@acme.example")] == ["tickets_created"]
    created = outbox()[0]
    assert "TT1" in created.subject and "Printer broken" in created.subject
    assert f"/tickets/{ticket.id}" in created.body_text
    assert created.language == "it" and "abbiamo ricevuto" in created.body_text.lower()
    op = workflow.Actor.for_staff(staff())
    with pytest.raises(RuntimeError):
        with db.atomic():
            workflow.take_charge(ticket, staff())
            workflow.add_comment(ticket, op, "Reply that never was", "public")
            assert len(outbox("bruno@acme.example")) == 2  # the taking in charge and the reply: one email
            raise RuntimeError("failure after queue_email")
    ticket = Ticket.get_by_id(ticket.id)
    assert ticket.status == "open" and ticket.assignee_id is None
    assert len(outbox("bruno@acme.example")) == 1
    assert TicketComment.select().count() == 0 and TicketHistory.select().count() == 1


def test_requester_can_turn_notifications_off(ctx):
    person = contact("bruno@acme.example")
    Contact.update(notify_by_email=False).where(Contact.id == person.id).execute()
    ticket = new_ticket()
    with db.atomic():
        workflow.take_charge(ticket, staff())
    assert outbox("bruno@acme.example") == []


def test_emails_in_the_recipients_language(ctx):
    carla = contact("carla@globex.example")  # English
    carla.notification_events = '{"tickets.created": true}'
    carla.save(only=[Contact.notification_events])
    with db.atomic():
        ticket = workflow.create_ticket(workflow.Actor.customer(carla), carla, title="<b>Bold</b> & co",
                                        description="<script>alert(1)</script>")
    message = outbox("carla@globex.example")[0]
    assert message.language == "en" and "we have received your request" in message.body_text
    assert "<script>alert(1)</script>" not in message.body_html and "&lt;script&gt;" in message.body_html
    assert "<b>Bold</b>" not in message.body_html
    with db.atomic():
        workflow.add_comment(ticket, workflow.Actor.customer(carla), "Any news?", "public")
    # Nobody assigned: the support address gets the customer's comment.
    to_support = outbox(template="tickets_customer_comment")
    assert [m.to_address for m in to_support] == ["supporto@example.com"]
    with db.atomic():
        workflow.take_charge(ticket, staff())
        workflow.add_comment(ticket, workflow.Actor.customer(carla), "Here is the log", "private")
    latest = outbox(template="tickets_customer_comment")[-1]
    assert latest.to_address == "operatore@example.com" and "Here is the log" in latest.body_text
    status = outbox("carla@globex.example", "tickets_update")[-1]
    assert "Waiting for support" in status.body_text


# --- auto-close ---------------------------------------------------------------------------------
def test_autoclose_with_a_frozen_clock(ctx, monkeypatch):
    start = dt.datetime(2030, 3, 4, 10, 0)
    monkeypatch.setattr(workflow, "clock", lambda: start)
    stale, fresh, reopened = new_ticket(title="stale"), new_ticket(title="fresh"), new_ticket(title="reopened")
    op = workflow.Actor.for_staff(staff())
    for ticket in (stale, reopened):
        with db.atomic():
            workflow.take_charge(ticket, staff())
            workflow.change_state(ticket, "resolved", op)
    monkeypatch.setattr(workflow, "clock", lambda: start + dt.timedelta(days=2))
    with db.atomic():
        workflow.take_charge(fresh, staff())
        workflow.change_state(fresh, "resolved", op)
        workflow.add_comment(reopened, workflow.Actor.customer(contact("bruno@acme.example")), "no", "public")
    monkeypatch.setattr(workflow, "clock", lambda: start + dt.timedelta(days=3, minutes=1))
    assert workflow.autoclose() == [stale.number]
    assert workflow.autoclose() == []  # idempotent
    statuses = {t.title: t.status for t in Ticket.select()}
    assert statuses == {"stale": "closed", "fresh": "resolved", "reopened": "waiting_support"}
    last = TicketHistory.select().where(TicketHistory.ticket == stale.id).order_by(TicketHistory.id.desc()).get()
    assert (last.actor_type, last.to_state) == ("system", "closed")
    assert outbox(template="tickets_update")[-1].subject.startswith("[TT1]")
    monkeypatch.setattr(workflow, "clock", lambda: start + dt.timedelta(days=5, minutes=1))
    assert workflow.autoclose() == [fresh.number]


def test_autoclose_command_and_days_setting(tmp_path, demo, app):
    with app.app_context(), db.connection_context():
        reset_tickets()
        ticket = new_ticket()
        with db.atomic():
            workflow.take_charge(ticket, staff())
            workflow.change_state(ticket, "resolved", workflow.Actor.for_staff(staff()))
    app.config["TICKETS_AUTOCLOSE_DAYS"] = 0
    result = app.test_cli_runner().invoke(args=["tickets-autoclose"])
    assert result.exit_code == 0, result.output
    assert "closed 1 ticket(s): TT1" in result.output


def test_lazy_autoclose_runs_on_requests_at_most_once_a_minute(app, demo, client, monkeypatch):
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        ticket = new_ticket()
        with db.atomic():
            workflow.take_charge(ticket, staff())
            workflow.change_state(ticket, "resolved", workflow.Actor.for_staff(staff()))
    calls = []
    real = workflow.autoclose
    monkeypatch.setattr(workflow, "autoclose", lambda **kw: calls.append(kw) or real(**kw))
    app.config["TICKETS_AUTOCLOSE_DAYS"] = 0
    login(client, "bruno@acme.example")
    client.get("/")
    client.get("/tickets/")
    assert len(calls) == 1
    with app.app_context(), db.connection_context():
        assert Ticket.get_by_id(ticket.id).status == "closed"


# --- working hours ------------------------------------------------------------------------------
def test_response_target_counts_working_hours(ctx):
    from crm_portal.api import WorkingHours

    hours = WorkingHours()
    friday_5pm_rome = dt.datetime(2030, 3, 8, 16, 0)  # UTC = 17:00 in Rome (CET)
    # 1 hour left on Friday, 7 more from Monday 9:00 → Monday 16:00 Rome = 15:00 UTC.
    assert hours.add(friday_5pm_rome, 8) == dt.datetime(2030, 3, 11, 15, 0)
    saturday = dt.datetime(2030, 3, 9, 10, 0)
    assert hours.add(saturday, 8) == dt.datetime(2030, 3, 11, 16, 0)  # Monday 17:00 Rome
    assert hours.between(friday_5pm_rome, dt.datetime(2030, 3, 11, 15, 0)) == pytest.approx(8)
    custom = WorkingHours.from_config({"WORKING_HOURS": {"days": [0], "start": "08:00", "end": "10:00",
                                                         "timezone": "UTC", "holidays": ["2030-03-11"]}})
    assert custom.add(dt.datetime(2030, 3, 8, 12), 3) == dt.datetime(2030, 3, 25, 9, 0)
    ticket = new_ticket()
    assert ticket.response_due_at is not None and ticket.response_due_at > ticket.created_at
    assert not workflow.is_overdue(ticket, ticket.created_at)
    assert workflow.is_overdue(ticket, ticket.response_due_at + dt.timedelta(minutes=1))


# --- customer views -----------------------------------------------------------------------------
def test_customer_journey_through_the_views(app, demo, client):
    login(client, "bruno@acme.example")
    url = wizard_url(client)
    response = client.post(url, data=form_data(attachments=[(io.BytesIO(PNG), "screen shot.png")]),
                           content_type="multipart/form-data")
    assert response.status_code == 302, response.text[:2000]
    ticket_url = response.headers["Location"]
    page = client.get(ticket_url)
    assert "Cannot print invoices" in page.text and "screen shot.png" in page.text
    with app.app_context(), db.connection_context():
        ticket = Ticket.get(Ticket.title == "Cannot print invoices")
        assert ticket.number.startswith("TT") and ticket.requester_name == "Bruno Bianchi"
        assert ticket.priority == "urgent" and ticket.severity == "blocking" and ticket.category_id == 1
        attachment = TicketAttachment.get(TicketAttachment.ticket == ticket.id)
        assert outbox("bruno@acme.example", "tickets_created") == []  # not about her own action
    listing = client.get("/tickets/")
    assert ticket.number in listing.text and "Cannot print invoices" in listing.text
    download = client.get(f"/tickets/{ticket.id}/attachments/{attachment.id}")
    assert download.status_code == 200 and download.data == PNG
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    download.close()
    operator = app.test_client()
    staff_login(operator, "operatore@example.com")
    from_admin = operator.get(f"/admin/tickets_queue/work/{ticket.id}/attachments/{attachment.id}")
    assert from_admin.status_code == 200 and from_admin.data == PNG
    from_admin.close()
    assert operator.get(f"/admin/tickets_queue/work/{ticket.id}/attachments/{attachment.id + 99}").status_code == 404

    assert client.post(f"/tickets/{ticket.id}/comment", data={"body": "Also the PDF export"}).status_code == 302
    private = client.post(f"/tickets/{ticket.id}/comment", data={"body": "Between us: urgent", "kind": "private"})
    assert private.status_code == 302
    page = client.get(ticket_url)
    assert "Also the PDF export" in page.text and "Between us: urgent" in page.text
    assert re.search(r'data-testid="comment-count">1<', page.text)
    # Colleague with company scope sees the public comment, not the private note.
    other = app.test_client()
    login(other, "anna@acme.example")
    colleague_view = other.get(ticket_url)
    assert "Also the PDF export" in colleague_view.text and "Between us" not in colleague_view.text

    # The operator resolves it.
    operator = app.test_client()
    staff_login(operator, "operatore@example.com")
    assert operator.post(f"/admin/tickets_queue/work/{ticket.id}/take").status_code == 302
    response = operator.post(f"/admin/tickets_queue/work/{ticket.id}/update",
                             data={"body": "Fixed the print template.", "kind": "public", "status": "in_progress"})
    assert response.status_code == 302
    operator.post(f"/admin/tickets_queue/work/{ticket.id}/update", data={"status": "resolved", "hours": "1,5"})
    work = operator.get(f"/admin/tickets_queue/work/{ticket.id}/")
    assert "Between us: urgent" in work.text
    assert re.search(r'data-testid="hours">1\.50?<', work.text), re.findall(r'data-testid="hours">[^<]*', work.text)
    page = client.get(ticket_url)
    assert 'data-testid="close-ticket"' in page.text and "Fixed the print template." in page.text

    # Close with a rating; a closed ticket refuses further comments.
    assert client.post(f"/tickets/{ticket.id}/close", data={"rating": "5", "comment": "Great"}).status_code == 302
    refused = client.post(f"/tickets/{ticket.id}/comment", data={"body": "late"})
    assert refused.status_code == 409 and "non può più essere modificata" in refused.text  # bruno reads Italian
    upload = client.post(f"/tickets/{ticket.id}/upload", data={"file": (io.BytesIO(b"hi"), "a.txt")},
                         content_type="multipart/form-data")
    assert upload.status_code == 409
    with app.app_context(), db.connection_context():
        ticket = Ticket.get_by_id(ticket.id)
        assert (ticket.status, ticket.rating, ticket.rating_comment) == ("closed", 5, "Great")
        assert TicketComment.select().where(TicketComment.body == "late").count() == 0
        assert TicketAttachment.select().where(TicketAttachment.ticket == ticket.id).count() == 1
        templates = [m.template for m in outbox("bruno@acme.example") if f"[{ticket.number}]" in m.subject]
        # Taken in charge; the reply with its move to "In progress" (one email); resolved. Not her close.
        assert templates == ["tickets_update"] * 3
        assert [m.to_address for m in outbox(template="tickets_customer_comment")] == ["supporto@example.com"] * 2
        assert not [m for m in outbox() if "Between us" in m.body_text and m.to_address.endswith("acme.example")]


def test_reopen_sends_back_to_support(app, demo, client):
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        ticket = new_ticket()
        with db.atomic():
            workflow.take_charge(ticket, staff())
            workflow.change_state(ticket, "resolved", workflow.Actor.for_staff(staff()))
    login(client, "bruno@acme.example")
    assert client.post(f"/tickets/{ticket.id}/close", data={"rating": "9"}).status_code == 400
    response = client.post(f"/tickets/{ticket.id}/reopen", data={"body": "Still blank"})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        assert Ticket.get_by_id(ticket.id).status == "waiting_support"
    assert client.post(f"/tickets/{ticket.id}/close", data={"rating": "5"}).status_code == 409


def test_comment_others_permission(app, demo, client):
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        ticket = new_ticket("anna@acme.example")
        from crm_portal.models import ProfileModule
        bruno = contact("bruno@acme.example")
        ProfileModule.update(scope="company", actions="view,comment,close,export").where(
            (ProfileModule.profile == bruno.profile_id) & (ProfileModule.module == "tickets")).execute()
    login(client, "bruno@acme.example")
    assert client.get(f"/tickets/{ticket.id}").status_code == 200
    assert 'data-testid="comment-form"' not in client.get(f"/tickets/{ticket.id}").text
    assert client.post(f"/tickets/{ticket.id}/comment", data={"body": "hi"}).status_code == 403
    with app.app_context(), db.connection_context():
        assert TicketComment.select().where(TicketComment.ticket == ticket.id).count() == 0


def test_bad_uploads_are_refused_and_nothing_is_stored(app, demo, client, tmp_path):
    app.config["UPLOAD_MAX_BYTES"] = 1024
    app.config["UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        ticket = new_ticket()
    login(client, "bruno@acme.example")
    big = client.post(f"/tickets/{ticket.id}/upload", data={"file": (io.BytesIO(b"a" * 5000), "big.txt")},
                      content_type="multipart/form-data")
    assert big.status_code == 413 and "troppo grande" in big.text  # bruno reads Italian
    disguised_exe = (io.BytesIO(b"MZ\x90\x00\x03" + b"\x00" * 50), "x.pdf")
    exe = client.post(f"/tickets/{ticket.id}/upload", data={"file": disguised_exe},
                      content_type="multipart/form-data")
    assert exe.status_code == 415
    wizard = client.post(wizard_url(client), data=form_data(attachments=[(io.BytesIO(b"b" * 5000), "big.txt")]),
                         content_type="multipart/form-data")
    assert wizard.status_code == 413 and 'data-testid="upload-error"' in wizard.text
    with app.app_context(), db.connection_context():
        assert TicketAttachment.select().count() == 0
        assert Ticket.select().where(Ticket.title == "Cannot print invoices").count() == 0
    stored = list((tmp_path / "uploads").rglob("*")) if (tmp_path / "uploads").exists() else []
    assert not [p for p in stored if p.is_file()]
    # A hostile file name is stored under a generated name and served as an attachment.
    # (CR, LF and double quotes cannot travel in a multipart header: werkzeug's parser refuses or cuts them.)
    nasty = "..\\..\\etc/evil\t<script>alert(1)</script>.txt"
    ok = client.post(f"/tickets/{ticket.id}/upload", data={"file": (io.BytesIO(b"plain text"), nasty)},
                     content_type="multipart/form-data")
    assert ok.status_code == 302
    with app.app_context(), db.connection_context():
        row = TicketAttachment.get()
    assert "/" not in row.stored_name and ".." not in row.stored_name and "\n" not in row.original_name
    files = [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]
    assert [p.name for p in files] == [row.stored_name]
    page = client.get(f"/tickets/{ticket.id}")
    assert "<script>" not in page.text.split('id="attachments"')[1].split("</section>")[0]
    download = client.get(f"/tickets/{ticket.id}/attachments/{row.id}")
    assert download.status_code == 200 and download.headers["X-Content-Type-Options"] == "nosniff"
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and "\n" not in disposition and "\r" not in disposition


def test_user_text_is_escaped_everywhere(app, demo, client):
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        person = contact("bruno@acme.example")
        with db.atomic():
            ticket = workflow.create_ticket(workflow.Actor.customer(person), person, title=payload,
                                            description=payload)
            workflow.add_comment(ticket, workflow.Actor.customer(person), payload, "public")
    login(client, "bruno@acme.example")
    for url in ("/tickets/", f"/tickets/{ticket.id}", "/"):
        text = client.get(url).text
        assert "<script>alert" not in text and "<img src=x" not in text, url
    assert "&lt;script&gt;" in client.get(f"/tickets/{ticket.id}").text
    operator = app.test_client()
    staff_login(operator, "operatore@example.com")
    for url in ("/admin/tickets_queue/", f"/admin/tickets_queue/work/{ticket.id}/"):
        text = operator.get(url).text
        assert "<script>alert" not in text and "<img src=x" not in text, url


def test_list_filters_search_and_export(app, demo, client):
    login(client, "anna@acme.example")
    all_company = client.get("/tickets/?per_page=100").text
    assert "Timbrature doppie" in all_company and "Errore nella liquidazione IVA" in all_company
    assert "Bank reconciliation" not in all_company  # Globex
    mine = client.get("/tickets/?show=mine&per_page=100").text
    assert "Errore nella liquidazione IVA" not in mine and "Il cedolino di marzo" in mine
    closed = client.get("/tickets/?state=closed").text
    assert "Timbrature doppie" in closed and "Il cedolino di marzo" not in closed
    open_ = client.get("/tickets/?state=open").text
    assert "Timbrature doppie" not in open_ and "Il cedolino di marzo" in open_
    assert "Timbrature doppie" in client.get("/tickets/?s_requester_name=chiara").text
    assert "Timbrature doppie" not in client.get("/tickets/?q=cedolino").text
    assert "Il cedolino di marzo" in client.get("/tickets/?f_status=open").text
    assert "Il cedolino di marzo" not in client.get("/tickets/?f_status=closed").text
    today = dt.date.today()
    dated = client.get(f"/tickets/?state=closed&closed_from={today - dt.timedelta(days=40)}&closed_to={today}").text
    assert "Timbrature doppie" in dated
    assert "Timbrature doppie" not in client.get(f"/tickets/?closed_to={today - dt.timedelta(days=60)}").text
    export = client.get("/tickets/export.csv?state=closed")
    assert export.status_code == 200 and "Timbrature doppie" in export.text and "Il cedolino" not in export.text
    # anna reads Italian: her Excel wants the byte-order mark and semicolons.
    assert export.text.splitlines()[0].startswith("\ufeffNumero;Titolo;Richiedente")
    sorted_page = client.get("/tickets/?sort=title&dir=asc&per_page=100").text
    assert sorted_page.index("Chiusura esercizio") < sorted_page.index("Timbrature doppie")
    # Pager and sort links keep the tickets' own filters.
    assert "state=closed" in client.get("/tickets/?state=closed&per_page=10").text.split("record-list")[1]


def test_list_query_count_is_constant(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/tickets/")  # warm-up: per-process housekeeping
    with queries:
        assert client.get("/tickets/?per_page=10").status_code == 200
    few = queries.count
    with app.app_context(), db.connection_context():
        person = contact("chiara@acme.example")
        with workflow.quiet(), db.atomic():
            for i in range(60):
                workflow.create_ticket(workflow.Actor.customer(person), person, title=f"Bulk {i}", description="d")
    for url in ("/tickets/?per_page=100", "/tickets/?page=2&per_page=10", "/tickets/?q=bulk&sort=title",
                "/tickets/?f_status=open&state=open", "/"):
        with queries:
            assert client.get(url).status_code == 200
        assert queries.count <= max(few, 8), (url, queries.queries)
    ticket_id = Ticket.select(Ticket.id).where(Ticket.title == "Bulk 0").scalar()
    with queries:
        assert client.get(f"/tickets/{ticket_id}").status_code == 200
    assert queries.count <= 8, queries.queries


def test_the_list_reads_only_the_columns_it_shows(app, demo, client, queries):
    from crm_portal.modules.tickets import TicketsModule
    from crm_portal.modules.tickets.views import LIST_FIELDS

    assert [f.name for f in LIST_FIELDS] == ["id"] + [c.field.name for c in TicketsModule.columns]
    login(client, "anna@acme.example")
    with queries:
        page = client.get("/tickets/").text
    select = next(q for q in queries.queries if 'FROM "tickets_ticket"' in q and '"unread"' in q)  # the page's
    assert '"description"' not in select and '"search_text"' not in select, select
    assert "TT" in page


def test_dashboard_charts(app, demo, client):
    login(client, "anna@acme.example")
    page = client.get("/").text
    assert 'data-testid="tickets-dashboard"' in page and 'data-testid="chart-company"' in page
    assert 'data-testid="chart-mine"' in page and "<svg" in page
    assert 'fill="#0d6efd"' in page  # the colour of "Open" in the legend
    assert 'data-button="tickets.new"' in page
    login(client2 := app.test_client(), "bruno@acme.example")
    own = client2.get("/").text
    assert 'data-testid="chart-company"' not in own and 'data-testid="chart-mine"' in own


def test_guided_questions_are_asked_and_stored(app, demo, client):
    from crm_portal.modules.tickets.models import TicketCategory, TicketQuestion

    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        payroll = TicketCategory.get(TicketCategory.key == "payroll")
        TicketQuestion.create(category=payroll, label_en="Which month?", label_it="Quale mese?", required=True)
        TicketQuestion.create(label_en="Which version are you using?", label_it="Quale versione usi?")
        month_q = TicketQuestion.get(TicketQuestion.label_en == "Which month?")
        version_q = TicketQuestion.get(TicketQuestion.label_en != "Which month?")
    login(client, "carla@globex.example")
    url = wizard_url(client)
    form = client.get(url).text
    assert "Which month?" in form and "Which version are you using?" in form
    missing = client.post(url, data=form_data(category=str(payroll.id)))
    assert missing.status_code == 400 and "needs an answer" in missing.text
    response = client.post(url, data=form_data(category=str(payroll.id), **{f"q_{month_q.id}": "March",
                                                                            f"q_{version_q.id}": "12.4"}))
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).text
    assert "Which month?" in page and "March" in page and "12.4" in page


def test_operator_queue_filters_and_refusals(app, demo, client):
    staff_login(client, "operatore@example.com")
    queue = client.get("/admin/tickets_queue/")
    assert queue.status_code == 200 and "Il cedolino di marzo" in queue.text
    with app.app_context(), db.connection_context():
        ticket = Ticket.get(Ticket.title == "Il cedolino di marzo non si stampa")
        Ticket.update(response_due_at=dt.datetime(2000, 1, 1)).where(Ticket.id == ticket.id).execute()
    overdue = client.get("/admin/tickets_queue/?flt0_0=open&flt4_4=1")
    assert overdue.status_code == 200
    text = client.get(f"/admin/tickets_queue/work/{ticket.id}/").text
    assert 'data-testid="overdue"' in text
    refused = client.post(f"/admin/tickets_queue/work/{ticket.id}/update", data={"status": "closed"},
                          follow_redirects=True)
    assert "not allowed" in refused.text
    with app.app_context(), db.connection_context():
        assert Ticket.get_by_id(ticket.id).status == "open"
    client.post(f"/admin/tickets_queue/work/{ticket.id}/update", data={"body": "checking logs", "kind": "internal"})
    with app.app_context(), db.connection_context():
        assert not [m for m in OutboxMessage.select() if "checking logs" in m.body_text]
    portal = app.test_client()
    login(portal, "anna@acme.example")
    assert "checking logs" not in portal.get(f"/tickets/{ticket.id}").text
    assert client.get("/admin/tickets_queue/work/999999/").status_code == 404
    # Customers never reach the operator pages.
    assert portal.get(f"/admin/tickets_queue/work/{ticket.id}/").status_code == 404


def test_demo_has_every_state(app, demo):
    with app.app_context(), db.connection_context():
        states = {s for (s,) in Ticket.select(Ticket.status).tuples()}
        assert states == set(workflow.DEFAULT_STATES)
        assert Ticket.select().where(Ticket.company == demo["companies"]["globex"].id).count() >= 3
        assert TicketComment.select().count() > 10


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: CRM_PORTAL_TEST_DATABASE_URL is not set")
def test_postgres_uses_update_returning(app, demo):
    with app.app_context(), db.connection_context():
        assert db.obj.returning_clause
        reset_tickets()
        with db.atomic():
            assert workflow.next_number() == 1




def test_autoclose_is_a_periodic_job_of_the_worker(app):
    assert "tickets.autoclose" in app.extensions["crm_portal_jobs"]["periodic"]


def test_demo_resolved_tickets_wait_for_the_customer(app, demo):
    """The demo keeps resolved tickets for the close-with-rating journey: auto-close leaves them."""
    from crm_portal.modules.tickets import workflow as wf
    from crm_portal.modules.tickets.models import Ticket

    with app.test_request_context(), db.connection_context():
        resolved = Ticket.select().where(Ticket.status == wf.RESOLVED).count()
        assert resolved >= 2
        assert wf.autoclose() == []
        assert Ticket.select().where(Ticket.status == wf.RESOLVED).count() == resolved


def test_my_data_change_request_opens_a_ticket(app, demo, client):
    from crm_portal.modules.tickets.models import Ticket

    login(client, "bruno@acme.example")
    response = client.post("/me/request", data={"req-field": "role", "req-message": "Ora sono il <b>CFO</b>"})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        ticket = Ticket.select().order_by(Ticket.id.desc()).first()
        assert ticket.title == "Modifica dei miei dati: Ruolo"  # in bruno's language
        assert ticket.description == "Ora sono il <b>CFO</b>" and ticket.type == "request"
        assert ticket.contact_id == demo["contacts"]["bruno"].id
        assert not OutboxMessage.select().where(OutboxMessage.template == "change-request").exists()
    page = client.get(f"/tickets/{ticket.id}").text
    assert "Ora sono il &lt;b&gt;CFO&lt;/b&gt;" in page


# --- module layout: emails are signal receivers, templates get data, queries take explicit inputs ---
def test_quiet_changes_send_signals_but_no_email(ctx):
    from crm_portal.modules.tickets import signals

    seen = []
    with signals.ticket_created.connected_to(lambda sender, **kw: seen.append("created")), \
            signals.status_changed.connected_to(lambda sender, **kw: seen.append("status")), \
            signals.comment_added.connected_to(lambda sender, **kw: seen.append("comment")):
        with workflow.quiet(), db.atomic():
            ticket = new_ticket()
            workflow.take_charge(ticket, staff())
            workflow.add_comment(ticket, workflow.Actor.for_staff(staff()), "Quiet reply", "public")
            workflow.add_comment(ticket, workflow.Actor.customer(contact("bruno@acme.example")), "Quiet", "public")
    assert seen == ["created", "status", "comment", "comment"]
    assert outbox() == []
    with db.atomic():  # outside quiet() the same receivers write the emails
        workflow.add_comment(ticket, workflow.Actor.for_staff(staff()), "Loud reply", "public")
    assert [m.template for m in outbox()] == ["tickets_update"]


def test_a_customer_comment_email_names_the_state_it_was_written_in(ctx):
    """comment-added is sent before the move the comment causes: support reads "Waiting for
    customer", then the requester is told of the move back to support."""
    carla = contact("carla@globex.example")
    with db.atomic():
        ticket = workflow.create_ticket(workflow.Actor.customer(carla), carla, title="Import", description="d")
        workflow.take_charge(ticket, staff())
        workflow.change_state(ticket, "waiting_customer", workflow.Actor.for_staff(staff()))
    OutboxMessage.delete().execute()
    with db.atomic():
        workflow.add_comment(ticket, workflow.Actor.customer(carla), "Here is the file", "public")
    # The customer is not told of the move her own comment made.
    [to_support] = outbox()
    assert to_support.template == "tickets_customer_comment"
    assert "Status: Waiting for customer" in to_support.body_text


def test_receivers_are_connected_once_whatever_the_number_of_applications(tmp_path):
    from crm_portal.modules.tickets import signals

    counts = []
    for name in ("one", "two", "three"):
        (tmp_path / name).mkdir()
        app = make_app(tmp_path / name)
        counts.append((len(signals.ticket_created.receivers), len(signals.status_changed.receivers),
                       len(signals.comment_added.receivers)))
    assert counts[0] == counts[1] == counts[2] and counts[0] >= (1, 1, 1)
    from crm_portal.demo import load_demo

    with app.app_context(), db.connection_context():
        load_demo(app)
        reset_tickets()
        Contact.update(notification_events='{"tickets.created": true}').where(
            Contact.email == "bruno@acme.example").execute()
        new_ticket()
        assert [m.template for m in outbox("bruno@acme.example")] == ["tickets_created"]


def test_a_change_request_in_an_application_without_tickets_goes_to_support(tmp_path):
    """The receiver is connected for the whole process: an application that does not run the
    tickets module must not open a ticket (the host emails support instead)."""
    from crm_portal.demo import load_demo

    for name in ("with", "without"):
        (tmp_path / name).mkdir()
    make_app(tmp_path / "with")  # connects the module's receivers
    app = make_app(tmp_path / "without", MODULES_DISABLED=["tickets"])
    with app.app_context(), db.connection_context():
        load_demo(app)
    client = app.test_client()
    login(client, "bruno@acme.example")
    response = client.post("/me/request", data={"req-field": "role", "req-message": "Ora sono il CFO"})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        assert [m.template for m in OutboxMessage.select()] == ["change-request"]


def test_templates_get_their_data_from_the_views(app, demo, client):
    """No query helpers among the Jinja globals: the ticket page (category included) is drawn
    from detail_context, the list's badges from list_context."""
    assert not [name for name in app.jinja_env.globals if name.startswith("tickets")]
    from crm_portal.modules.tickets.models import TicketCategory

    with app.app_context(), db.connection_context():
        ticket = Ticket.get(Ticket.title == "Bank reconciliation import fails")
        assert TicketCategory.get_by_id(ticket.category_id).label_en == "Accounting"
    login(client, "carla@globex.example")
    page = client.get(f"/tickets/{ticket.id}").text
    assert re.search(r"Category</dt><dd[^>]*>Accounting<", page)
    listing = client.get("/tickets/").text
    assert re.search(rf'data-ticket="{ticket.number}">.*?text-bg-info">Waiting for support<', listing, re.S)


def test_the_ticket_query_does_not_depend_on_the_endpoint(app):
    module = app.extensions["crm_portal"].modules["tickets"]
    outside = module.base_query().sql()
    for path in ("/tickets/1", "/tickets/", "/tickets/1/comment"):
        with app.test_request_context(path):
            assert module.base_query().sql() == outside, path


def test_admin_selects_name_states_and_categories_in_english(ctx, app):
    from flask_babel import force_locale

    from crm_portal.modules.tickets.models import TicketCategory, TicketQuestion

    with force_locale("it"):
        state = TicketState.get(TicketState.key == "waiting_dev")
        assert (state.label, str(state)) == ("Attesa programmazione", "Waiting for development")
        assert str(TicketCategory.get(TicketCategory.key == "payroll")) == "Payroll"
        assert str(TicketQuestion(label_en="Which month?", label_it="Quale mese?")) == "Which month?"


def test_no_import_cycles_inside_the_module():
    """Each file of the package imports only files that do not import it back, and none imports
    the package's declaration (``__init__``)."""
    import ast
    from pathlib import Path

    import crm_portal.modules.tickets as package

    folder = Path(package.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        graph[path.stem] = deps
    assert not [name for name, deps in graph.items()
                if "__init__" in deps or (name != "__init__" and not deps <= set(graph))]

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(dep == target or (dep not in seen and reaches(dep, target, seen | {dep}))
                   for dep in graph.get(start, ()))

    assert not [name for name in graph if reaches(name, name, {name})]
