"""Tickets opened by staff for a customer (phone, email) from the admin's ticket queue: the same
steps and form as the customer's wizard, marked as opened by staff, audited, emailed to the contact
and visible in their portal; bad input writes nothing."""
from __future__ import annotations

import io
import re

import pytest
from conftest import login, staff_login

from crm_portal.db import db
from crm_portal.models import AuditEntry, Contact, OutboxMessage, StaffUser
from crm_portal.modules.tickets import workflow
from crm_portal.modules.tickets.models import Ticket, TicketAttachment, TicketHistory, TicketQuestion

NEW = "/admin/tickets_queue/new/"
OPERATOR = "operatore@example.com"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def queue(app, demo):
    """The demo data without tickets or queued email."""
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        Ticket.delete().execute()
        OutboxMessage.delete().execute()
    return demo


def _contact(app, email: str) -> Contact:
    with app.app_context(), db.connection_context():
        return Contact.get(Contact.email == email)


def _form(**extra):
    data = {"title": "Printer offline", "description": "Called by phone: the printer is offline.",
            "type": "problem", "category": "1", "priority": "urgent", "severity": "blocking"}
    data.update(extra)
    return data


def _form_url(client, contact_id: int) -> str:
    """Walk the service steps (the contact's services, when they have any) to the form's URL."""
    url = f"{NEW}?contact={contact_id}"
    for _ in range(3):
        page = client.get(url)
        assert page.status_code == 200
        if 'data-testid="new-ticket-form"' in page.text:
            return url
        links = re.findall(r'href="(/admin/tickets_queue/new/\?contact=[^"]+service=[^"]+)"', page.text)
        assert links, "a step without choices"
        url = links[0].replace("&amp;", "&")
    raise AssertionError("no form after the service steps")


def _nothing_written(app) -> None:
    with app.app_context(), db.connection_context():
        assert Ticket.select().count() == 0
        assert OutboxMessage.select().count() == 0
        assert AuditEntry.select().where(AuditEntry.action == "ticket-opened-for-contact").count() == 0


@pytest.mark.parametrize("staff_email", [OPERATOR, "admin@example.com"])
def test_staff_open_a_ticket_the_contact_is_told_of_and_sees(app, queue, staff_email):
    bruno = _contact(app, "bruno@acme.example")
    client = app.test_client()
    staff_login(client, staff_email)
    response = client.post(_form_url(client, bruno.id), data=_form())
    assert response.status_code == 302 and "/admin/tickets_queue/work/" in response.headers["Location"]
    with app.app_context(), db.connection_context():
        ticket = Ticket.get()
        staff = StaffUser.get(StaffUser.email == staff_email)
        assert (ticket.contact_id, ticket.company_id, ticket.opened_by_staff_id) == (bruno.id, bruno.company_id,
                                                                                     staff.id)
        assert (ticket.title, ticket.priority, ticket.status) == ("Printer offline", "urgent", "open")
        history = TicketHistory.get(TicketHistory.ticket == ticket.id)
        assert (history.actor_type, history.actor_name) == ("staff", staff.name)
        emails = list(OutboxMessage.select().where(OutboxMessage.template == "tickets_created"))
        assert [e.to_address for e in emails] == ["bruno@acme.example"]
        assert "assistenza ha aperto questa richiesta" in emails[0].body_text  # Bruno reads Italian
        entry = AuditEntry.get(AuditEntry.action == "ticket-opened-for-contact")
        assert (entry.actor_label, entry.object_id) == (staff_email, str(ticket.id))
    work = client.get(response.headers["Location"])
    assert 'data-testid="opened-by-staff"' in work.text and staff.name in work.text
    # Admins may view the portal as the requester; an operator needs the permission first.
    assert (f'href="/admin/view-as/{bruno.id}/"' in work.text) == (staff.role == "admin")
    customer = app.test_client()
    login(customer, "bruno@acme.example")
    assert ticket.number in customer.get("/tickets/").text
    assert customer.get(f"/tickets/{ticket.id}").status_code == 200


def test_a_customer_opened_ticket_is_not_marked(app, queue):
    with app.app_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        with db.atomic():
            ticket = workflow.create_ticket(workflow.Actor.customer(bruno), bruno, title="t", description="d")
        assert ticket.opened_by_staff_id is None
    client = app.test_client()
    staff_login(client)
    assert 'data-testid="opened-by-staff"' not in client.get(f"/admin/tickets_queue/work/{ticket.id}/").text


def test_the_service_steps_and_guided_questions_are_the_contacts(app, queue):
    anna = _contact(app, "anna@acme.example")  # company profile: Acme's services
    client = app.test_client()
    staff_login(client, OPERATOR)
    page = client.get(f"{NEW}?contact={anna.id}")
    assert 'data-testid="service-choices"' in page.text and "Assistenza sistemistica" in page.text
    assert "Help desk" not in page.text  # Globex's
    url = _form_url(client, anna.id)
    service_id = int(re.search(r"service=(\d+)", url).group(1))
    with app.app_context(), db.connection_context():
        TicketQuestion.create(service_id=service_id, label_en="Which server?", label_it="Quale server?",
                              required=True, active=True)
    page = client.get(url)
    assert "Which server?" in page.text or "Quale server?" in page.text
    missing = client.post(url, data=_form())
    assert missing.status_code == 400
    _nothing_written(app)
    question = re.search(r'name="(q_\d+)"', page.text).group(1)
    done = client.post(url, data=_form(**{question: "srv-01"}))
    assert done.status_code == 302
    with app.app_context(), db.connection_context():
        ticket = Ticket.get()
        assert ticket.service_id == service_id and ticket.service_name
        assert ticket.answer_list[0]["answer"] == "srv-01"


def test_a_service_or_subcategory_not_offered_is_refused(app, queue):
    anna, carla = _contact(app, "anna@acme.example"), _contact(app, "carla@globex.example")
    client = app.test_client()
    staff_login(client, OPERATOR)
    globex_url = _form_url(client, carla.id)
    globex_service = re.search(r"service=(\d+)", globex_url).group(1)
    acme_url = _form_url(client, anna.id)
    acme_service = re.search(r"service=(\d+)", acme_url).group(1)
    for query in (f"service={globex_service}", "service=999999", f"service={2**40}", "service=x",
                  f"service=0{acme_service}&sub=999999", f"service={acme_service}&sub=abc"):
        response = client.post(f"{NEW}?contact={anna.id}&{query}", data=_form())
        assert response.status_code == 400 and 'data-testid="new-ticket-error"' in response.text, query
    _nothing_written(app)


def test_a_contact_without_portal_access_can_have_a_ticket(app, queue):
    with app.app_context(), db.connection_context():
        Contact.update(portal_access=False, profile=None).where(Contact.email == "dario@globex.example").execute()
    dario = _contact(app, "dario@globex.example")
    client = app.test_client()
    staff_login(client, OPERATOR)
    assert client.post(_form_url(client, dario.id), data=_form()).status_code == 302
    with app.app_context(), db.connection_context():
        assert Ticket.get().contact_id == dario.id
        assert OutboxMessage.select().where(OutboxMessage.to_address == "dario@globex.example").count() == 1


@pytest.mark.parametrize("raw", ["999999", str(2**31), str(2**40), "abc", "-1", ""])
def test_unknown_or_impossible_contacts_are_form_errors(app, queue, raw):
    client = app.test_client()
    staff_login(client, OPERATOR)
    assert client.get(f"{NEW}?contact={raw}").status_code == 400
    response = client.post(f"{NEW}?contact={raw}", data=_form())
    assert response.status_code == 400 and 'data-testid="new-ticket-error"' in response.text
    _nothing_written(app)


def test_a_contact_without_company_is_a_form_error(app, queue):
    with app.app_context(), db.connection_context():
        Contact.update(company=None).where(Contact.email == "fabio@umbrella.example").execute()
    fabio = _contact(app, "fabio@umbrella.example")
    client = app.test_client()
    staff_login(client, OPERATOR)
    response = client.post(f"{NEW}?contact={fabio.id}", data=_form())
    assert response.status_code == 400 and "Fabio Marino" in response.text
    _nothing_written(app)


@pytest.mark.parametrize("change", [{"title": ""}, {"description": " "}, {"category": "999"}, {"priority": "x"},
                                    {"category": ""}])
def test_missing_or_wrong_fields_write_nothing(app, queue, change):
    bruno = _contact(app, "bruno@acme.example")
    client = app.test_client()
    staff_login(client, OPERATOR)
    response = client.post(_form_url(client, bruno.id), data=_form(**change))
    assert response.status_code == 400 and 'data-testid="new-ticket-form"' in response.text
    _nothing_written(app)


def test_attachments_follow_the_upload_rules(app, queue, tmp_path):
    app.config["UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    bruno = _contact(app, "bruno@acme.example")
    client = app.test_client()
    staff_login(client, OPERATOR)
    url = _form_url(client, bruno.id)
    exe = (io.BytesIO(b"MZ\x90\x00\x03" + b"\x00" * 50), "x.pdf")
    refused = client.post(url, data=_form(attachments=[exe]), content_type="multipart/form-data")
    assert refused.status_code == 415 and 'data-testid="upload-error"' in refused.text
    _nothing_written(app)
    stored = [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()] if (tmp_path / "uploads").exists() else []
    assert stored == []
    ok = client.post(url, data=_form(attachments=[(io.BytesIO(PNG), "screen.png")]), content_type="multipart/form-data")
    assert ok.status_code == 302
    with app.app_context(), db.connection_context():
        attachment = TicketAttachment.get()
        assert (attachment.original_name, attachment.author_contact_id) == ("screen.png", None)


def test_the_new_ticket_form_needs_the_csrf_token(app, queue):
    bruno = _contact(app, "bruno@acme.example")
    client = app.test_client()
    staff_login(client, OPERATOR)
    assert client.post(_form_url(client, bruno.id), data=_form(), csrf=False).status_code == 400
    _nothing_written(app)


def test_only_staff_reach_the_page(app, queue):
    bruno = _contact(app, "bruno@acme.example")
    client = app.test_client()
    assert client.get(NEW).status_code == 302  # to the staff login
    assert client.post(f"{NEW}?contact={bruno.id}", data=_form()).status_code == 302
    login(client, "bruno@acme.example")
    assert client.get(NEW).status_code == 404
    assert client.post(f"{NEW}?contact={bruno.id}", data=_form()).status_code == 404
    _nothing_written(app)


def test_the_contact_picker_searches(app, queue, queries):
    client = app.test_client()
    staff_login(client, OPERATOR)
    page = client.get(f"{NEW}?q=globex")
    assert page.status_code == 200 and "carla@globex.example" in page.text and "anna@acme.example" not in page.text
    assert "anna@acme.example" in client.get(f"{NEW}?q=Anna Rossi").text
    assert 'href="/admin/tickets_queue/new/?' in client.get("/admin/tickets_queue/").text  # the queue's Create
    with queries:
        client.get(NEW)
    few = queries.count
    with app.app_context(), db.connection_context():
        acme = Contact.get(Contact.email == "anna@acme.example").company_id
        for i in range(20):
            Contact.create(first_name=f"N{i}", last_name="X", email=f"n{i}@acme.example", company=acme)
    with queries:
        client.get(NEW)
    assert queries.count == few  # one query for the list, whatever its length


def test_the_schema_step_adds_the_column(app):
    from playhouse.migrate import SchemaMigrator, SqliteMigrator, migrate

    from crm_portal.migrations import upgrade
    from crm_portal.models import MigrationHistory

    with app.app_context(), db.connection_context():
        # The table as it was before the step (SQLite rebuilds it: the column is in a foreign key).
        migrator = SchemaMigrator.from_database(db.obj)
        extra = {"legacy": True} if isinstance(migrator, SqliteMigrator) else {}
        migrate(migrator.drop_column("tickets_ticket", "opened_by_staff_id", **extra))
        MigrationHistory.delete().where((MigrationHistory.module == "tickets")
                                        & (MigrationHistory.name == "0005_opened_by_staff")).execute()
        assert "tickets: applied 0005_opened_by_staff" in upgrade(app.extensions["crm_portal"])
        assert "opened_by_staff_id" in {c.name for c in db.get_columns("tickets_ticket")}


def test_the_mapped_category_files_staff_opened_tickets_as_the_wizard_does(app, queue):
    """The staff's page offers what the customer's wizard offers: a service (or sub-category) the
    admins mapped to a category files the ticket there, whatever is posted; without a mapping the
    category starts empty and must be chosen."""
    from crm_portal.modules.services.models import Service, ServiceSubcategory
    from crm_portal.modules.tickets.models import TicketCategory

    bruno = _contact(app, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        cats = {c.key: c for c in TicketCategory.select()}
        service = Service.select().where(Service.company == bruno.company_id).order_by(Service.id).first()
        Service.update(ticket_category_id=cats["accounting"].id).where(Service.id == service.id).execute()
        ServiceSubcategory.update(ticket_category_id=None).where(ServiceSubcategory.service == service.id).execute()
    client = app.test_client()
    staff_login(client, OPERATOR)
    url = f"{NEW}?contact={bruno.id}&service={service.id}"
    page = client.get(url).text
    if 'data-testid="new-ticket-form"' not in page:  # the service has sub-categories: take the first
        url = re.findall(r'href="(/admin/tickets_queue/new/\?contact=[^"]+sub=[^"]+)"', page)[0].replace("&amp;", "&")
        page = client.get(url).text
    options = re.findall(r'<option[^>]*value="(\d+)"', page[page.index('id="category"'):].split("</select>")[0])
    assert options == [str(cats["accounting"].id)]
    assert client.post(url, data=_form(category=str(cats["other"].id))).status_code == 302
    with app.app_context(), db.connection_context():
        assert Ticket.get().category_id == cats["accounting"].id
        Service.update(ticket_category_id=None).where(Service.id == service.id).execute()
    page = client.get(url).text
    assert re.search(r'<option[^>]*value=""', page)  # no mapping: nothing chosen for the operator
    assert client.post(url, data=_form(title="No category", category="")).status_code == 400
