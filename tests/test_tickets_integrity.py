"""Tickets: changes made on stale copies, grants, clean-up after a failed creation, numbers out of
range and where the auto-close runs.

A "stale copy" is a ticket read before another actor's change committed: the portal and admin
routes read the ticket, then write. The route tests reproduce the race by letting the other actor
change the ticket right after the route's read (see :func:`interfere_after_read`).
"""
from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable

import peewee as pw
import pytest
from conftest import PG_URL, login, make_app, staff_login
from test_tickets import PNG, contact, form_data, new_ticket, reset_tickets, staff, wizard_url

from crm_portal.db import db
from crm_portal.models import ProfileModule
from crm_portal.modules.tickets import signals, views, workflow
from crm_portal.modules.tickets.admin import TicketQueueView
from crm_portal.modules.tickets.models import Ticket, TicketAttachment, TicketComment, TicketHistory

HUGE = "99999999999999999999999"
CHANGED_IT = "modificata nel frattempo"  # bruno reads Italian
CHANGED_EN = "changed meanwhile"  # the demo staff read English


@pytest.fixture
def ctx(app, demo):
    """A request context with a connection, the default workflow and no tickets yet."""
    with app.test_request_context(), db.connection_context():
        reset_tickets()
        yield demo


def operator() -> workflow.Actor:
    return workflow.Actor.for_staff(staff())


def customer(email: str = "bruno@acme.example") -> workflow.Actor:
    return workflow.Actor.customer(contact(email))


def resolved_ticket(type_: str = "question") -> Ticket:
    ticket = new_ticket(type_=type_)
    with db.atomic():
        workflow.take_charge(ticket, staff())
        workflow.change_state(ticket, "resolved", operator())
    return ticket


def fresh(ticket: Ticket) -> Ticket:
    return Ticket.get_by_id(ticket.id)


def comment_count(ticket: Ticket) -> int:
    return TicketComment.select().where(TicketComment.ticket == ticket.id).count()


# --- workflow: stale copies ---------------------------------------------------------------------
def test_customer_close_on_a_stale_copy_keeps_the_operators_reopen(ctx):
    """The audit's scenario: the customer's close, made on a copy read before the operator
    reopened and replied, is refused; state, rating and comment count stay the operator's."""
    ticket = resolved_ticket()
    stale = fresh(ticket)
    mine = fresh(ticket)
    with db.atomic():
        workflow.change_state(mine, "waiting_support", operator())
        workflow.add_comment(mine, operator(), "Reopened: one more check", "public")
    with pytest.raises(workflow.TicketChanged):
        with db.atomic():
            workflow.close_by_customer(stale, customer(), 5, "ok")
    row = fresh(ticket)
    assert (row.status, row.rating, row.rating_comment, row.closed_at) == ("waiting_support", None, None, None)
    assert row.public_comments == 1 and comment_count(ticket) == 1
    assert not TicketHistory.select().where((TicketHistory.ticket == ticket.id)
                                            & (TicketHistory.to_state == "closed")).exists()


def test_operator_reopen_on_a_stale_copy_keeps_the_customers_close(ctx):
    ticket = resolved_ticket()
    stale = fresh(ticket)
    with db.atomic():
        workflow.close_by_customer(fresh(ticket), customer(), 4, "Thanks")
    with pytest.raises(workflow.TicketChanged):
        with db.atomic():
            workflow.add_comment(stale, operator(), "Reopening", "public", expected=stale.status)
            workflow.change_state(stale, "waiting_support", operator())
    with pytest.raises(workflow.TicketChanged):  # the state change alone is refused as well
        with db.atomic():
            workflow.change_state(stale, "waiting_support", operator())
    row = fresh(ticket)
    assert (row.status, row.rating, row.rating_comment) == ("closed", 4, "Thanks")
    assert row.public_comments == 0 and comment_count(ticket) == 0


def test_comment_counter_is_incremented_in_sql(ctx):
    ticket = new_ticket()
    first, second = fresh(ticket), fresh(ticket)
    with db.atomic():
        workflow.add_comment(first, operator(), "Which version?", "public")
    with db.atomic():  # read before the reply: its count (0) must not be written back
        workflow.add_comment(second, customer(), "Version 12", "public")
    assert fresh(ticket).public_comments == 2 and second.public_comments == 2
    with db.atomic():  # other writes on an old copy leave the counter alone
        workflow.assign(first, staff())
        workflow.add_hours(first, 1)
    assert fresh(ticket).public_comments == 2


def test_customer_comment_on_a_copy_read_before_the_close_is_refused(ctx):
    ticket = resolved_ticket()
    stale = fresh(ticket)
    with db.atomic():
        workflow.close_by_customer(fresh(ticket), customer(), 5)
    with pytest.raises(workflow.TransitionRefused):
        with db.atomic():
            workflow.add_comment(stale, customer(), "one more thing", "public")
    with pytest.raises(workflow.TransitionRefused):
        with db.atomic():
            workflow.attach(stale, customer(), _Stored("late-file-name-0001"))
    assert fresh(ticket).public_comments == 0 and comment_count(ticket) == 0
    assert TicketAttachment.select().count() == 0


def test_customer_comment_decides_on_the_current_state_not_the_copys(ctx):
    """Read while Resolved; the operator reopened meanwhile: the comment is kept and no second
    move (from a state the ticket is no longer in) is attempted."""
    ticket = resolved_ticket()
    stale = fresh(ticket)
    with db.atomic():
        workflow.change_state(fresh(ticket), "waiting_support", operator())
    with db.atomic():
        workflow.add_comment(stale, customer(), "Still broken", "public")
    assert stale.status == "waiting_support" and fresh(ticket).public_comments == 1
    moves = [h.to_state for h in TicketHistory.select().where(TicketHistory.ticket == ticket.id)]
    assert moves.count("waiting_support") == 2  # take charge, the operator's reopen: none by the customer


def test_reopen_is_refused_when_the_ticket_left_resolved(ctx):
    ticket = resolved_ticket()
    stale = fresh(ticket)
    with db.atomic():
        workflow.change_state(fresh(ticket), "waiting_support", operator())
    with pytest.raises(workflow.TicketChanged):
        with db.atomic():
            workflow.reopen(stale, customer(), "not fixed")
    assert comment_count(ticket) == 0 and fresh(ticket).status == "waiting_support"


def test_state_change_on_a_stale_copy_keeps_the_assignment_made_meanwhile(ctx):
    ticket = new_ticket()
    stale = fresh(ticket)
    admin = staff("admin@example.com")
    with db.atomic():
        workflow.assign(fresh(ticket), admin)
    with db.atomic():  # the copy says "nobody": the operator must not take it from the admin
        workflow.change_state(stale, "waiting_support", operator())
    row = fresh(ticket)
    assert (row.assignee_id, row.status) == (admin.id, "waiting_support") and row.taken_at is not None
    assert stale.assignee_id == admin.id  # the copy was reloaded after the write


def test_two_operators_taking_charge_the_second_is_refused(ctx):
    ticket = new_ticket()
    first, second = fresh(ticket), fresh(ticket)
    admin = staff("admin@example.com")
    with db.atomic():
        workflow.take_charge(first, staff())
    with pytest.raises(workflow.TicketChanged):
        with db.atomic():
            workflow.take_charge(second, admin)
    row = fresh(ticket)
    assert (row.status, row.assignee_id) == ("waiting_support", staff().id)


def test_autoclose_leaves_a_ticket_resolved_again_meanwhile(ctx, monkeypatch):
    start = dt.datetime(2030, 3, 4, 10, 0)
    monkeypatch.setattr(workflow, "clock", lambda: start)
    ticket = resolved_ticket()
    monkeypatch.setattr(workflow, "clock", lambda: start + dt.timedelta(days=4))
    real_get = Ticket.get_or_none

    def resolved_again_after_the_read(*args, **kwargs):
        found = real_get(*args, **kwargs)
        Ticket.update(resolved_at=start + dt.timedelta(days=4)).where(Ticket.id == ticket.id).execute()
        return found

    monkeypatch.setattr(Ticket, "get_or_none", resolved_again_after_the_read)
    assert workflow.autoclose() == []
    monkeypatch.undo()
    assert fresh(ticket).status == "resolved"


class _Stored:
    """A stand-in for a stored upload (the workflow only reads these attributes)."""

    def __init__(self, name: str) -> None:
        self.stored_name = name
        self.original_name = "late.txt"
        self.size = 4
        self.mimetype = "text/plain"


# --- routes: the other actor acts between the route's read and its write -------------------------
def interfere_after_read(monkeypatch, app, change: Callable[[Ticket], None], *, admin: bool = False) -> None:
    """Make the next ticket read of a portal (or admin) route run ``change`` right after it, in
    its own committed transaction: the route then writes with a stale copy."""
    done: list[bool] = []

    def after(ticket: Ticket) -> None:
        if not done:
            done.append(True)
            with db.atomic():
                change(Ticket.get_by_id(ticket.id))

    if admin:
        real_ticket = TicketQueueView._ticket

        def read(self, ticket_id):
            found = real_ticket(self, ticket_id)
            after(found)
            return found

        monkeypatch.setattr(TicketQueueView, "_ticket", read)
    else:
        real_get = views.get_or_404

        def get(*args, **kwargs):
            found = real_get(*args, **kwargs)
            after(found)
            return found

        monkeypatch.setattr(views, "get_or_404", get)


def prepared(app, builder: Callable[[], Ticket]) -> int:
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        return builder().id


def row(app, ticket_id: int) -> tuple[Ticket, int]:
    with app.app_context(), db.connection_context():
        return Ticket.get_by_id(ticket_id), TicketComment.select().where(TicketComment.ticket == ticket_id).count()


def operator_reopens(ticket: Ticket) -> None:
    workflow.change_state(ticket, "waiting_support", operator())
    workflow.add_comment(ticket, operator(), "Reopened after a new report", "public")


def system_closes(ticket: Ticket) -> None:
    workflow.change_state(ticket, "closed", workflow.Actor.system())


def test_portal_close_with_a_rating_after_the_operator_reopened(app, demo, client, monkeypatch):
    ticket_id = prepared(app, resolved_ticket)
    login(client, "bruno@acme.example")
    interfere_after_read(monkeypatch, app, operator_reopens)
    response = client.post(f"/tickets/{ticket_id}/close", data={"rating": "5", "comment": "ok"})
    assert response.status_code == 409 and CHANGED_IT in response.text
    assert 'data-testid="close-ticket"' not in response.text  # the page shows the ticket as it is now
    ticket, comments = row(app, ticket_id)
    assert (ticket.status, ticket.rating, ticket.public_comments, comments) == ("waiting_support", None, 1, 1)


def test_portal_reopen_after_the_ticket_was_closed(app, demo, client, monkeypatch):
    ticket_id = prepared(app, resolved_ticket)
    login(client, "bruno@acme.example")
    interfere_after_read(monkeypatch, app, system_closes)
    response = client.post(f"/tickets/{ticket_id}/reopen", data={"body": "Still blank"})
    assert response.status_code == 409 and CHANGED_IT in response.text
    ticket, comments = row(app, ticket_id)
    assert (ticket.status, ticket.public_comments, comments) == ("closed", 0, 0)


def test_portal_comment_after_the_ticket_was_closed(app, demo, client, monkeypatch):
    ticket_id = prepared(app, resolved_ticket)
    login(client, "bruno@acme.example")
    interfere_after_read(monkeypatch, app, system_closes)
    response = client.post(f"/tickets/{ticket_id}/comment", data={"body": "late"})
    assert response.status_code == 409 and "non può più essere modificata" in response.text
    ticket, comments = row(app, ticket_id)
    assert (ticket.status, ticket.public_comments, comments) == ("closed", 0, 0)


def test_portal_upload_after_the_ticket_was_closed(app, demo, client, monkeypatch, tmp_path):
    app.config["UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    ticket_id = prepared(app, resolved_ticket)
    login(client, "bruno@acme.example")
    interfere_after_read(monkeypatch, app, system_closes)
    response = client.post(f"/tickets/{ticket_id}/upload", data={"file": (io.BytesIO(PNG), "shot.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 409
    with app.app_context(), db.connection_context():
        assert TicketAttachment.select().count() == 0
    assert not [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]  # the stored file is removed


def test_portal_close_without_the_close_grant_is_refused(app, demo, client):
    ticket_id = prepared(app, resolved_ticket)
    with app.app_context(), db.connection_context():
        bruno = contact("bruno@acme.example")
        ProfileModule.update(actions="view,create,comment").where(
            (ProfileModule.profile == bruno.profile_id) & (ProfileModule.module == "tickets")).execute()
    login(client, "bruno@acme.example")
    assert 'data-testid="close-ticket"' not in client.get(f"/tickets/{ticket_id}").text
    assert client.post(f"/tickets/{ticket_id}/close", data={"rating": "5"}).status_code == 403
    ticket, _ = row(app, ticket_id)
    assert (ticket.status, ticket.rating) == ("resolved", None)


def work_url(ticket_id: int, action: str = "") -> str:
    return f"/admin/tickets_queue/work/{ticket_id}/{action}"


def test_admin_reply_and_status_change_after_the_customer_replied(app, demo, monkeypatch):
    def waiting_customer() -> Ticket:
        ticket = new_ticket()
        with db.atomic():
            workflow.take_charge(ticket, staff())
            workflow.change_state(ticket, "waiting_customer", operator())
        return ticket

    ticket_id = prepared(app, waiting_customer)
    client = app.test_client()
    staff_login(client, "operatore@example.com")
    interfere_after_read(monkeypatch, app, lambda t: workflow.add_comment(t, customer(), "Here it is", "public"),
                         admin=True)
    response = client.post(work_url(ticket_id, "update"), data={
        "body": "Solved, closing", "kind": "public", "status": "resolved", "hours": "2",
        "expected_status": "waiting_customer"}, follow_redirects=True)
    assert response.status_code == 200 and CHANGED_EN in response.text
    ticket, comments = row(app, ticket_id)
    assert (ticket.status, ticket.public_comments, comments) == ("waiting_support", 1, 1)
    assert ticket.hours_spent == 0  # the whole form was refused


def test_admin_form_from_a_page_shown_before_the_customer_closed(app, demo):
    """The reverse order: the customer closed after the operator's page was shown."""
    ticket_id = prepared(app, resolved_ticket)
    with app.app_context(), db.connection_context():
        with db.atomic():
            workflow.close_by_customer(Ticket.get_by_id(ticket_id), customer(), 5, "Great")
    client = app.test_client()
    staff_login(client, "operatore@example.com")
    response = client.post(work_url(ticket_id, "update"), data={
        "body": "Reopening to check", "kind": "public", "expected_status": "resolved"}, follow_redirects=True)
    assert CHANGED_EN in response.text
    ticket, comments = row(app, ticket_id)
    assert (ticket.status, ticket.rating, ticket.public_comments, comments) == ("closed", 5, 0, 0)
    page = client.get(work_url(ticket_id))
    assert 'name="expected_status" value="closed"' in page.text
    hours_only = client.post(work_url(ticket_id, "update"), data={"hours": "1", "expected_status": "resolved"},
                             follow_redirects=True)
    assert CHANGED_EN in hours_only.text
    ticket, _ = row(app, ticket_id)
    assert ticket.hours_spent == 0


def test_admin_take_charge_after_another_operator_took_it(app, demo, monkeypatch):
    ticket_id = prepared(app, new_ticket)
    client = app.test_client()
    staff_login(client, "admin@example.com")
    interfere_after_read(monkeypatch, app, lambda t: workflow.take_charge(t, staff()), admin=True)
    response = client.post(work_url(ticket_id, "take"), follow_redirects=True)
    assert response.status_code == 200 and CHANGED_EN in response.text
    ticket, _ = row(app, ticket_id)
    with app.app_context(), db.connection_context():
        assert (ticket.status, ticket.assignee_id) == ("waiting_support", staff().id)


def test_admin_assign_keeps_what_the_customer_changed_meanwhile(app, demo, monkeypatch):
    def waiting_customer() -> Ticket:
        ticket = new_ticket()
        with db.atomic():
            workflow.take_charge(ticket, staff())
            workflow.change_state(ticket, "waiting_customer", operator())
        return ticket

    ticket_id = prepared(app, waiting_customer)
    with app.app_context(), db.connection_context():
        admin_id = staff("admin@example.com").id
    client = app.test_client()
    staff_login(client, "operatore@example.com")
    interfere_after_read(monkeypatch, app, lambda t: workflow.add_comment(t, customer(), "News", "public"),
                         admin=True)
    assert client.post(work_url(ticket_id, "assign"), data={"assignee": str(admin_id)}).status_code == 302
    ticket, comments = row(app, ticket_id)
    assert (ticket.assignee_id, ticket.status, ticket.public_comments, comments) == (
        admin_id, "waiting_support", 1, 1)


# --- a failed creation leaves nothing behind -----------------------------------------------------
def test_failed_creation_removes_its_stored_files(app, demo, client, tmp_path):
    app.config["UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    login(client, "bruno@acme.example")
    url = wizard_url(client)

    def broken_mail(sender, ticket, **kwargs):  # fails after the ticket and its attachment rows were written
        assert TicketAttachment.select().where(TicketAttachment.ticket == ticket.id).count() == 1
        raise RuntimeError("mail queue down")

    with signals.ticket_created.connected_to(broken_mail), pytest.raises(RuntimeError, match="mail queue down"):
        client.post(url, data=form_data(attachments=[(io.BytesIO(PNG), "shot.png")]),
                    content_type="multipart/form-data")
    with app.app_context(), db.connection_context():
        assert Ticket.select().where(Ticket.title == "Cannot print invoices").count() == 0
        assert TicketAttachment.select().count() == 0
    assert (tmp_path / "uploads").exists()  # the file had been stored …
    assert not [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]  # … and is gone


# --- numbers beyond any id ----------------------------------------------------------------------
def test_huge_numbers_in_ticket_urls_answer_404(app, demo, client):
    with app.app_context(), db.connection_context():
        ticket_id = Ticket.select(Ticket.id).where(Ticket.contact == contact("anna@acme.example").id).scalar()
    login(client, "anna@acme.example")
    for url in (f"/tickets/{HUGE}", f"/tickets/{ticket_id}/attachments/{HUGE}", f"/tickets/{HUGE}/attachments/1"):
        assert client.get(url).status_code == 404, url
    for action in ("comment", "close", "reopen", "upload"):
        assert client.post(f"/tickets/{HUGE}/{action}", data={"body": "x", "rating": "5"}).status_code == 404
    for query in (f"page={HUGE}", "closed_to=9999-12-31", "created_from=0001-01-01&created_to=9999-12-31",
                  f"created_to={HUGE}", "state=closed&closed_to=9999-12-31"):
        assert client.get(f"/tickets/?{query}").status_code == 200, query
    assert "Timbrature doppie" in client.get("/tickets/?state=closed&closed_to=9999-12-31").text


def test_huge_numbers_on_the_operator_pages(app, demo):
    with app.app_context(), db.connection_context():
        ticket_id = Ticket.select(Ticket.id).scalar()
    client = app.test_client()
    staff_login(client, "operatore@example.com")
    for url in (work_url(HUGE), work_url(ticket_id, f"attachments/{HUGE}"), work_url(HUGE, "attachments/1")):
        assert client.get(url).status_code == 404, url
    for action in ("take", "assign", "update"):
        assert client.post(work_url(HUGE, action), data={"body": "x"}).status_code == 404, action
    assigned = client.post(work_url(ticket_id, "assign"), data={"assignee": HUGE}, follow_redirects=True)
    assert assigned.status_code == 200 and "Unknown operator" in assigned.text
    with app.app_context(), db.connection_context():
        assert Ticket.get_by_id(ticket_id).assignee_name != HUGE
    # The "Assigned to" filter (flt3): an impossible operator id is dropped, not sent to the database.
    assert client.get(f"/admin/tickets_queue/?flt0_3={HUGE}").status_code == 200
    assert client.get("/admin/tickets_queue/?flt0_3=none").status_code == 200


def test_ticket_lookups_refuse_ids_beyond_the_column(ctx):
    """The lookups behind the routes stay safe whatever the URL converter lets through."""
    from werkzeug.exceptions import NotFound

    ticket = new_ticket()
    for call in (lambda: views.send_attachment(ticket.id, int(HUGE)), lambda: views.send_attachment(int(HUGE), 1),
                 lambda: TicketQueueView._ticket(None, int(HUGE))):
        with pytest.raises(NotFound):
            call()


# --- auto-close inside requests -----------------------------------------------------------------
def _customer_request_runs_autoclose(app, monkeypatch) -> tuple[list, str]:
    from crm_portal.demo import load_demo

    with app.app_context(), db.connection_context():
        load_demo(app)
        reset_tickets()
        ticket_id = resolved_ticket().id
    app.config["TICKETS_AUTOCLOSE_DAYS"] = 0
    calls: list = []
    real = workflow.autoclose
    monkeypatch.setattr(workflow, "autoclose", lambda **kw: calls.append(kw) or real(**kw))
    client = app.test_client()
    login(client, "bruno@acme.example")
    assert client.get("/tickets/").status_code == 200
    ticket, _ = row(app, ticket_id)
    return calls, ticket.status


def test_with_a_worker_customer_requests_do_not_run_the_autoclose(tmp_path, monkeypatch):
    app = make_app(tmp_path, HUEY_URL=f"sqlite:///{tmp_path / 'huey.db'}", HUEY_IMMEDIATE=False)
    calls, status = _customer_request_runs_autoclose(app, monkeypatch)
    assert calls == [] and status == "resolved"  # left to the worker's periodic job
    assert "tickets.autoclose" in app.extensions["crm_portal_jobs"]["periodic"]


def test_autoclose_in_requests_can_be_forced_on(tmp_path, monkeypatch):
    app = make_app(tmp_path, HUEY_URL=f"sqlite:///{tmp_path / 'huey.db'}", HUEY_IMMEDIATE=False,
                   TICKETS_AUTOCLOSE_IN_REQUESTS=True)
    calls, status = _customer_request_runs_autoclose(app, monkeypatch)
    assert len(calls) == 1 and status == "closed"


def test_autoclose_in_requests_can_be_turned_off_without_a_worker(tmp_path, monkeypatch):
    app = make_app(tmp_path, TICKETS_AUTOCLOSE_IN_REQUESTS="false")  # immediate huey: "auto" would run it
    calls, status = _customer_request_runs_autoclose(app, monkeypatch)
    assert calls == [] and status == "resolved"


def test_a_misspelt_autoclose_setting_stops_the_start_up(tmp_path):
    with pytest.raises(ValueError, match="TICKETS_AUTOCLOSE_IN_REQUESTS"):
        make_app(tmp_path, TICKETS_AUTOCLOSE_IN_REQUESTS="sometimes")


# --- a contact's tickets outlive any attempt to delete the contact ------------------------------
def _delete_contact_with_a_ticket() -> Ticket:
    ticket = new_ticket()
    with pytest.raises(pw.IntegrityError):
        with db.atomic():
            contact("bruno@acme.example").delete_instance()
    assert fresh(ticket).contact_id == contact("bruno@acme.example").id
    return ticket


def test_the_database_refuses_to_delete_a_contact_with_tickets(ctx):
    _delete_contact_with_a_ticket()


def test_the_schema_step_turns_an_old_cascade_into_a_refusal(app, ctx):
    """A database created when the foreign key still cascaded gets the refusal from its schema step."""
    from playhouse.migrate import SchemaMigrator, migrate

    from crm_portal.migrations import upgrade
    from crm_portal.models import MigrationHistory

    field = Ticket._meta.fields["contact"]
    if PG_URL:
        migrator = SchemaMigrator.from_database(db.obj)
        migrate(migrator.drop_foreign_key_constraint("tickets_ticket", "contact_id"),
                migrator.add_foreign_key_constraint("tickets_ticket", "contact_id", "core_contact", "id",
                                                    on_delete="CASCADE"))
    else:
        db.execute_sql("DROP TABLE tickets_ticket")
        field.on_delete = "CASCADE"
        try:
            db.create_tables([Ticket])
        finally:
            field.on_delete = "RESTRICT"
    doomed = new_ticket(email="anna@acme.example")
    with db.atomic():
        contact("anna@acme.example").delete_instance()
    assert Ticket.get_or_none(Ticket.id == doomed.id) is None  # the old shape: tickets went with the contact

    MigrationHistory.delete().where(MigrationHistory.name == "0004_contact_restrict").execute()
    assert "tickets: applied 0004_contact_restrict" in upgrade(app.extensions["crm_portal"])
    _delete_contact_with_a_ticket()


def test_a_deleted_ticket_takes_its_attachment_files_after_the_commit(app, demo, client, tmp_path):
    from crm_portal.uploads import delete_with_files, stored_path

    app.config["UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    login(client, "bruno@acme.example")
    response = client.post(wizard_url(client), data=form_data(attachments=[(io.BytesIO(PNG), "shot.png")]),
                           content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        ticket = Ticket.get(Ticket.title == "Cannot print invoices")
        path = stored_path(TicketAttachment.get(TicketAttachment.ticket == ticket.id).stored_name, "tickets")
        assert path.is_file()
        with pytest.raises(RuntimeError):
            with db.atomic():
                delete_with_files(ticket)
                raise RuntimeError("rolled back")
        assert path.is_file() and Ticket.get_or_none(Ticket.id == ticket.id)  # nothing deleted, file kept
        with db.atomic():
            delete_with_files(ticket)
            assert path.is_file()  # still there until the commit
        assert not path.exists()
