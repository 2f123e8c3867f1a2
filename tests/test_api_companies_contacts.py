"""Company and contact writes of the REST API: the scope matrix, the admin's validation (422 with
field errors, nothing written), audit with the integration as actor, record signals, invitations
and what an integration acting as a contact may do."""
from __future__ import annotations

import pytest
from api_helpers import bearer, make_key
from conftest import login

from crm_portal import signals
from crm_portal.db import db
from crm_portal.models import AuditEntry, Company, Contact, OutboxMessage

NEW_COMPANY = {"name": "Wayne Enterprises S.p.A.", "vat_number": "IT 555 000 111 22", "city": "Gotham",
               "email_domain": "Wayne.Example"}
NEW_CONTACT = {"first_name": "Bruce", "last_name": "Wayne", "email": " Bruce@Wayne.Example "}

WRITES = [
    ("post", "/api/v1/companies", "companies", NEW_COMPANY),
    ("patch", "/api/v1/companies/{acme}", "companies", {"city": "Monza"}),
    ("post", "/api/v1/contacts", "contacts", NEW_CONTACT),
    ("patch", "/api/v1/contacts/{anna}", "contacts", {"role": "CIO"}),
    ("post", "/api/v1/contacts/{anna}/invite", "contacts", None),
]


def _url(template: str, demo) -> str:
    return template.format(acme=demo["companies"]["acme"].id, anna=demo["contacts"]["anna"].id)


def _count(app, model) -> int:
    with app.app_context(), db.connection_context():
        return model.select().count()


@pytest.mark.parametrize(("method", "url", "module", "body"), WRITES)
def test_scope_matrix(app, demo, client, method, url, module, body):
    """No scope and the read scope → 403 naming the write scope; the write scope → 2xx."""
    url = _url(url, demo)
    for scopes, expected in [("tickets:read", 403), (f"{module}:read", 403), (f"{module}:write", None)]:
        headers = bearer(make_key(app, scopes).token)
        response = getattr(client, method)(url, json=body, headers=headers)
        if expected:
            assert response.status_code == expected, (scopes, response.json)
            assert f"{module}:write" in response.json["message"]
        else:
            assert response.status_code in (200, 201), response.json


def test_create_company_and_contact_audited_and_announced(app, demo, client):
    token = make_key(app, "companies:write contacts:write").token
    seen: list[tuple[str, str, object]] = []

    def created(sender, **kw):
        seen.append(("created", sender, kw["user"]))

    signals.record_created.connect(created)
    try:
        company = client.post("/api/v1/companies", json=NEW_COMPANY, headers=bearer(token))
        assert company.status_code == 201, company.json
        contact = client.post("/api/v1/contacts", json={**NEW_CONTACT, "company_id": company.json["id"]},
                              headers=bearer(token))
        assert contact.status_code == 201, contact.json
    finally:
        signals.record_created.disconnect(created)
    assert contact.json["email"] == "bruce@wayne.example"
    assert [(kind, sender) for kind, sender, _user in seen] == [("created", "companies"), ("created", "contacts")]
    assert all(type(user).__name__ == "IntegrationPrincipal" for *_rest, user in seen)
    with app.app_context(), db.connection_context():
        assert Company.get_by_id(company.json["id"]).email_domain == "wayne.example"
        entries = list(AuditEntry.select().where(AuditEntry.action == "created").order_by(AuditEntry.id))
        assert [(e.actor_type, e.actor_label, e.object_type) for e in entries] == [
            ("integration", "crm", "core_company"), ("integration", "crm", "core_contact")]


def test_update_sends_changes_and_nothing_when_unchanged(app, demo, client):
    token = make_key(app, "contacts:write").token
    anna = demo["contacts"]["anna"]
    changes: list[dict] = []

    def updated(sender, **kw):
        changes.append(kw["changes"])

    signals.record_updated.connect(updated)
    try:
        first = client.patch(f"/api/v1/contacts/{anna.id}", json={"role": "CIO"}, headers=bearer(token))
        again = client.patch(f"/api/v1/contacts/{anna.id}", json={"role": "CIO"}, headers=bearer(token))
    finally:
        signals.record_updated.disconnect(updated)
    assert first.status_code == again.status_code == 200 and first.json["role"] == "CIO"
    assert changes == [{"role": ("Responsabile IT", "CIO")}]


@pytest.mark.parametrize(("url", "body", "field"), [
    ("/api/v1/companies", {"city": "Roma"}, "name"),
    ("/api/v1/companies", {"name": "X", "vat_number": "IT<script>"}, "vat_number"),
    ("/api/v1/companies", {"name": "X", "email_domain": "not a domain"}, "email_domain"),
    ("/api/v1/companies", {"name": "X", "secret_field": 1}, "secret_field"),
    ("/api/v1/contacts", {**NEW_CONTACT, "email": "anna@acme.example"}, "email"),
    ("/api/v1/contacts", {**NEW_CONTACT, "email": "not-an-email"}, "email"),
    ("/api/v1/contacts", {**NEW_CONTACT, "company_id": 999999}, "company_id"),
    ("/api/v1/contacts", {**NEW_CONTACT, "profile": "nobody"}, "profile"),
    ("/api/v1/contacts", {**NEW_CONTACT, "language": "fr"}, "language"),
])
def test_invalid_values_are_422_and_nothing_written(app, demo, client, url, body, field):
    token = make_key(app, "companies:write contacts:write").token
    before = (_count(app, Company), _count(app, Contact), _count(app, AuditEntry))
    response = client.post(url, json=body, headers=bearer(token, **{"Accept-Language": "it"}))
    assert response.status_code == 422, response.json
    assert response.json["code"] == "invalid" and field in response.json["errors"], response.json
    assert (_count(app, Company), _count(app, Contact), _count(app, AuditEntry)) == before


def test_patch_refuses_a_taken_email_and_unknown_ids(app, demo, client):
    token = make_key(app, "companies:write contacts:write").token
    anna, bruno = demo["contacts"]["anna"], demo["contacts"]["bruno"]
    taken = client.patch(f"/api/v1/contacts/{bruno.id}", json={"email": anna.email.upper()}, headers=bearer(token))
    assert taken.status_code == 422 and "email" in taken.json["errors"]
    assert client.patch("/api/v1/contacts/999999", json={"role": "x"}, headers=bearer(token)).status_code == 404
    assert client.patch("/api/v1/companies/999999", json={"city": "x"}, headers=bearer(token)).status_code == 404
    not_json = client.patch(f"/api/v1/companies/{anna.company_id}", data="x", headers=bearer(token))
    assert not_json.status_code == 422


def test_portal_access_on_sends_the_invitation_and_off_revokes(app, demo, client):
    token = make_key(app, "contacts:write").token
    made = client.post("/api/v1/contacts", json={**NEW_CONTACT, "portal_access": True, "profile": "user"},
                       headers=bearer(token))
    assert made.status_code == 201, made.json
    with app.app_context(), db.connection_context():
        assert OutboxMessage.select().where((OutboxMessage.to_address == "bruce@wayne.example")
                                            & (OutboxMessage.template == "invitation")).count() == 1
    off = client.patch(f"/api/v1/contacts/{made.json['id']}", json={"portal_access": False}, headers=bearer(token))
    assert off.status_code == 200 and off.json["portal_access"] is False
    with app.app_context(), db.connection_context():
        assert AuditEntry.select().where((AuditEntry.action == "portal-access-revoked")
                                         & (AuditEntry.object_id == str(made.json["id"]))).exists()


def test_invite(app, demo, client):
    token = make_key(app, "contacts:write").token
    anna = demo["contacts"]["anna"]
    response = client.post(f"/api/v1/contacts/{anna.id}/invite", headers=bearer(token))
    assert response.status_code == 200 and response.json == {"id": anna.id, "email": anna.email, "invited": True}
    with app.app_context(), db.connection_context():
        assert OutboxMessage.select().where((OutboxMessage.to_address == anna.email)
                                            & (OutboxMessage.template == "invitation")).count() == 1
        Contact.update(portal_access=False).where(Contact.id == anna.id).execute()
    refused = client.post(f"/api/v1/contacts/{anna.id}/invite", headers=bearer(token))
    assert refused.status_code == 409 and refused.json["code"] == "conflict"


def test_acting_as_a_contact(app, demo, client):
    """Data writes are refused (the portal allows none); invitations follow the manage rule."""
    token = make_key(app, "companies:write contacts:write").token
    anna, bruno, carla = (demo["contacts"][k] for k in ("anna", "bruno", "carla"))
    as_anna = bearer(token, **{"X-Act-As-Contact": anna.email})
    as_bruno = bearer(token, **{"X-Act-As-Contact": bruno.email})
    assert client.patch(f"/api/v1/contacts/{bruno.id}", json={"role": "x"}, headers=as_anna).status_code == 403
    assert client.post("/api/v1/contacts", json=NEW_CONTACT, headers=as_anna).status_code == 403
    assert client.patch(f"/api/v1/companies/{anna.company_id}", json={"city": "x"},
                        headers=as_anna).status_code == 403
    assert client.post("/api/v1/companies", json=NEW_COMPANY, headers=as_anna).status_code == 403
    assert client.post(f"/api/v1/contacts/{bruno.id}/invite", headers=as_anna).status_code == 200
    assert client.post(f"/api/v1/contacts/{anna.id}/invite", headers=as_anna).status_code == 403  # herself
    assert client.post(f"/api/v1/contacts/{carla.id}/invite", headers=as_anna).status_code == 404  # other company
    assert client.post(f"/api/v1/contacts/{anna.id}/invite", headers=as_bruno).status_code == 404  # own scope
    assert client.post(f"/api/v1/contacts/{bruno.id}/invite", headers=as_bruno).status_code == 403  # no manage
    with app.app_context(), db.connection_context():
        assert Contact.get_by_id(bruno.id).role == bruno.role


def test_changing_a_login_email_ends_the_account_s_sessions_and_links_and_warns_the_old_address(app, demo, client):
    """A key with contacts:write moves anna's account to an address it controls: her sessions and
    emailed links die, a reset link sent before the change is void, and anna's own address is told."""
    from crm_portal.account import service
    from crm_portal.models import AccountToken

    anna = demo["contacts"]["anna"]
    browser = app.test_client()
    login(browser, anna.email)
    assert browser.get("/tickets/").status_code == 200
    with app.test_request_context(), db.connection_context(), db.atomic():
        service.send_password_reset(Contact.get_by_id(anna.id))
    token = make_key(app, "contacts:write").token
    response = client.patch(f"/api/v1/contacts/{anna.id}", json={"email": "taken@evil.example"},
                            headers=bearer(token))
    assert response.status_code == 200
    assert browser.get("/tickets/").status_code == 302  # logged out
    with app.app_context(), db.connection_context():
        assert AccountToken.select().where((AccountToken.contact == anna.id) & AccountToken.used_at.is_null()
                                           & AccountToken.revoked_at.is_null()).count() == 0
        (warning,) = OutboxMessage.select().where(OutboxMessage.template == "email-changed")
        assert warning.to_address == "anna@acme.example" and "taken@evil.example" in warning.body_text
        assert warning.subject.startswith("L'indirizzo email del tuo account")
        assert AuditEntry.select().where(AuditEntry.action == "login-email-changed").count() == 1


def test_the_key_form_says_what_contacts_write_allows(app, demo, client):
    from conftest import staff_login

    staff_login(client)
    page = client.get("/admin/core_api_key/new/", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "who receives their password resets" in page.text


def test_two_writes_with_the_same_if_match_apply_once_because_the_row_is_locked(app, demo, monkeypatch):
    """The If-Match check and the write see the same row: while one PATCH holds the contact (a row
    lock on PostgreSQL, the write transaction on SQLite), the other waits, then finds the ETag
    changed (412). Without the lock both would pass the check and the second would overwrite."""
    import threading

    from crm_portal.rest import companies_contacts

    token = make_key(app, "contacts:write").token
    bruno = demo["contacts"]["bruno"]
    etag = app.test_client().get(f"/api/v1/contacts/{bruno.id}", headers=bearer(make_key(app, "contacts:read").token))
    etag = etag.headers["ETag"]
    real, checked, release = companies_contacts.check_if_match, threading.Event(), threading.Event()

    def held_check(row):
        real(row)
        if not checked.is_set():
            checked.set()
            release.wait(1.5)  # the first writer keeps its transaction open a moment
        else:
            release.set()  # the second reached the check while the first still held the row

    monkeypatch.setattr(companies_contacts, "check_if_match", held_check)
    answers: dict[str, int] = {}

    def patch(role: str) -> None:
        response = app.test_client().patch(f"/api/v1/contacts/{bruno.id}", json={"role": role},
                                           headers=bearer(token, **{"If-Match": etag}))
        answers[role] = response.status_code

    first = threading.Thread(target=patch, args=("first",))
    first.start()
    assert checked.wait(10)
    second = threading.Thread(target=patch, args=("second",))
    second.start()
    first.join(15)
    second.join(15)
    assert answers == {"first": 200, "second": 412}
    with app.app_context(), db.connection_context():
        assert Contact.get_by_id(bruno.id).role == "first"
