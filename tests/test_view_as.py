"""Staff "view as this contact": the portal as the contact sees it, read-only, audited, time-limited,
behind its own permission, leaving the contact's account and the staff session alone."""
from __future__ import annotations

import json
import re

import pytest
from conftest import login, staff_login
from werkzeug.routing.converters import NumberConverter

from crm_portal.db import db
from crm_portal.models import AuditEntry, Contact, StaffUser
from crm_portal.modules.documents.models import Document

ADMIN = "admin@example.com"
OPERATOR = "operatore@example.com"


def _contact(app, email: str) -> Contact:
    with app.app_context(), db.connection_context():
        return Contact.get(Contact.email == email)


def _set_staff(app, email: str, **values) -> None:
    with app.app_context(), db.connection_context():
        StaffUser.update(**values).where(StaffUser.email == email).execute()


def _set_contact(app, email: str, **values) -> None:
    with app.app_context(), db.connection_context():
        Contact.update(**values).where(Contact.email == email).execute()


def _start(client, app, email: str, staff: str = ADMIN):
    contact = _contact(app, email)
    staff_login(client, staff)
    response = client.post(f"/admin/view-as/{contact.id}/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    return contact


def _audit(app, action: str) -> list[AuditEntry]:
    with app.app_context(), db.connection_context():
        return list(AuditEntry.select().where(AuditEntry.action == action).order_by(AuditEntry.id))


def _row_counts(app) -> dict[str, int]:
    with app.app_context(), db.connection_context():
        return {t: db.execute_sql(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in db.get_tables()}


def _links(html: str, prefix: str) -> set[str]:
    return set(re.findall(rf'href="({re.escape(prefix)}\d+)"', html))


# --- what the staff member sees --------------------------------------------------------------------

def test_the_portal_is_the_contacts_own_menu_lists_and_records(app, demo):
    """Same menu, buttons, lists and records as the contact logged in themselves (own scope: Bruno)."""
    own = app.test_client()
    login(own, "bruno@acme.example")
    staff = app.test_client()
    _start(staff, app, "bruno@acme.example")
    for url in ("/", "/documents/?per_page=100", "/tickets/?per_page=100", "/quotes/?per_page=100"):
        theirs, ours = own.get(url), staff.get(url)
        assert theirs.status_code == ours.status_code == 200, url
        for prefix in ("/documents/", "/tickets/", "/quotes/"):
            assert _links(ours.text, prefix) == _links(theirs.text, prefix), url
        nav = re.compile(r'data-module="([a-z_]+)"')
        assert nav.findall(ours.text) == nav.findall(theirs.text)
    page = staff.get("/documents/?per_page=100").text
    assert "Rapporto intervento server" in page and "Verifica backup trimestrale" not in page
    assert 'data-testid="view-as-banner"' in page and "Bruno Bianchi" in page


def test_records_outside_the_contacts_scope_are_404(app, demo):
    client = app.test_client()
    _start(client, app, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        anna_doc = Document.get(Document.title == "Verifica backup trimestrale")
        own_doc = Document.get(Document.title == "Rapporto intervento server")
    assert client.get(f"/documents/{anna_doc.id}").status_code == 404
    assert client.get(f"/documents/{anna_doc.id}/download").status_code == 404
    response = client.get(f"/documents/{own_doc.id}/download")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    with app.app_context(), db.connection_context():  # a staff member's look is not the customer's download
        assert Document.get_by_id(own_doc.id).download_count == own_doc.download_count


def test_the_contacts_secret_calendar_address_is_not_shown(app, demo):
    from crm_portal.modules.deadlines.models import CalendarToken

    with app.app_context(), db.connection_context():
        token = CalendarToken.create(contact=Contact.get(Contact.email == "anna@acme.example"), token="s" * 40).token
    client = app.test_client()
    _start(client, app, "anna@acme.example")
    page = client.get("/deadlines/calendar")
    assert page.status_code == 200 and token not in page.text and 'data-testid="feed-url"' in page.text


def test_the_contacts_account_and_session_are_untouched(app, demo):
    own = app.test_client()
    login(own, "anna@acme.example")
    before = _contact(app, "anna@acme.example")
    staff = app.test_client()
    _start(staff, app, "anna@acme.example")
    assert staff.get("/").status_code == 200
    assert staff.post("/admin/view-as/stop").status_code == 302
    after = _contact(app, "anna@acme.example")
    assert (after.session_token, after.last_login, after.password_hash) == (
        before.session_token, before.last_login, before.password_hash)
    page = own.get("/")
    assert page.status_code == 200 and 'data-testid="view-as-banner"' not in page.text


def test_the_staff_admin_session_keeps_working_while_viewing(app, demo):
    client = app.test_client()
    contact = _start(client, app, "anna@acme.example")
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/core_contact/").status_code == 200
    assert 'data-testid="view-as-banner"' not in client.get(f"/admin/core_contact/edit/?id={contact.id}").text
    assert 'data-testid="view-as-banner"' in client.get("/").text


def test_a_contact_who_must_change_password_is_viewed_without_the_forced_change(app, demo):
    _set_contact(app, "anna@acme.example", must_change_password=True)
    client = app.test_client()
    _start(client, app, "anna@acme.example")
    assert client.get("/tickets/").status_code == 200


# --- read-only -------------------------------------------------------------------------------------

def _portal_post_urls(app) -> list[str]:
    """Every rule of the portal (not /admin) that accepts POST, with sample arguments."""
    adapter = app.url_map.bind("localhost")
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or ()) or rule.rule.startswith("/admin"):
            continue
        values = {arg: 1 if isinstance(rule._converters[arg], NumberConverter) else "it" for arg in rule.arguments}
        urls.append(adapter.build(rule.endpoint, values, method="POST"))
    return urls


def test_every_portal_post_is_refused_and_nothing_is_written(app, demo):
    urls = _portal_post_urls(app)
    assert "/tickets/new" in urls and "/logout" in urls and "/me" in urls  # the enumeration works
    client = app.test_client()
    _start(client, app, "anna@acme.example")
    before = _row_counts(app)
    for url in urls:
        response = client.post(url, data={"title": "x", "description": "y", "body": "z", "helpful": "1"})
        assert response.status_code == 403, url
        assert "da qui non si può modificare nulla" in response.text, url
    for method in ("put", "patch", "delete"):
        assert getattr(client, method)("/tickets/1").status_code == 403
    assert _row_counts(app) == before
    assert client.get("/").status_code == 200  # still viewing: a refused write does not end it


def test_what_staff_do_while_viewing_is_audited_as_theirs(app, demo):
    from crm_portal.audit import audit

    client = app.test_client()
    _start(client, app, "anna@acme.example")
    with app.test_request_context("/tickets/"), db.connection_context():
        from flask import session

        with client.session_transaction() as saved:
            session.update(saved)
        app.preprocess_request()
        from crm_portal import viewas

        assert viewas.is_active()  # the request runs as the contact
        entry = audit("looked-at")
    assert (entry.actor_type, entry.actor_label) == ("staff", ADMIN)


def test_the_refusal_is_translated(app, demo):
    client = app.test_client()
    _start(client, app, "anna@acme.example")  # Anna reads the portal in Italian
    response = client.post("/tickets/new", data={"title": "x"})
    assert response.status_code == 403 and "Sola lettura" in response.text


# --- start, leave, audit, time limit --------------------------------------------------------------

def test_start_and_leave_are_audited_and_leaving_ends_the_view(app, demo):
    client = app.test_client()
    contact = _start(client, app, "anna@acme.example")
    started = _audit(app, "view-as-started")
    assert len(started) == 1
    assert (started[0].actor_type, started[0].actor_label) == ("staff", ADMIN)
    assert (started[0].object_type, started[0].object_id) == ("core_contact", str(contact.id))
    response = client.post("/admin/view-as/stop")
    assert response.status_code == 302 and f"/admin/core_contact/edit/?id={contact.id}" in response.headers["Location"]
    ended = _audit(app, "view-as-ended")
    assert len(ended) == 1 and ended[0].actor_label == ADMIN and json.loads(ended[0].details)["reason"] == "left"
    # The browser is the staff member's again: the portal sends them to the admin.
    assert client.get("/").headers["Location"].endswith("/admin/")
    assert client.get("/tickets/").status_code == 404


def test_the_staff_logout_ends_the_view(app, demo):
    client = app.test_client()
    _start(client, app, "anna@acme.example")
    assert client.post("/admin/logout").status_code == 302
    assert json.loads(_audit(app, "view-as-ended")[0].details)["reason"] == "logout"
    assert client.get("/tickets/").status_code == 302  # to the login: nobody is logged in


def test_the_banner_leads_out(app, demo):
    client = app.test_client()
    _start(client, app, "anna@acme.example")
    page = client.get("/tickets/").text
    assert 'action="/admin/view-as/stop"' in page and 'data-testid="view-as-leave"' in page


def test_the_view_ends_after_the_time_limit(app, demo, frozen_clock):
    client = app.test_client()
    contact = _start(client, app, "anna@acme.example")
    frozen_clock.advance(minutes=app.config["VIEW_AS_MINUTES"] - 1)
    assert client.get("/tickets/").status_code == 200
    frozen_clock.advance(minutes=2)
    response = client.get("/tickets/")
    assert response.status_code == 302 and f"/admin/core_contact/edit/?id={contact.id}" in response.headers["Location"]
    assert json.loads(_audit(app, "view-as-ended")[0].details)["reason"] == "expired"
    assert client.get("/tickets/").status_code == 404


def test_withdrawing_the_permission_ends_a_running_view(app, demo):
    _set_staff(app, OPERATOR, can_view_as=True)
    client = app.test_client()
    _start(client, app, "anna@acme.example", staff=OPERATOR)
    assert client.get("/tickets/").status_code == 200
    _set_staff(app, OPERATOR, can_view_as=False)
    assert client.get("/tickets/").status_code == 302
    assert json.loads(_audit(app, "view-as-ended")[0].details)["reason"] == "permission"


def test_revoking_the_contacts_access_ends_a_running_view(app, demo):
    client = app.test_client()
    _start(client, app, "anna@acme.example")
    _set_contact(app, "anna@acme.example", portal_access=False)
    assert client.get("/tickets/").status_code == 302
    assert json.loads(_audit(app, "view-as-ended")[0].details)["reason"] == "contact"


# --- guards ---------------------------------------------------------------------------------------

def test_start_and_stop_need_the_csrf_token(app, demo):
    contact = _contact(app, "anna@acme.example")
    client = app.test_client()
    staff_login(client)
    assert client.post(f"/admin/view-as/{contact.id}/", csrf=False).status_code == 400
    assert client.get("/").headers["Location"].endswith("/admin/")  # not viewing
    assert _audit(app, "view-as-started") == []
    assert client.post(f"/admin/view-as/{contact.id}/").status_code == 302
    assert client.post("/admin/view-as/stop", csrf=False).status_code == 400
    assert client.get("/").status_code == 200  # still viewing
    assert _audit(app, "view-as-ended") == []


def test_an_operator_needs_the_permission(app, demo):
    contact = _contact(app, "anna@acme.example")
    client = app.test_client()
    staff_login(client, OPERATOR)
    assert client.get(f"/admin/view-as/{contact.id}/").status_code == 403
    assert client.post(f"/admin/view-as/{contact.id}/").status_code == 403
    assert "view-as" not in client.get("/admin/core_contact/").text
    assert client.get("/").headers["Location"].endswith("/admin/")
    assert _audit(app, "view-as-started") == []
    _set_staff(app, OPERATOR, can_view_as=True)
    assert client.get(f"/admin/view-as/{contact.id}/").status_code == 200
    assert client.post(f"/admin/view-as/{contact.id}/").status_code == 302
    assert 'data-testid="view-as-banner"' in client.get("/").text
    # Operators have no contacts editor: leaving brings them to the admin home.
    assert client.post("/admin/view-as/stop").headers["Location"].endswith("/admin/")


def test_admins_give_the_permission_in_the_staff_editor(app, demo):
    with app.app_context(), db.connection_context():
        operator = StaffUser.get(StaffUser.email == OPERATOR)
    admin = app.test_client()
    staff_login(admin)
    form = admin.get(f"/admin/core_staff/edit/?id={operator.id}").text
    assert 'name="can_view_as"' in form
    data = {"name": operator.name, "email": operator.email, "role": operator.role, "active": "y", "language": ""}
    assert admin.post(f"/admin/core_staff/edit/?id={operator.id}", data={**data, "can_view_as": "y"}).status_code == 302
    with app.app_context(), db.connection_context():
        assert StaffUser.get_by_id(operator.id).may_view_as
    # An operator cannot give it to themselves: the staff editor is the admins'.
    own = app.test_client()
    staff_login(own, OPERATOR)
    assert own.post(f"/admin/core_staff/edit/?id={operator.id}", data={**data, "can_view_as": "y"}).status_code == 403


def test_admins_may_by_their_role_and_see_the_entry_points(app, demo):
    contact = _contact(app, "anna@acme.example")
    client = app.test_client()
    staff_login(client)
    assert f"/admin/view-as/{contact.id}/" in client.get("/admin/core_contact/?per_page=100").text
    assert 'data-testid="view-as-link"' in client.get(f"/admin/core_contact/edit/?id={contact.id}").text
    page = client.get(f"/admin/view-as/{contact.id}/")
    assert page.status_code == 200 and 'data-testid="view-as-start"' in page.text


def test_contacts_and_visitors_never_reach_it(app, demo):
    contact = _contact(app, "anna@acme.example")
    client = app.test_client()
    assert client.get(f"/admin/view-as/{contact.id}/").status_code == 302  # to the staff login
    login(client, "bruno@acme.example")
    assert client.get(f"/admin/view-as/{contact.id}/").status_code == 404
    assert client.post(f"/admin/view-as/{contact.id}/").status_code == 404


@pytest.mark.parametrize("change, words", [
    ({"portal_access": False}, "no portal access"),
    ({"profile": None}, "no portal profile"),
])
def test_a_contact_without_portal_or_profile_gets_a_clear_message(app, demo, change, words):
    _set_contact(app, "anna@acme.example", **change)
    _set_staff(app, ADMIN, language="en")
    contact = _contact(app, "anna@acme.example")
    client = app.test_client()
    staff_login(client)
    page = client.get(f"/admin/view-as/{contact.id}/")
    assert page.status_code == 200 and words in page.text and 'data-testid="view-as-start"' not in page.text
    response = client.post(f"/admin/view-as/{contact.id}/")
    assert response.status_code == 400 and words in response.text
    assert _audit(app, "view-as-started") == []
    assert client.get("/").headers["Location"].endswith("/admin/")


def test_unknown_contacts_are_404(app, demo):
    client = app.test_client()
    staff_login(client)
    assert client.get("/admin/view-as/999999/").status_code == 404
    assert client.get(f"/admin/view-as/{2**40}/").status_code == 404


def test_a_session_of_another_staff_member_does_not_carry_the_view(app, demo):
    client = app.test_client()
    _start(client, app, "anna@acme.example")
    with client.session_transaction() as session:
        session["view_as"] = {**session["view_as"], "staff": 9999}
    assert client.get("/").headers["Location"].endswith("/admin/")


def test_the_core_schema_step_adds_the_permission_column(app):
    from crm_portal.migrations import upgrade
    from crm_portal.models import MigrationHistory

    with app.app_context(), db.connection_context():
        db.execute_sql("ALTER TABLE core_staff_user DROP COLUMN can_view_as")
        MigrationHistory.delete().where((MigrationHistory.module == "core")
                                        & (MigrationHistory.name == "0006_staff_view_as")).execute()
        assert "core: applied 0006_staff_view_as" in upgrade(app.extensions["crm_portal"])
        assert "can_view_as" in {c.name for c in db.get_columns("core_staff_user")}


def test_opening_a_ticket_while_viewing_leaves_the_contacts_news_unread(app, demo):
    from crm_portal.modules.tickets.models import Ticket, TicketRead

    with app.app_context(), db.connection_context():
        anna = Contact.get(Contact.email == "anna@acme.example")
        ticket = Ticket.select().where(Ticket.contact == anna.id).order_by(Ticket.id).first()
        Ticket.update(news_seq=Ticket.news_seq + 5).where(Ticket.id == ticket.id).execute()
        reads = TicketRead.select().where(TicketRead.contact == anna.id).count()
    staff = app.test_client()
    _start(staff, app, "anna@acme.example")
    page = staff.get(f"/tickets/{ticket.id}")
    assert page.status_code == 200
    with app.app_context(), db.connection_context():
        assert TicketRead.select().where(TicketRead.contact == anna.id).count() == reads
        seen = TicketRead.get_or_none((TicketRead.contact == anna.id) & (TicketRead.ticket == ticket.id))
        assert seen is None or seen.seen_seq < Ticket.get_by_id(ticket.id).news_seq
