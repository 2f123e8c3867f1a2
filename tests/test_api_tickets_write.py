"""REST API, tickets' write side: open a ticket for a contact (the wizard's fields and validation),
change its fields (If-Match, ticket-updated), move it through the workflow (409 when refused),
comments and attachments through the gate, as the integration and acting as the demo contacts."""
from __future__ import annotations

import io

import pytest
from api_helpers import bearer, make_key

from crm_portal.auth import PortalUser
from crm_portal.db import db
from crm_portal.models import AuditEntry, Contact, OutboxMessage, StaffUser
from crm_portal.modules.tickets import opening, signals
from crm_portal.modules.tickets.models import Ticket, TicketAttachment, TicketCategory, TicketComment

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _ctx(app):
    return _Ctx(app)


def _grant_tickets(app, contact, actions: str) -> None:
    """What ``contact``'s profile may do in the tickets module, from now on."""
    from crm_portal.models import ProfileModule

    with _ctx(app):
        grant = ProfileModule.get((ProfileModule.profile == contact.profile_id) & (ProfileModule.module == "tickets"))
        grant.actions = actions
        grant.save()


class _Ctx:
    def __init__(self, app):
        self.app = app

    def __enter__(self):
        self.app_ctx = self.app.app_context()
        self.app_ctx.push()
        self.conn = db.connection_context()
        self.conn.__enter__()

    def __exit__(self, *exc):
        self.conn.__exit__(*exc)
        self.app_ctx.pop()


def _wizard_choice(app, email: str) -> dict:
    """A service and sub-category the contact's wizard offers, and a category."""
    with _ctx(app):
        user = PortalUser(Contact.get(Contact.email == email))
        service = (opening.services_for(user) or [None])[0]
        category = TicketCategory.select().where(TicketCategory.active == True).first()  # noqa: E712
        out = {"category": category.id}
        if service is not None:
            out["service_id"] = service.id
            if getattr(service, "subcategories", None):
                out["subcategory_id"] = service.subcategories[0][0]
        return out


def _body(app, email: str, **extra) -> dict:
    return {"title": "Printer offline", "description": "The office printer does not print.",
            **_wizard_choice(app, email), **extra}


def _ticket_of(app, contact) -> Ticket:
    with _ctx(app):
        return Ticket.select().where(Ticket.contact == contact.id).order_by(Ticket.id).first()


@pytest.fixture
def write(app):
    return bearer(make_key(app, ["tickets:read", "tickets:write"]).token)


# --- create ---------------------------------------------------------------------------------------------
def test_create_for_a_contact_marks_the_api_and_emails_them(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    response = client.post("/api/v1/tickets", json=_body(app, anna.email, contact_email=anna.email), headers=write)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["ETag"].startswith('"') and response.headers["Location"].endswith(f"/tickets/{body['id']}")
    with _ctx(app):
        ticket = Ticket.get_by_id(body["id"])
        assert ticket.contact_id == anna.id and ticket.opened_by_integration == "crm"
        assert ticket.opened_by_staff_id is None and ticket.service_id is not None
        assert AuditEntry.select().where((AuditEntry.action == "ticket-opened-by-api")
                                         & (AuditEntry.object_id == str(ticket.id))
                                         & (AuditEntry.actor_type == "integration")).exists()
        assert OutboxMessage.select().where((OutboxMessage.to_address == anna.email)
                                            & (OutboxMessage.template == "tickets_created")).exists()


def test_the_admin_shows_a_ticket_opened_through_the_api(app, demo, client, write):
    from conftest import staff_login

    anna = demo["contacts"]["anna"]
    ticket_id = client.post("/api/v1/tickets", json=_body(app, anna.email, contact_id=anna.id),
                            headers=write).get_json()["id"]
    staff = app.test_client()
    staff_login(staff, "operatore@example.com")
    page = staff.get(f"/admin/tickets_queue/work/{ticket_id}/")
    assert page.status_code == 200 and 'data-testid="opened-by-integration"' in page.text and "crm" in page.text
    older = _ticket_of(app, anna)  # opened in the portal
    assert 'data-testid="opened-by-integration"' not in staff.get(f"/admin/tickets_queue/work/{older.id}/").text


def test_create_validates_like_the_wizard(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    before = _count(app)
    cases = [
        ({"contact_email": anna.email, "description": "no title", **_wizard_choice(app, anna.email)}, "title"),
        ({**_body(app, anna.email, contact_id=anna.id), "category": None}, "category"),
        ({**_body(app, anna.email, contact_id=anna.id), "service_id": 999999}, "service_id"),
        ({**_body(app, anna.email, contact_id=anna.id), "subcategory_id": None}, "subcategory_id"),
        ({**_body(app, anna.email, contact_id=anna.id), "priority": "whenever"}, "priority"),
        ({**_body(app, anna.email, contact_id=anna.id), "answers": {"424242": "?"}}, "answers.424242"),
        ({**_body(app, anna.email, contact_id=anna.id), "colour": "red"}, "colour"),
        ({**_body(app, anna.email, contact_id=anna.id), "title": 12}, "title"),
        (_body(app, anna.email), "contact_id"),
        (_body(app, anna.email, contact_email="nobody@example.com"), "contact_email"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/tickets", json=body, headers=write)
        assert response.status_code == 422, (field, response.get_json())
        assert field in response.get_json()["errors"], (field, response.get_json())
    assert _count(app) == before


def test_bad_json_is_422_and_writes_nothing(app, demo, client, write):
    before = _count(app)
    response = client.post("/api/v1/tickets", data=b"{not json", headers={**write, "Content-Type": "application/json"})
    assert response.status_code == 422 and response.get_json()["code"] == "invalid"
    response = client.post("/api/v1/tickets", data=b"[1]", headers={**write, "Content-Type": "application/json"})
    assert response.status_code == 422
    response = client.post("/api/v1/tickets", data="title=x", headers={**write, "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert _count(app) == before


def _count(app) -> int:
    with _ctx(app):
        return Ticket.select().count()


def test_scope_matrix_of_the_writes(app, demo, client):
    anna = demo["contacts"]["anna"]
    ticket = _ticket_of(app, anna)
    body = _body(app, anna.email, contact_id=anna.id)
    calls = [("post", "/api/v1/tickets", {"json": body}),
             ("patch", f"/api/v1/tickets/{ticket.id}", {"json": {"priority": "low"}}),
             ("post", f"/api/v1/tickets/{ticket.id}/transitions", {"json": {"to": "discarded"}}),
             ("post", f"/api/v1/tickets/{ticket.id}/comments", {"json": {"body": "Hello"}}),
             ("post", f"/api/v1/tickets/{ticket.id}/attachments",
              {"data": {"file": (io.BytesIO(PNG), "a.png")}, "content_type": "multipart/form-data"})]
    for scopes in (["contacts:read"], ["tickets:read"]):
        headers = bearer(make_key(app, scopes).token)
        for method, url, kwargs in calls:
            kwargs = {k: ({"file": (io.BytesIO(PNG), "a.png")} if k == "data" else v) for k, v in kwargs.items()}
            response = getattr(client, method)(url, headers=headers, **kwargs)
            assert response.status_code == 403, (scopes, url)
            assert "tickets:write" in response.get_json()["message"]
    headers = bearer(make_key(app, ["tickets:write"]).token)
    for method, url, kwargs in calls:
        kwargs = {k: ({"file": (io.BytesIO(PNG), "a.png")} if k == "data" else v) for k, v in kwargs.items()}
        response = getattr(client, method)(url, headers=headers, **kwargs)
        assert response.status_code in (200, 201), (url, response.get_json())
    for url in (f"/api/v1/tickets/{ticket.id}/comments", f"/api/v1/tickets/{ticket.id}/attachments"):
        assert client.get(url, headers=headers).status_code == 403  # reads need tickets:read
        assert client.get(url, headers=bearer(make_key(app, ["tickets:read"]).token)).status_code == 200


# --- acting as the demo contacts -------------------------------------------------------------------------
def test_acting_as_contacts_opens_their_own_requests(app, demo, client, write):
    for who in ("anna", "bruno", "carla"):
        contact = demo["contacts"][who]
        headers = {**write, "X-Act-As-Contact": contact.email}
        response = client.post("/api/v1/tickets", json=_body(app, contact.email), headers=headers)
        assert response.status_code == 201, (who, response.get_json())
        with _ctx(app):
            ticket = Ticket.get_by_id(response.get_json()["id"])
            assert ticket.contact_id == contact.id and ticket.opened_by_integration == "crm"
        someone_else = _body(app, contact.email, contact_id=demo["contacts"]["dario"].id)
        refused = client.post("/api/v1/tickets", json=someone_else, headers=headers)
        assert refused.status_code == 422


def test_acting_as_a_contact_without_create_grant_is_refused(app, demo, client, write):
    bruno = demo["contacts"]["bruno"]
    _grant_tickets(app, bruno, "view,comment")
    response = client.post("/api/v1/tickets", json=_body(app, bruno.email),
                           headers={**write, "X-Act-As-Contact": bruno.email})
    assert response.status_code == 403


def test_gate_answers_404_outside_the_contacts_scope(app, demo, client, write):
    anna, bruno, carla = (demo["contacts"][k] for k in ("anna", "bruno", "carla"))
    annas = _ticket_of(app, anna)
    carlas = _ticket_of(app, carla)
    urls = [("get", "/api/v1/tickets/{}/comments", None), ("get", "/api/v1/tickets/{}/attachments", None),
            ("post", "/api/v1/tickets/{}/comments", {"body": "x"}),
            ("post", "/api/v1/tickets/{}/transitions", {"to": "closed"}),
            ("patch", "/api/v1/tickets/{}", {"priority": "low"})]
    for method, url, body in urls:
        for acting, ticket in ((anna, carlas), (carla, annas), (bruno, carlas)):
            kwargs = {"json": body} if body is not None else {}
            as_contact = {**write, "X-Act-As-Contact": acting.email}
            response = getattr(client, method)(url.format(ticket.id), headers=as_contact, **kwargs)
            assert response.status_code == 404, (acting.email, url)
    # bruno (own scope) does not see anna's ticket either; anna (company scope) sees bruno's.
    brunos = _ticket_of(app, bruno)
    assert client.get(f"/api/v1/tickets/{annas.id}/comments",
                      headers={**write, "X-Act-As-Contact": bruno.email}).status_code == 404
    assert client.get(f"/api/v1/tickets/{brunos.id}/comments",
                      headers={**write, "X-Act-As-Contact": anna.email}).status_code == 200


# --- update ------------------------------------------------------------------------------------------------
def test_patch_changes_fields_sends_ticket_updated_and_checks_if_match(app, demo, client, write):
    ticket = _ticket_of(app, demo["contacts"]["anna"])
    with _ctx(app):
        operator = StaffUser.get(StaffUser.email == "operatore@example.com")
        category = TicketCategory.select().where(TicketCategory.id != (ticket.category_id or 0)).first()
    url = f"/api/v1/tickets/{ticket.id}"
    etag = client.get(url, headers=write).headers["ETag"]
    priority = "medium" if ticket.priority == "urgent" else "urgent"
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    signals.ticket_updated.connect(receiver)
    try:
        stale = client.patch(url, json={"priority": "low"}, headers={**write, "If-Match": '"nope"'})
        assert stale.status_code == 412 and stale.get_json()["code"] == "precondition_failed"
        change = {"priority": priority, "assignee_id": operator.id, "category_id": category.id}
        response = client.patch(url, json=change, headers={**write, "If-Match": etag})
        assert response.status_code == 200, response.get_json()
        shown = response.get_json()
        assert (shown["priority"], shown["assignee"], shown["category"]) == (priority, operator.id, category.id)
        new_etag = response.headers["ETag"]
        assert new_etag != etag and client.get(url, headers=write).headers["ETag"] == new_etag
        again = client.patch(url, json={"priority": "low"}, headers={**write, "If-Match": etag})
        assert again.status_code == 412  # the old ETag no longer matches
        assert client.patch(url, json={"priority": "low"}, headers={**write, "If-Match": "*"}).status_code == 200
    finally:
        signals.ticket_updated.disconnect(receiver)
    assert received[0]["changes"]["priority"] == (ticket.priority, priority)
    assert received[0]["changes"]["assignee"] == (ticket.assignee_id, operator.id)
    assert received[0]["actor"].integration == "crm"
    with _ctx(app):
        fresh = Ticket.get_by_id(ticket.id)
        assert (fresh.priority, fresh.assignee_id, fresh.category_id) == ("low", operator.id, category.id)
        assert AuditEntry.select().where((AuditEntry.action == "ticket-updated")
                                         & (AuditEntry.actor_type == "integration")).count() == 2


def test_a_planned_ticket_takes_a_new_date(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    body = {**_body(app, anna.email, contact_id=anna.id), "type": "problem"}
    ticket_id = client.post("/api/v1/tickets", json=body, headers=write).get_json()["id"]
    url = f"/api/v1/tickets/{ticket_id}"
    for to in ("waiting_support", "in_progress"):
        assert client.post(f"{url}/transitions", json={"to": to}, headers=write).status_code == 200
    undated = client.post(f"{url}/transitions", json={"to": "planned"}, headers=write)
    assert undated.status_code == 422 and "planned_for" in undated.get_json()["errors"]
    planned = client.post(f"{url}/transitions", json={"to": "planned", "planned_for": "2030-03-01"}, headers=write)
    assert planned.status_code == 200 and planned.get_json()["planned_for"] == "2030-03-01"
    moved = client.patch(url, json={"planned_for": "2030-04-15"}, headers=write)
    assert moved.status_code == 200 and moved.get_json()["planned_for"] == "2030-04-15"


def test_patch_refuses_bad_values_and_contacts(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    ticket = _ticket_of(app, anna)
    url = f"/api/v1/tickets/{ticket.id}"
    for body, field in [({"priority": "soon"}, "priority"), ({"assignee_id": 999999}, "assignee_id"),
                        ({"category_id": 999999}, "category_id"), ({"planned_for": "2030-01-01"}, "planned_for"),
                        ({"planned_for": "tomorrow"}, "planned_for"), ({"status": "closed"}, "status"),
                        ({"priority": 3}, "priority")]:
        response = client.patch(url, json=body, headers=write)
        assert response.status_code == 422 and field in response.get_json()["errors"], (body, response.get_json())
    acting = client.patch(url, json={"priority": "low"}, headers={**write, "X-Act-As-Contact": anna.email})
    assert acting.status_code == 403
    with _ctx(app):
        assert Ticket.get_by_id(ticket.id).priority == ticket.priority


# --- transitions -------------------------------------------------------------------------------------------
def test_transition_through_the_workflow_and_409_when_refused(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    response = client.post("/api/v1/tickets", json=_body(app, anna.email, contact_id=anna.id), headers=write)
    ticket_id = response.get_json()["id"]
    url = f"/api/v1/tickets/{ticket_id}/transitions"
    refused = client.post(url, json={"to": "resolved"}, headers=write)  # open → resolved: not in the workflow
    assert refused.status_code == 409 and refused.get_json()["code"] == "conflict"
    assert "waiting_support" in refused.get_json()["message"]
    assert client.post(url, json={"to": "nowhere"}, headers=write).status_code == 422
    moved = client.post(url, json={"to": "waiting_support", "comment": "Looking into it"}, headers=write)
    assert moved.status_code == 200 and moved.get_json()["status"] == "waiting_support"
    with _ctx(app):
        from crm_portal.modules.tickets.models import TicketHistory

        last = TicketHistory.select().where(TicketHistory.ticket == ticket_id).order_by(TicketHistory.id.desc()).first()
        assert (last.to_state, last.actor_type, last.actor_name, last.note) == ("waiting_support", "staff", "crm",
                                                                                "Looking into it")


def test_contacts_move_tickets_only_as_the_portal_lets_them(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    ticket_id = client.post("/api/v1/tickets", json=_body(app, anna.email, contact_id=anna.id),
                            headers=write).get_json()["id"]
    url = f"/api/v1/tickets/{ticket_id}/transitions"
    as_anna = {**write, "X-Act-As-Contact": anna.email}
    assert client.post(url, json={"to": "waiting_support"}, headers=as_anna).status_code == 409
    assert client.post(url, json={"to": "closed", "comment": "Solved it myself"}, headers=as_anna).status_code == 200
    again = client.post(url, json={"to": "closed"}, headers=as_anna)
    assert again.status_code == 409


def test_a_resolved_ticket_is_closed_with_a_rating(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    ticket_id = client.post("/api/v1/tickets", json={**_body(app, anna.email, contact_id=anna.id), "type": "question"},
                            headers=write).get_json()["id"]
    url = f"/api/v1/tickets/{ticket_id}/transitions"
    for to in ("waiting_support", "resolved"):
        assert client.post(url, json={"to": to}, headers=write).status_code == 200
    as_anna = {**write, "X-Act-As-Contact": anna.email}
    assert "rating" in client.post(url, json={"to": "closed"}, headers=as_anna).get_json()["errors"]
    assert client.post(url, json={"to": "closed", "rating": 5}, headers=as_anna).status_code == 200
    with _ctx(app):
        assert Ticket.get_by_id(ticket_id).rating == 5


# --- comments ----------------------------------------------------------------------------------------------
def test_comments_by_kind_and_reader(app, demo, client, write):
    anna, bruno = demo["contacts"]["anna"], demo["contacts"]["bruno"]
    ticket_id = client.post("/api/v1/tickets", json=_body(app, bruno.email, contact_id=bruno.id),
                            headers=write).get_json()["id"]
    url = f"/api/v1/tickets/{ticket_id}/comments"
    as_bruno = {**write, "X-Act-As-Contact": bruno.email}
    as_anna = {**write, "X-Act-As-Contact": anna.email}
    assert client.post(url, json={"body": "Staff only", "kind": "internal"}, headers=write).status_code == 201
    assert client.post(url, json={"body": "Hi", "kind": "public"}, headers=write).status_code == 201
    assert client.post(url, json={"body": "x", "kind": "private"}, headers=write).status_code == 422
    assert client.post(url, json={"body": "For support", "kind": "private"}, headers=as_bruno).status_code == 201
    assert client.post(url, json={"body": "x", "kind": "internal"}, headers=as_bruno).status_code == 422
    assert client.post(url, json={"body": "   "}, headers=as_bruno).status_code == 422
    kinds = lambda headers: [c["kind"] for c in client.get(url, headers=headers).get_json()["items"]]  # noqa: E731
    assert kinds(write) == ["internal", "public", "private"]
    assert kinds(as_bruno) == ["public", "private"]
    assert kinds(as_anna) == ["public"]  # a colleague's private note is not hers
    # anna has comment_others (company profile): she may write in bruno's request; carla's is out of scope.
    assert client.post(url, json={"body": "Me too"}, headers=as_anna).status_code == 201


def test_a_contact_without_comment_others_cannot_write_in_a_colleagues_ticket(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    _grant_tickets(app, anna, "view,create,comment,close")
    brunos = _ticket_of(app, demo["contacts"]["bruno"])
    response = client.post(f"/api/v1/tickets/{brunos.id}/comments", json={"body": "x"},
                           headers={**write, "X-Act-As-Contact": anna.email})
    assert response.status_code == 403


def test_comment_list_pages_in_constant_queries(app, demo, client, write, queries):
    anna = demo["contacts"]["anna"]
    ticket_id = client.post("/api/v1/tickets", json=_body(app, anna.email, contact_id=anna.id),
                            headers=write).get_json()["id"]
    url = f"/api/v1/tickets/{ticket_id}/comments"

    def count() -> int:
        with queries:
            assert client.get(url + "?limit=100", headers={**write, "X-Act-As-Contact": anna.email}).status_code == 200
        return queries.count

    counts = []
    for n in (2, 20):
        with _ctx(app), db.atomic():
            ticket = Ticket.get_by_id(ticket_id)
            for i in range(n):
                TicketComment.create(ticket=ticket, body=f"c{i}", kind="public", author_name="x")
        counts.append(count())
    assert counts[0] == counts[1], queries.queries
    seen, cursor = [], None
    while True:
        page = client.get(url + "?limit=7" + (f"&cursor={cursor}" if cursor else ""), headers=write).get_json()
        seen += [c["id"] for c in page["items"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == 22 == len(set(seen))


# --- attachments -------------------------------------------------------------------------------------------
def test_attachments_follow_the_upload_rules(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    ticket = _ticket_of(app, anna)
    url = f"/api/v1/tickets/{ticket.id}/attachments"

    def upload(*files, headers=write):
        return client.post(url, data={"file": [(io.BytesIO(content), name) for name, content in files]},
                           content_type="multipart/form-data", headers=headers)

    with _ctx(app):
        before = TicketAttachment.select().count()
    assert upload(("virus.exe", b"MZ\x90\x00" * 10)).status_code == 415
    assert upload(("fake.png", b"not an image at all")).status_code in (415, 400)
    app.config["UPLOAD_MAX_BYTES"] = 100
    assert upload(("big.png", PNG + b"\x00" * 200)).status_code == 413
    app.config["UPLOAD_MAX_BYTES"] = 20 * 1024 * 1024
    too_many = upload(*[(f"{i}.png", PNG) for i in range(11)])
    assert too_many.status_code == 422 and "file" in too_many.get_json()["errors"]
    assert upload().status_code == 422
    with _ctx(app):
        assert TicketAttachment.select().count() == before
    done = upload(("screen.png", PNG), headers={**write, "X-Act-As-Contact": anna.email})
    assert done.status_code == 201, done.get_json()
    item = done.get_json()["items"][0]
    assert item["name"] == "screen.png" and item["size"] == len(PNG)
    listed = client.get(url, headers=write).get_json()["items"]
    assert item["id"] in [a["id"] for a in listed]
    download = client.get(f"{url}/{item['id']}", headers=write)
    assert download.status_code == 200 and download.data == PNG
    carla = demo["contacts"]["carla"]
    assert client.get(f"{url}/{item['id']}", headers={**write, "X-Act-As-Contact": carla.email}).status_code == 404
    other = _ticket_of(app, carla)
    assert client.get(f"/api/v1/tickets/{other.id}/attachments/{item['id']}", headers=write).status_code == 404


def test_a_contact_cannot_attach_to_a_closed_ticket(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    ticket_id = client.post("/api/v1/tickets", json=_body(app, anna.email, contact_id=anna.id),
                            headers=write).get_json()["id"]
    as_anna = {**write, "X-Act-As-Contact": anna.email}
    closed = client.post(f"/api/v1/tickets/{ticket_id}/transitions", json={"to": "closed"}, headers=as_anna)
    assert closed.status_code == 200
    response = client.post(f"/api/v1/tickets/{ticket_id}/attachments", data={"file": (io.BytesIO(PNG), "a.png")},
                           content_type="multipart/form-data", headers=as_anna)
    assert response.status_code == 409
    comment = client.post(f"/api/v1/tickets/{ticket_id}/comments", json={"body": "x"}, headers=as_anna)
    assert comment.status_code == 409


def test_detail_answers_an_etag_for_every_module(app, demo, client):
    from api_helpers import record_modules

    headers = bearer(make_key(app).token)
    for name in record_modules(app):
        items = client.get(f"/api/v1/{name}?limit=1", headers=headers).get_json()["items"]
        response = client.get(f"/api/v1/{name}/{items[0]['id']}", headers=headers)
        assert response.headers["ETag"].startswith('"') and len(response.headers["ETag"]) > 10, name
        again = client.get(f"/api/v1/{name}/{items[0]['id']}", headers=headers)
        assert again.headers["ETag"] == response.headers["ETag"]


def test_concurrent_patches_with_the_same_if_match_apply_once(app, demo, write, tmp_path):
    """Writers racing with the ETag they all read, against gunicorn (processes with threads): the
    check and the write see the same locked row, so exactly one wins and the others get 412."""
    import http.client
    import json
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from live_server import serve

    ticket = _ticket_of(app, demo["contacts"]["anna"])
    new = "urgent" if ticket.priority == "low" else "low"  # a change: the winner's write moves the ETag
    clients = 8
    start = threading.Barrier(clients)
    with serve(app, workers=2, threads=4, tmp_path=tmp_path) as server:
        def call(method: str, body: dict | None = None, **extra: str) -> tuple[int, dict[str, str]]:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            try:
                conn.request(method, f"/api/v1/tickets/{ticket.id}", body=json.dumps(body) if body else None,
                             headers={**write, "Content-Type": "application/json", **extra})
                answer = conn.getresponse()
                answer.read()
                return answer.status, dict(answer.getheaders())
            finally:
                conn.close()

        etag = call("GET")[1]["ETag"]

        def patch(index: int) -> int:
            start.wait(30)
            return call("PATCH", {"priority": new}, **{"If-Match": etag})[0]

        with ThreadPoolExecutor(clients) as pool:
            statuses = list(pool.map(patch, range(clients)))
    assert sorted(statuses) == [200] + [412] * (clients - 1), statuses
