"""Tickets, customer side: the category derived from the service, withdrawing a ticket, the list
views behind the dashboard counters, news markers, long conversations a page at a time, sorting
by the workflow's order and the closed date's label."""
from __future__ import annotations

import re

import pytest
from conftest import login, staff_login

from crm_portal.db import db
from crm_portal.models import Contact, ProfileModule, StaffUser
from crm_portal.modules.services import Service, ServiceSubcategory
from crm_portal.modules.tickets import workflow
from crm_portal.modules.tickets.models import (
    Ticket,
    TicketCategory,
    TicketComment,
    TicketHistory,
    TicketRead,
    TicketState,
    TicketTransition,
)


def contact(email: str) -> Contact:
    return Contact.get(Contact.email == email)


def operator() -> StaffUser:
    return StaffUser.get(StaffUser.email == "operatore@example.com")


def new_ticket(app, email: str = "bruno@acme.example", title: str = "Printer broken",
               type_: str = "question") -> Ticket:
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        person = contact(email)
        with db.atomic():
            return workflow.create_ticket(workflow.Actor.customer(person), person, title=title,
                                          description="It does not print.", type=type_)


def fresh(app, ticket: Ticket) -> Ticket:
    with app.app_context(), db.connection_context():
        return Ticket.get_by_id(ticket.id)


def staff_does(app, ticket: Ticket, *, reply: str | None = None, state: str | None = None,
               internal: str | None = None) -> None:
    """An operator's public reply, internal note and/or state change, as the work page makes them."""
    with app.app_context(), db.connection_context():
        row = Ticket.get_by_id(ticket.id)
        actor = workflow.Actor.for_staff(operator())
        with db.atomic():
            if reply:
                workflow.add_comment(row, actor, reply, "public")
            if internal:
                workflow.add_comment(row, actor, internal, "internal")
            if state:
                workflow.change_state(row, state, actor)


def set_actions(email: str, actions: str, scope: str | None = None) -> None:
    person = contact(email)
    values = {"actions": actions} | ({"scope": scope} if scope else {})
    ProfileModule.update(values).where((ProfileModule.profile == person.profile_id)
                                       & (ProfileModule.module == "tickets")).execute()


def row_of(listing: str, number: str) -> str:
    found = re.search(rf'<tr[^>]*data-ticket="{number}".*?</tr>', listing, re.S)
    assert found, f"{number} not in the list"
    return found.group(0)


# --- the category comes from the service or from the customer ---------------------------------
def wizard_form_url(client, service: str, sub: str) -> str:
    page = client.get("/tickets/new").text
    service_url = re.search(rf'href="(/tickets/new\?service=\d+)">{re.escape(service)}<', page).group(1)
    page = client.get(service_url).text
    return re.search(rf'href="(/tickets/new\?service=\d+&amp;sub=\d+)">{re.escape(sub)}<', page).group(1) \
        .replace("&amp;", "&")


def ticket_form(**extra: str) -> dict[str, str]:
    return {"title": "Cedolino errato", "description": "Il netto non torna.", "type": "problem",
            "priority": "medium", "severity": "non_blocking", **extra}


def test_without_a_mapping_the_customer_must_choose_the_category(app, demo, client):
    login(client, "bruno@acme.example")
    url = wizard_form_url(client, "Assistenza gestionale", "Paghe")
    page = client.get(url).text
    select = re.search(r'<select[^>]*id="category".*?</select>', page, re.S).group(0)
    first = re.findall(r"<option[^>]*>", select)[0]
    assert 'value=""' in first and "selected" in first  # an empty choice, chosen: no silent "Paghe"
    assert 'data-testid="mapped-category"' not in page
    refused = client.post(url, data=ticket_form())
    assert refused.status_code == 400 and "Scegli una categoria." in refused.text  # bruno reads Italian
    with app.app_context(), db.connection_context():
        assert Ticket.select().where(Ticket.title == "Cedolino errato").count() == 0
        attendance = TicketCategory.get(TicketCategory.key == "attendance")
    assert client.post(url, data=ticket_form(category=str(attendance.id))).status_code == 302
    with app.app_context(), db.connection_context():
        assert Ticket.get(Ticket.title == "Cedolino errato").category_id == attendance.id


def test_the_service_and_its_sub_category_decide_the_category(app, demo, client):
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        cats = {c.key: c for c in TicketCategory.select()}
        service = Service.get(Service.name == "Assistenza gestionale")
        Service.update(ticket_category_id=cats["accounting"].id).where(Service.id == service.id).execute()
        ServiceSubcategory.update(ticket_category_id=cats["payroll"].id).where(
            (ServiceSubcategory.service == service.id) & (ServiceSubcategory.name == "Paghe")).execute()
    login(client, "bruno@acme.example")
    payroll_url = wizard_form_url(client, "Assistenza gestionale", "Paghe")
    page = client.get(payroll_url).text
    assert re.search(r'data-testid="mapped-category">.*?<strong>Paghe</strong>', page, re.S)
    assert '<select class="form-select" id="category"' not in page
    # Another category sent by hand changes nothing: the mapping decides.
    assert client.post(payroll_url, data=ticket_form(title="A", category=str(cats["other"].id))).status_code == 302
    # A sub-category without its own mapping takes the service's.
    stock_url = wizard_form_url(client, "Assistenza gestionale", "Magazzino")
    assert "<strong>Contabilità</strong>" in client.get(stock_url).text
    assert client.post(stock_url, data=ticket_form(title="B")).status_code == 302
    with app.app_context(), db.connection_context():
        assert Ticket.get(Ticket.title == "A").category_id == cats["payroll"].id
        assert Ticket.get(Ticket.title == "B").category_id == cats["accounting"].id
        # A mapped category that was deactivated is no mapping: the customer chooses again.
        TicketCategory.update(active=False).where(TicketCategory.id == cats["accounting"].id).execute()
    page = client.get(stock_url).text
    assert 'data-testid="mapped-category"' not in page and 'id="category"' in page


def test_admins_map_services_and_sub_categories_in_the_services_admin(app, demo, client):
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        cats = {c.key: c.id for c in TicketCategory.select()}
    staff_login(client, "admin@example.com")
    page = client.get("/admin/services_service/new/").text
    assert 'name="ticket_category_id"' in page and 'name="subcategories-0-ticket_category_id"' not in page
    assert re.search(rf'<option value="{cats["payroll"]}">Payroll</option>', page)
    acme = demo["companies"]["acme"]
    form = {"company": str(acme.id), "name": "Paghe in outsourcing", "description": "", "contract_reference": "",
            "start_date": "", "end_date": "", "contracted_hours": "1", "used_hours": "0", "active": "y",
            "position": "0", "ticket_category_id": str(cats["accounting"]),
            "subcategories-0-id": "", "subcategories-0-name": "Cedolini", "subcategories-0-position": "0",
            "subcategories-0-ticket_category_id": str(cats["payroll"]),
            "subcategories-1-id": "", "subcategories-1-name": "Varie", "subcategories-1-position": "1",
            "subcategories-1-ticket_category_id": ""}
    response = client.post("/admin/services_service/new/", data=form)
    assert response.status_code == 302, response.text[:3000]
    with app.app_context(), db.connection_context():
        service = Service.get(Service.name == "Paghe in outsourcing")
        assert service.ticket_category_id == cats["accounting"]
        subs = {s.name: s.ticket_category_id for s in service.subcategories}
        assert subs == {"Cedolini": cats["payroll"], "Varie": None}


# --- withdrawing -------------------------------------------------------------------------------
def test_a_customer_withdraws_an_open_ticket_with_a_reason(app, demo, client):
    ticket = new_ticket(app)
    login(client, "bruno@acme.example")
    page = client.get(f"/tickets/{ticket.id}").text
    assert 'data-testid="withdraw-ticket"' in page
    response = client.post(f"/tickets/{ticket.id}/withdraw", data={"reason": "Solved it: the toner was empty."})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        row = Ticket.get_by_id(ticket.id)
        assert row.status == "closed" and row.closed_at is not None and row.rating is None
        last = TicketHistory.select().where(TicketHistory.ticket == ticket.id).order_by(TicketHistory.id.desc()).get()
        assert (last.from_state, last.to_state, last.actor_type) == ("open", "closed", "customer")
        assert last.note == "Solved it: the toner was empty." and last.actor_name == "Bruno Bianchi"
    page = client.get(f"/tickets/{ticket.id}").text
    assert "Solved it: the toner was empty." in page and 'data-testid="withdraw-ticket"' not in page
    # Staff read the reason on the work page.
    staff = app.test_client()
    staff_login(staff, "operatore@example.com")
    work = staff.get(f"/admin/tickets_queue/work/{ticket.id}/").text
    assert re.search(r'data-testid="history-note">[^<]*Solved it: the toner was empty\.', work)
    # Withdrawing again: a clear refusal, nothing more written.
    again = client.post(f"/tickets/{ticket.id}/withdraw", data={"reason": "twice"})
    assert again.status_code == 409 and "Questa richiesta è già chiusa." in again.text
    with app.app_context(), db.connection_context():
        assert TicketHistory.select().where(TicketHistory.ticket == ticket.id).count() == 2


def test_withdrawing_without_a_reason_and_while_support_works_on_it(app, demo, client):
    ticket = new_ticket(app, type_="problem")
    staff_does(app, ticket, state="waiting_support")
    staff_does(app, ticket, state="in_progress")
    login(client, "bruno@acme.example")
    too_long = client.post(f"/tickets/{ticket.id}/withdraw", data={"reason": "x" * 20001})
    assert too_long.status_code == 400 and "Il motivo è troppo lungo." in too_long.text
    assert fresh(app, ticket).status == "in_progress"
    assert client.post(f"/tickets/{ticket.id}/withdraw", data={}).status_code == 302
    with app.app_context(), db.connection_context():
        assert Ticket.get_by_id(ticket.id).status == "closed"
        last = TicketHistory.select().where(TicketHistory.ticket == ticket.id).order_by(TicketHistory.id.desc()).get()
        assert (last.from_state, last.note) == ("in_progress", None)


def test_withdraw_guards(app, demo, client):
    ticket = new_ticket(app)
    url = f"/tickets/{ticket.id}/withdraw"
    # Another company's customer: the ticket does not exist for them.
    login(client, "carla@globex.example")
    assert client.post(url, data={"reason": "x"}).status_code == 404
    # Without a CSRF token: refused.
    owner = app.test_client()
    login(owner, "bruno@acme.example")
    assert owner.post(url, data={"reason": "x"}, csrf=False).status_code == 400
    assert fresh(app, ticket).status == "open"
    # A colleague who may read the company's tickets but not act on others' (no comment_others).
    anna = app.test_client()
    login(anna, "anna@acme.example")
    with app.app_context(), db.connection_context():
        set_actions("anna@acme.example", "view,create,comment,close,export", scope="company")
    assert anna.post(url, data={"reason": "x"}).status_code == 403
    # The owner without the profile's "close" action.
    with app.app_context(), db.connection_context():
        set_actions("bruno@acme.example", "view,create,comment,export")
    bruno = app.test_client()
    login(bruno, "bruno@acme.example")
    assert 'data-testid="withdraw-ticket"' not in bruno.get(f"/tickets/{ticket.id}").text
    assert bruno.post(url, data={"reason": "x"}).status_code == 403
    with app.app_context(), db.connection_context():
        assert Ticket.get_by_id(ticket.id).status == "open"
        assert TicketHistory.select().where(TicketHistory.ticket == ticket.id).count() == 1


def test_a_resolved_ticket_is_closed_with_a_rating_not_withdrawn(app, demo, client):
    ticket = new_ticket(app)
    staff_does(app, ticket, state="waiting_support")
    staff_does(app, ticket, state="resolved")
    login(client, "bruno@acme.example")
    assert 'data-testid="withdraw-ticket"' not in client.get(f"/tickets/{ticket.id}").text
    refused = client.post(f"/tickets/{ticket.id}/withdraw", data={})
    assert refused.status_code == 409 and "non può essere ritirata" in refused.text
    assert fresh(app, ticket).status == "resolved"


def test_a_withdrawal_based_on_a_stale_copy_changes_nothing(app, demo):
    ticket = new_ticket(app)
    stale = fresh(app, ticket)
    staff_does(app, ticket, state="waiting_support")
    with app.app_context(), db.connection_context():
        with pytest.raises(workflow.TicketChanged), db.atomic():
            workflow.withdraw(stale, workflow.Actor.customer(contact("bruno@acme.example")), "late")
        assert Ticket.get_by_id(ticket.id).status == "waiting_support"


def test_the_migration_step_adds_the_withdraw_transitions_once(app, demo):
    from playhouse.migrate import SchemaMigrator, migrate

    from crm_portal.modules.tickets.migrations import customer_withdraw

    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        closed = TicketState.get(TicketState.key == "closed")
        withdraw_rows = ((TicketTransition.actor == "customer") & (TicketTransition.to_state == closed.id)
                         & (TicketTransition.from_state != TicketState.get(TicketState.key == "resolved").id))
        assert TicketTransition.select().where(withdraw_rows).count() == len(workflow.WITHDRAWABLE)
        TicketTransition.delete().where(withdraw_rows).execute()  # an installation seeded before
        for _ in range(2):
            with db.atomic():
                migrate(*customer_withdraw(SchemaMigrator.from_database(db.obj)))
            assert TicketTransition.select().where(withdraw_rows).count() == len(workflow.WITHDRAWABLE)


# --- the dashboard's counters open the list they count -----------------------------------------
def test_counters_link_to_the_filtered_list_which_keeps_its_filter(app, demo, client):
    waiting = new_ticket(app, title="Needs an answer")
    staff_does(app, waiting, state="waiting_customer")
    resolved = new_ticket(app, title="Fixed, please confirm")
    staff_does(app, resolved, state="waiting_support")
    staff_does(app, resolved, state="resolved")
    new_ticket(app, title="Still open")
    login(client, "bruno@acme.example")
    dashboard = client.get("/").text
    links = dict(re.findall(r'href="([^"]+)" data-testid="(count-\w+)-link"', dashboard))
    by_counter = {v: k.replace("&amp;", "&") for k, v in links.items()}
    assert by_counter["count-waiting"] == "/tickets/?state=waiting"
    assert by_counter["count-resolved"] == "/tickets/?state=resolved"
    to_confirm = client.get(by_counter["count-resolved"]).text
    assert "Fixed, please confirm" in to_confirm
    assert "Needs an answer" not in to_confirm and "Still open" not in to_confirm
    answer = client.get(by_counter["count-waiting"]).text
    assert "Needs an answer" in answer and "Fixed, please confirm" not in answer
    count = int(re.search(r'data-testid="count-resolved">(\d+)<', dashboard).group(1))
    assert count == len(re.findall(r"<tr[^>]*data-ticket=", to_confirm))
    # The filter survives sorting and paging: every sort and page link keeps it.
    for _ in range(3):
        extra = new_ticket(app, title="Another fix")
        staff_does(app, extra, state="waiting_support")
        staff_does(app, extra, state="resolved")
    page = client.get("/tickets/?state=resolved&per_page=10&sort=title&dir=asc").text
    table_and_pager = page.split('data-testid="record-list"')[1]
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="(/tickets/\?[^"]+)"', table_and_pager)]
    assert hrefs and all("state=resolved" in h for h in hrefs if "sort=" in h or "page=" in h)
    sorted_page = client.get("/tickets/?state=resolved&sort=title&dir=desc").text
    assert "Still open" not in sorted_page and "Needs an answer" not in sorted_page
    # Company scope: the counters count the user's own tickets, so their links show only theirs.
    anna = app.test_client()
    login(anna, "anna@acme.example")
    assert 'href="/tickets/?show=mine&amp;state=resolved"' in anna.get("/").text


# --- news since the contact last opened the ticket ---------------------------------------------
def test_news_markers_per_contact(app, demo, client):
    ticket = new_ticket(app, title="Marker test")
    number = ticket.number
    login(client, "bruno@acme.example")
    assert 'data-testid="unread"' not in row_of(client.get("/tickets/").text, number)  # their own new ticket

    # The customer's own comment is no news for anyone; an internal note is none either.
    assert client.post(f"/tickets/{ticket.id}/comment", data={"body": "More details"}).status_code == 302
    staff_does(app, ticket, internal="Looks like the driver")
    assert 'data-testid="unread"' not in row_of(client.get("/tickets/").text, number)

    # Support's public reply is.
    staff_does(app, ticket, reply="Which model?")
    listing = client.get("/tickets/").text
    row = row_of(listing, number)
    assert 'data-testid="unread"' in row
    assert re.search(r'visually-hidden">Novità dall[^<]*ultima apertura<', row)  # the marker's text
    assert int(re.search(r'data-testid="count-unread">(\d+)<', client.get("/").text).group(1)) >= 1
    unread_only = client.get("/tickets/?unread=1").text
    assert number in unread_only

    # Opening the ticket reads it.
    client.get(f"/tickets/{ticket.id}")
    assert 'data-testid="unread"' not in row_of(client.get("/tickets/").text, number)
    assert number not in client.get("/tickets/?unread=1").text

    # A colleague has their own read state: the reply is news for Anna until she opens it.
    anna = app.test_client()
    login(anna, "anna@acme.example")
    assert 'data-testid="unread"' in row_of(anna.get("/tickets/").text, number)

    # A state change is news; the change a customer makes is not news for them.
    staff_does(app, ticket, state="waiting_support")
    assert 'data-testid="unread"' in row_of(client.get("/tickets/").text, number)
    client.get(f"/tickets/{ticket.id}")
    staff_does(app, ticket, state="waiting_customer")
    client.get(f"/tickets/{ticket.id}")
    client.post(f"/tickets/{ticket.id}/comment", data={"body": "Model X200"})  # back to support
    with app.app_context(), db.connection_context():
        assert Ticket.get_by_id(ticket.id).status == "waiting_support"
    assert 'data-testid="unread"' not in row_of(client.get("/tickets/").text, number)
    assert 'data-testid="unread"' in row_of(anna.get("/tickets/").text, number)


def test_the_dashboard_counts_tickets_with_news(app, demo, client):
    login(client, "bruno@acme.example")

    def counted() -> int:
        return int(re.search(r'data-testid="count-unread">(\d+)<', client.get("/").text).group(1))

    before = counted()
    first, second = new_ticket(app, title="One"), new_ticket(app, title="Two")
    assert counted() == before
    staff_does(app, first, reply="Hello")
    staff_does(app, second, state="waiting_support")
    assert counted() == before + 2
    client.get(f"/tickets/{first.id}")
    assert counted() == before + 1


def test_a_ticket_opened_for_the_contact_by_someone_else_is_news(app, demo):
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        person = contact("bruno@acme.example")
        with db.atomic():
            ticket = workflow.create_ticket(workflow.Actor.for_staff(operator()), person, title="By phone",
                                            description="Called us")
        assert ticket.news_seq == 1


def test_reading_never_lowers_the_read_state(app, demo):
    ticket = new_ticket(app)
    staff_does(app, ticket, reply="One")
    staff_does(app, ticket, reply="Two")
    with app.app_context(), db.connection_context():
        bruno = contact("bruno@acme.example")
        workflow.mark_read(Ticket.get_by_id(ticket.id), bruno.id)
        # Two requests of Bruno's that both found no row: the one that read the older ticket
        # writes last, and loses.
        workflow.record_read(ticket.id, bruno.id, 1)
        assert TicketRead.get((TicketRead.ticket == ticket.id) & (TicketRead.contact == bruno.id)).seen_seq == 2
        assert TicketRead.select().where(TicketRead.ticket == ticket.id).count() == 1


def test_the_list_with_news_markers_runs_constant_queries(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/tickets/")  # warm-up: per-process housekeeping
    with queries:
        assert client.get("/tickets/?per_page=100").status_code == 200
    few = queries.count
    with app.app_context(), db.connection_context():
        person = contact("chiara@acme.example")
        anna = contact("anna@acme.example")
        with workflow.quiet(), db.atomic():
            for i in range(40):
                row = workflow.create_ticket(workflow.Actor.customer(person), person, title=f"Bulk {i}",
                                             description="d")
                workflow.add_comment(row, workflow.Actor.for_staff(operator()), "Reply", "public")
                if i % 2:
                    workflow.mark_read(row, anna.id)
    for url in ("/tickets/?per_page=100", "/tickets/?unread=1&per_page=100", "/tickets/?state=resolved",
                "/tickets/?sort=status&page=2&per_page=10", "/"):
        with queries:
            page = client.get(url)
        assert page.status_code == 200
        assert queries.count == few if url.startswith("/tickets/") else queries.count <= 12, (url, queries.queries)
    listing = client.get("/tickets/?per_page=100&q=bulk").text
    assert listing.count('data-testid="unread"') == 20
    # The read state is joined to the rows of the page only: the count (every matching ticket of
    # the company) does not read it.
    with queries:
        client.get("/tickets/?q=bulk")
    count_sql = [q for q in map(str, queries.queries) if "COUNT(1)" in q and "tickets_ticket" in q]
    page_sql = [q for q in map(str, queries.queries) if "LIMIT" in q and "unread" in q]
    assert len(count_sql) == 1 and "tickets_read" not in count_sql[0]
    assert len(page_sql) == 1 and "LEFT OUTER JOIN \"tickets_read\"" in page_sql[0]


# --- long conversations ------------------------------------------------------------------------
def add_comments(app, ticket: Ticket, n: int, private_every: int = 0) -> None:
    with app.app_context(), db.connection_context():
        row = Ticket.get_by_id(ticket.id)
        bruno = workflow.Actor.customer(contact("bruno@acme.example"))
        staff = workflow.Actor.for_staff(operator())
        with workflow.quiet(), db.atomic():
            for i in range(1, n + 1):
                kind = "private" if private_every and i % private_every == 0 else "public"
                workflow.add_comment(row, staff if i % 2 and kind == "public" else bruno, f"Message {i}.", kind)


def numbers(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-comment="(\d+)"', page)]


def test_the_conversation_shows_the_latest_comments_and_older_ones_on_demand(app, demo, client):
    ticket = new_ticket(app)
    add_comments(app, ticket, 45)
    login(client, "bruno@acme.example")
    first = client.get(f"/tickets/{ticket.id}").text
    assert numbers(first) == list(range(45, 25, -1))
    assert re.search(r'data-testid="comment-count">45<', first)
    older = re.search(r'data-testid="older-comments"\s+href="([^"]+)"\s+data-fragment-url="([^"]+)"', first)
    page_url, fragment_url = (u.replace("&amp;", "&") for u in older.groups())
    assert page_url == f"/tickets/{ticket.id}?comments_page=2#conversation"
    # Without JavaScript: the link opens the ticket page on the older comments.
    second = client.get(page_url.split("#")[0]).text
    assert numbers(second) == list(range(25, 5, -1)) and 'data-testid="newer-comments"' in second
    third = client.get(f"/tickets/{ticket.id}?comments_page=3").text
    assert numbers(third) == list(range(5, 0, -1)) and 'data-testid="older-comments"' not in third
    # With JavaScript: the fragment holds the next page and the next link, nothing else.
    fragment = client.get(fragment_url)
    assert fragment.status_code == 200 and numbers(fragment.text) == list(range(25, 5, -1))
    assert "<html" not in fragment.text and "comments_page=3" in fragment.text
    assert fragment.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert client.get(f"/tickets/{ticket.id}?comments_page=x").status_code == 200  # the newest
    assert numbers(client.get(f"/tickets/{ticket.id}?comments_page=99999999999").text) == []


def test_private_notes_keep_the_numbering_of_public_comments(app, demo, client):
    ticket = new_ticket(app)
    add_comments(app, ticket, 30, private_every=3)  # 10 private notes by Bruno, 20 public comments
    login(client, "bruno@acme.example")
    page = client.get(f"/tickets/{ticket.id}").text
    assert len(re.findall(r'data-comment="', page)) == 20 and numbers(page)[0] == 20
    anna = app.test_client()
    login(anna, "anna@acme.example")
    colleague = anna.get(f"/tickets/{ticket.id}").text
    assert numbers(colleague) == list(range(20, 0, -1)) and "Message 3." not in colleague


def test_older_comments_of_another_company_are_not_found(app, demo, client):
    ticket = new_ticket(app)
    add_comments(app, ticket, 3)
    login(client, "carla@globex.example")
    assert client.get(f"/tickets/{ticket.id}/comments?page=1").status_code == 404
    assert client.get(f"/tickets/{ticket.id}?comments_page=2").status_code == 404


def test_the_ticket_page_runs_constant_queries_whatever_the_conversation(app, demo, client, queries):
    short, long = new_ticket(app, title="Short"), new_ticket(app, title="Long")
    add_comments(app, short, 3)
    add_comments(app, long, 300, private_every=7)
    login(client, "bruno@acme.example")
    counts = {}
    for ticket in (short, long):
        client.get(f"/tickets/{ticket.id}")  # the first visit writes the read state
        for url in (f"/tickets/{ticket.id}", f"/tickets/{ticket.id}?comments_page=2",
                    f"/tickets/{ticket.id}/comments?page=2"):
            with queries:
                assert client.get(url).status_code == 200
            counts[(ticket.title, url.replace(str(ticket.id), "N"))] = queries.count
    for url in ("/tickets/N", "/tickets/N?comments_page=2", "/tickets/N/comments?page=2"):
        assert counts[("Short", url)] == counts[("Long", url)], counts


def test_a_thousand_comments_make_a_small_page(app, demo, client):
    ticket = new_ticket(app)
    with app.app_context(), db.connection_context():
        bruno = contact("bruno@acme.example")
        TicketComment.insert_many([{"ticket": ticket.id, "kind": "public", "body": f"Comment number {i} " * 10,
                                    "author_contact": bruno.id, "author_name": "Bruno Bianchi"}
                                   for i in range(1000)]).execute()
        Ticket.update(public_comments=1000).where(Ticket.id == ticket.id).execute()
    login(client, "bruno@acme.example")
    page = client.get(f"/tickets/{ticket.id}")
    assert len(re.findall(r'data-comment="', page.text)) == 20
    assert len(page.data) < 60_000, len(page.data)


# --- sorting and labels ------------------------------------------------------------------------
def test_status_sorts_in_the_workflow_order_and_titles_ignore_case(app, demo, client):
    with app.app_context(), db.connection_context():
        workflow.install_defaults()
        Ticket.delete().execute()
    made = {}
    for title, states in (("banana", []), ("Apple", ["waiting_support", "resolved"]),
                          ("cherry", ["waiting_customer"]), ("Date", ["waiting_support"])):
        made[title] = new_ticket(app, title=title)
        for state in states:
            staff_does(app, made[title], state=state)
    login(client, "bruno@acme.example")

    titles = {ticket.number: title for title, ticket in made.items()}

    def order(url: str) -> list[str]:
        return [titles[n] for n in re.findall(r'<tr[^>]*data-ticket="(TT\d+)"', client.get(url).text)]

    assert order("/tickets/?sort=title&dir=asc") == ["Apple", "banana", "cherry", "Date"]
    assert order("/tickets/?sort=title&dir=desc") == ["Date", "cherry", "banana", "Apple"]
    # Open, Waiting for support, Waiting for customer, Resolved: the states' order, not the keys'.
    assert order("/tickets/?sort=status&dir=asc") == ["banana", "Date", "cherry", "Apple"]
    with app.app_context(), db.connection_context():  # admins reorder the states: the list follows
        TicketState.update(position=-1).where(TicketState.key == "resolved").execute()
    assert order("/tickets/?sort=status&dir=asc") == ["Apple", "banana", "Date", "cherry"]


def test_the_closed_date_is_labelled_as_a_date(app, demo, client):
    ticket = new_ticket(app)
    login(client, "bruno@acme.example")
    client.post(f"/tickets/{ticket.id}/withdraw", data={})
    page = client.get(f"/tickets/{ticket.id}").text
    assert re.search(r"<dt[^>]*>Chiusa il</dt>", page) and not re.search(r"<dt[^>]*>Chiusi</dt>", page)
    carla_ticket = new_ticket(app, "carla@globex.example")
    carla = app.test_client()
    login(carla, "carla@globex.example")
    carla.post(f"/tickets/{carla_ticket.id}/withdraw", data={})
    assert re.search(r"<dt[^>]*>Closed on</dt>", carla.get(f"/tickets/{carla_ticket.id}").text)


# --- schema steps ------------------------------------------------------------------------------
def test_the_schema_steps_upgrade_older_tables(app, demo):
    """An installation from before these features: the columns are added by the recorded steps,
    the read-state table is created, and nothing runs twice."""
    from playhouse.migrate import SchemaMigrator, migrate

    from crm_portal.migrations import MigrationHistory, upgrade

    registry = app.extensions["crm_portal"]
    with app.app_context(), db.connection_context():
        migrator = SchemaMigrator.from_database(db.obj)
        with db.atomic():
            migrate(migrator.drop_column("tickets_ticket", "news_seq"),
                    migrator.drop_column("tickets_history", "note"),
                    migrator.drop_column("services_service", "ticket_category_id"),
                    migrator.drop_column("services_subcategory", "ticket_category_id"))
        db.execute_sql("DROP TABLE tickets_read")
        MigrationHistory.delete().where(MigrationHistory.name.in_(
            ["0006_news_seq", "0007_history_note", "0008_customer_withdraw", "0001_ticket_category"])).execute()
        lines = upgrade(registry)
        for line in ("tickets: created tickets_read", "tickets: applied 0006_news_seq",
                     "tickets: applied 0007_history_note", "tickets: applied 0008_customer_withdraw",
                     "services: applied 0001_ticket_category"):
            assert line in lines, lines
        assert "news_seq" in {c.name for c in db.get_columns("tickets_ticket")}
        assert "note" in {c.name for c in db.get_columns("tickets_history")}
        assert "ticket_category_id" in {c.name for c in db.get_columns("services_subcategory")}
        assert upgrade(registry) == []
        assert Ticket.select().where(Ticket.news_seq == 0).count() == Ticket.select().count()
