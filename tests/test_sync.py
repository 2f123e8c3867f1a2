"""CRM sync: idempotent upserts by external id, first links by attributes, conflicts staff resolve,
batches with item errors, field ownership (read-only in "My data" and the admin, portal-owned
fields untouched) and the deletion policies."""
from __future__ import annotations

import datetime as dt

import pytest
from api_helpers import bearer, make_key

from crm_portal import signals
from crm_portal.db import db, utcnow
from crm_portal.models import AuditEntry, Company, Contact, ExternalRef, SyncConflict
from crm_portal.sync.deletion import purge
from crm_portal.testing import login, staff_login

COMPANY = {"name": "Wayne Enterprises S.p.A.", "vat_number": "IT55500011122", "city": "Gotham",
           "email_domain": "wayne.example"}
CONTACT = {"first_name": "Bruce", "last_name": "Wayne", "email": "bruce@wayne.example",
           "company_external_id": "C-1"}


@pytest.fixture
def token(app, demo):
    return make_key(app, "sync:write").token


def put(client, token, kind, external_id, data, **headers):
    return client.put(f"/api/v1/sync/{kind}/{external_id}", json=data, headers=bearer(token, **headers))


def _get(app, model, record_id):
    with app.app_context(), db.connection_context():
        return model.get_by_id(record_id)


def _count(app, model, *where) -> int:
    with app.app_context(), db.connection_context():
        query = model.select()
        return (query.where(*where) if where else query).count()


class Seen:
    def __init__(self):
        self.events = []

    def created(self, sender, **kw):
        self.events.append(("created", sender))

    def updated(self, sender, **kw):
        self.events.append(("updated", sender, kw["changes"]))


@pytest.fixture
def seen():
    found = Seen()
    with signals.record_created.connected_to(found.created), signals.record_updated.connected_to(found.updated):
        yield found


# --- scopes -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "body"), [
    ("put", "/api/v1/sync/company/C-1", COMPANY),
    ("post", "/api/v1/sync/company/batch", {"items": [{"external_id": "C-1", "data": COMPANY}]}),
    ("delete", "/api/v1/sync/company/C-1", None),
])
def test_scope_matrix(app, demo, client, method, path, body):
    for scopes, expected in [("tickets:read", 403), ("companies:read companies:write", 403), ("sync:write", None)]:
        response = getattr(client, method)(path, json=body, headers=bearer(make_key(app, scopes).token))
        if expected:
            assert response.status_code == expected and "sync:write" in response.json["message"], scopes
        else:
            assert response.status_code in (200, 201, 404), response.json  # 404: nothing to delete yet
    anna = demo["contacts"]["anna"]
    headers = bearer(make_key(app, "sync:write").token, **{"X-Act-As-Contact": anna.email})
    acting = getattr(client, method)(path, json=body, headers=headers)
    assert acting.status_code == 403


# --- upserts ------------------------------------------------------------------------------------

def test_create_then_unchanged_then_updated(app, token, client, seen):
    first = put(client, token, "company", "C-1", COMPANY)
    assert first.status_code == 201 and first.json["status"] == "created", first.json
    audits = _count(app, AuditEntry)
    again = put(client, token, "company", "C-1", COMPANY)
    assert again.status_code == 200 and again.json["status"] == "unchanged" and again.json["id"] == first.json["id"]
    assert _count(app, AuditEntry) == audits and seen.events == [("created", "companies")]
    changed = put(client, token, "company", "C-1", {**COMPANY, "city": "Metropolis"})
    assert changed.json["status"] == "updated" and changed.json["changes"] == ["city"]
    assert seen.events[-1] == ("updated", "companies", {"city": ("Gotham", "Metropolis")})
    contact = put(client, token, "contact", "P-1", CONTACT)
    assert contact.status_code == 201, contact.json
    assert _get(app, Contact, contact.json["id"]).company_id == first.json["id"]
    assert put(client, token, "contact", "P-1", CONTACT).json["status"] == "unchanged"
    with app.app_context(), db.connection_context():
        entry = AuditEntry.select().where(AuditEntry.action == "created").order_by(AuditEntry.id.desc()).first()
        assert entry.actor_type == "integration" and entry.object_type == "core_contact"


def test_unknown_reference_and_bad_values_are_422_nothing_written(app, token, client):
    before = _count(app, Contact), _count(app, ExternalRef)
    unknown = put(client, token, "contact", "P-1", {**CONTACT, "company_external_id": "nope"})
    assert unknown.status_code == 422 and "company_external_id" in unknown.json["errors"]
    bad = put(client, token, "company", "C-2", {"name": ""})
    assert bad.status_code == 422 and "name" in bad.json["errors"]
    missing = put(client, token, "contact", "P-2", {"first_name": "Solo"})
    assert missing.status_code == 422 and {"last_name", "email"} <= set(missing.json["errors"])
    not_object = client.put("/api/v1/sync/company/C-3", data="[1]", content_type="application/json",
                            headers=bearer(token))
    assert not_object.status_code == 422
    assert (_count(app, Contact), _count(app, ExternalRef)) == before


def test_first_push_links_by_vat_domain_and_email(app, demo, token, client):
    acme, globex, anna = demo["companies"]["acme"], demo["companies"]["globex"], demo["contacts"]["anna"]
    by_vat = put(client, token, "company", "ACME", {"name": acme.name, "vat_number": acme.vat_number})
    assert by_vat.json == {"external_id": "ACME", "status": "unchanged", "id": acme.id, "changes": [],
                           "linked": True}
    by_domain = put(client, token, "company", "GLOBEX",
                    {"name": "Globex S.r.l. (CRM)", "email_domain": "globex.example"})
    assert by_domain.json["id"] == globex.id and by_domain.json["status"] == "updated" and by_domain.json["linked"]
    by_email = put(client, token, "contact", "ANNA", {"email": "ANNA@acme.example", "company_external_id": "ACME",
                                                       "role": "CIO"})
    assert by_email.json["id"] == anna.id and by_email.json["linked"] and by_email.json["changes"] == ["role"]
    assert _count(app, Company) == len(demo["companies"])
    with app.app_context(), db.connection_context():
        assert {(r.type, r.external_id, r.record_id) for r in ExternalRef.select()} == {
            ("company", "ACME", acme.id), ("company", "GLOBEX", globex.id), ("contact", "ANNA", anna.id)}


def test_several_matches_make_a_conflict_staff_resolve(app, demo, token, client):
    acme = demo["companies"]["acme"]
    with app.app_context(), db.connection_context():
        twin = Company.create(name="Acme (duplicate)", vat_number="IT 01234567890")
    pushed = {"name": "Acme S.p.A.", "vat_number": "IT01234567890", "city": "Sesto San Giovanni"}
    response = put(client, token, "company", "ACME", pushed)
    assert response.status_code == 409 and response.json["status"] == "conflict"
    assert sorted(response.json["candidates"]) == sorted([acme.id, twin.id])
    assert put(client, token, "company", "ACME", pushed).status_code == 409  # the same open conflict
    with app.app_context(), db.connection_context():
        conflict = SyncConflict.get()
        assert SyncConflict.select().count() == 1 and not ExternalRef.select().exists()
    staff_login(client)
    page = client.get(f"/admin/core_sync_conflict/resolve/?id={conflict.id}")
    assert page.status_code == 200 and "Acme (duplicate)" in page.text
    refused = client.post(f"/admin/core_sync_conflict/resolve/?id={conflict.id}", data={"record_id": "99999"})
    assert refused.status_code == 400
    done = client.post(f"/admin/core_sync_conflict/resolve/?id={conflict.id}", data={"record_id": str(twin.id)})
    assert done.status_code == 302
    assert _get(app, Company, twin.id).city == "Sesto San Giovanni"
    assert _get(app, SyncConflict, conflict.id).record_id == twin.id
    assert put(client, token, "company", "ACME", pushed).json == {
        "external_id": "ACME", "status": "unchanged", "id": twin.id, "changes": [], "linked": False}
    assert client.get(f"/admin/core_sync_conflict/resolve/?id={conflict.id}").status_code == 404


# --- batches ------------------------------------------------------------------------------------

def test_batch_reports_each_item_and_applies_the_rest(app, token, client):
    put(client, token, "company", "C-1", COMPANY)
    items = [
        {"external_id": "P-1", "data": CONTACT},
        {"external_id": "P-2", "data": {**CONTACT, "email": "alfred@wayne.example", "company_external_id": "X"}},
        {"external_id": "P-3", "data": {**CONTACT, "email": "robin@wayne.example", "password": "x"}},
        {"external_id": "P-1", "data": CONTACT},
        {"external_id": "P-4", "data": {**CONTACT, "email": "bruce@wayne.example", "first_name": "Other"}},
    ]
    response = client.post("/api/v1/sync/contact/batch", json={"items": items}, headers=bearer(token))
    assert response.status_code == 200, response.json
    statuses = [(i["external_id"], i["status"]) for i in response.json["items"]]
    # P-4 has P-1's email: found by it, but P-1's record is already linked → a conflict for staff.
    assert statuses == [("P-1", "created"), ("P-2", "error"), ("P-3", "error"), ("P-1", "unchanged"),
                        ("P-4", "conflict")]
    assert "company_external_id" in response.json["items"][1]["errors"]
    assert "password" in response.json["items"][2]["errors"]
    assert response.json["counts"] == {"created": 1, "updated": 0, "unchanged": 1, "conflict": 1, "error": 2}
    assert _count(app, Contact, Contact.email.endswith("@wayne.example")) == 1
    too_many = client.post("/api/v1/sync/contact/batch", json={"items": [items[0]] * 501}, headers=bearer(token))
    assert too_many.status_code == 422 and "items" in too_many.json["errors"]


def test_batch_queries_do_not_grow_per_reference(app, token, client, queries):
    put(client, token, "company", "C-1", COMPANY)
    items = [{"external_id": f"P-{n}", "data": {**CONTACT, "email": f"p{n}@wayne.example"}} for n in range(10)]
    client.post("/api/v1/sync/contact/batch", json={"items": items}, headers=bearer(token))
    changed = [{"external_id": i["external_id"], "data": {**i["data"], "role": "Staff"}} for i in items]
    with queries:
        response = client.post("/api/v1/sync/contact/batch", json={"items": changed}, headers=bearer(token))
    assert response.json["counts"]["updated"] == 10
    # Per item: savepoint, the record, the email and company checks, the update, its audit entry, its
    # change-log entry, the webhook endpoints subscribed, the reference's stamp, release. The
    # references themselves (and the company's) come in one query.
    assert queries.count <= 10 * 10 + 5


# --- ownership ----------------------------------------------------------------------------------

def test_portal_owned_fields_are_refused_and_never_touched(app, demo, token, client):
    anna = demo["contacts"]["anna"]
    for field, value in [("portal_access", False), ("profile", "user"), ("notify_by_email", False),
                         ("password", "x"), ("notes", "x")]:
        response = put(client, token, "contact", "ANNA", {"email": anna.email, field: value})
        assert response.status_code == 422 and field in response.json["errors"], field
    assert put(client, token, "contact", "ANNA", {"email": anna.email, "role": "CIO"}).status_code == 200
    stored = _get(app, Contact, anna.id)
    assert stored.portal_access and stored.profile_id == anna.profile_id and stored.password_hash
    assert stored.notify_by_email and stored.role == "CIO"


def test_owned_fields_follow_the_setting(app, demo, token, client):
    acme = demo["companies"]["acme"]
    refused = put(client, token, "company", "ACME", {"vat_number": acme.vat_number, "notes": "Gold"})
    assert refused.status_code == 422 and "notes" in refused.json["errors"]
    app.config["SYNC_CRM_OWNED_FIELDS"] = {"company": ["vat_number", "notes"]}
    accepted = put(client, token, "company", "ACME", {"vat_number": acme.vat_number, "notes": "Gold"})
    assert accepted.json["changes"] == ["notes"]
    assert put(client, token, "company", "ACME", {"name": "Renamed"}).status_code == 422


def test_crm_owned_fields_are_read_only_in_my_data(app, demo, token, client):
    anna = demo["contacts"]["anna"]
    login(client, anna.email)
    assert client.post("/me", data={"phone": "+39 02 111", "language": "it"}).status_code == 302
    assert _get(app, Contact, anna.id).phone == "+39 02 111"
    put(client, token, "contact", "ANNA", {"email": anna.email, "phone": "+39 02 222"})
    page = client.get("/me")
    assert 'name="phone"' not in page.text and "+39 02 222" in page.text
    assert 'value="phone"' in page.text  # a change goes through the change request instead
    client.post("/me", data={"phone": "+39 02 333", "language": "it"})
    assert _get(app, Contact, anna.id).phone == "+39 02 222"
    requested = client.post("/me/request", data={"req-field": "phone", "req-message": "+39 02 333"})
    assert requested.status_code == 302


def test_crm_owned_fields_are_read_only_in_the_admin(app, demo, token, client):
    acme, globex = demo["companies"]["acme"], demo["companies"]["globex"]
    put(client, token, "company", "ACME", {"vat_number": acme.vat_number})
    staff_login(client)
    form = client.get(f"/admin/core_company/edit/?id={acme.id}")
    assert form.status_code == 200 and "readonly" in form.text
    for company in (acme, globex):
        response = client.post(f"/admin/core_company/edit/?id={company.id}",
                               data={"name": "Changed", "vat_number": company.vat_number, "notes": "staff note"})
        assert response.status_code == 302
    assert _get(app, Company, acme.id).name == acme.name  # linked: the CRM's
    assert _get(app, Company, acme.id).notes == "staff note"  # not CRM-owned: staff's
    assert _get(app, Company, globex.id).name == "Changed"  # not linked: staff's


# --- deletion -----------------------------------------------------------------------------------

def test_deactivate_policy(app, demo, token, client):
    anna, bruno = demo["contacts"]["anna"], demo["contacts"]["bruno"]
    put(client, token, "contact", "ANNA", {"email": anna.email})
    put(client, token, "company", "ACME", {"vat_number": demo["companies"]["acme"].vat_number})
    deleted = client.delete("/api/v1/sync/contact/ANNA", headers=bearer(token))
    assert deleted.status_code == 200 and deleted.json["status"] == "deactivated"
    assert not _get(app, Contact, anna.id).portal_access and _get(app, Contact, bruno.id).portal_access
    assert client.delete("/api/v1/sync/contact/ANNA", headers=bearer(token)).json["status"] == "deactivated"
    client.delete("/api/v1/sync/company/ACME", headers=bearer(token))
    assert not _get(app, Contact, bruno.id).portal_access
    assert client.delete("/api/v1/sync/contact/UNKNOWN", headers=bearer(token)).status_code == 404


def test_ignore_policy(app, demo, token, client):
    app.config["SYNC_DELETION_POLICY"] = {"contact": "ignore"}
    anna = demo["contacts"]["anna"]
    put(client, token, "contact", "ANNA", {"email": anna.email})
    assert client.delete("/api/v1/sync/contact/ANNA", headers=bearer(token)).json["status"] == "ignored"
    assert _get(app, Contact, anna.id).portal_access


def test_delete_policy_after_days_keeps_contacts_with_tickets(app, demo, token, client, frozen_clock):
    app.config["SYNC_DELETION_POLICY"] = {"contact": "delete"}
    app.config["SYNC_DELETE_AFTER_DAYS"] = 10
    anna = demo["contacts"]["anna"]
    put(client, token, "company", "C-1", COMPANY)
    new = put(client, token, "contact", "P-1", CONTACT).json["id"]
    put(client, token, "contact", "ANNA", {"email": anna.email})
    for external_id in ("P-1", "ANNA"):
        answer = client.delete(f"/api/v1/sync/contact/{external_id}", headers=bearer(token)).json
        assert answer["status"] == "scheduled" and answer["delete_after"]
    with app.app_context(), db.connection_context():
        assert purge() == 0
        assert purge(utcnow() + dt.timedelta(days=11)) == 1
    assert _count(app, Contact, Contact.id == new) == 0
    kept = _get(app, Contact, anna.id)  # she has tickets: never deleted, access off
    assert not kept.portal_access


def test_a_new_push_brings_a_deleted_record_back(app, demo, token, client):
    app.config["SYNC_DELETION_POLICY"] = {"company": "delete"}
    put(client, token, "company", "C-1", COMPANY)
    client.delete("/api/v1/sync/company/C-1", headers=bearer(token))
    assert put(client, token, "company", "C-1", COMPANY).json["status"] == "updated"
    with app.app_context(), db.connection_context():
        assert ExternalRef.get().deleted_at is None
        assert purge(utcnow() + dt.timedelta(days=365)) == 0


# --- module records (products, services, deadlines) -----------------------------------------------

def test_module_records_by_external_id(app, token, client, seen):
    from crm_portal.modules.products.models import Product

    put(client, token, "company", "C-1", COMPANY)
    put(client, token, "contact", "P-1", CONTACT)
    product = {"name": "ERP licence", "code": "ERP-1", "quantity": 5, "support_end": "2027-12-31",
               "company_external_id": "C-1", "contact_external_id": "P-1"}
    made = put(client, token, "product", "L-1", product)
    assert made.status_code == 201, made.json
    assert put(client, token, "product", "L-1", product).json["status"] == "unchanged"
    row = _get(app, Product, made.json["id"])
    assert (row.quantity, str(row.support_end), row.contact_id) == (5, "2027-12-31", _get(
        app, Contact, put(client, token, "contact", "P-1", CONTACT).json["id"]).id)
    assert ("created", "products") in seen.events
    missing = put(client, token, "product", "L-2", {"name": "No company"})
    assert missing.status_code == 422 and "company_external_id" in missing.json["errors"]
    bad = put(client, token, "deadline", "D-1", {"title": "Renewal", "kind": "party", "due_date": "soon",
                                                 "company_external_id": "C-1"})
    assert bad.status_code == 422 and {"kind", "due_date"} <= set(bad.json["errors"])


def test_a_module_record_contact_must_be_of_its_company(app, demo, token, client):
    put(client, token, "company", "ACME", {"vat_number": demo["companies"]["acme"].vat_number})
    put(client, token, "contact", "CARLA", {"email": demo["contacts"]["carla"].email})  # Globex
    response = put(client, token, "deadline", "D-1", {"title": "Renewal", "due_date": "2027-01-31",
                                                      "company_external_id": "ACME", "contact_external_id": "CARLA"})
    assert response.status_code == 422 and "contact_external_id" in response.json["errors"]


def test_module_deletion_policies(app, token, client):
    from crm_portal.modules.deadlines.models import Deadline
    from crm_portal.modules.services.models import Service

    put(client, token, "company", "C-1", COMPANY)
    service = put(client, token, "service", "S-1", {"name": "Assistenza", "contracted_hours": "40.00",
                                                    "company_external_id": "C-1"}).json["id"]
    deadline = put(client, token, "deadline", "D-1", {"title": "Rinnovo", "due_date": "2027-01-31",
                                                      "company_external_id": "C-1"}).json["id"]
    assert client.delete("/api/v1/sync/service/S-1", headers=bearer(token)).json["status"] == "deactivated"
    assert _get(app, Service, service).active is False
    assert client.delete("/api/v1/sync/deadline/D-1", headers=bearer(token)).json["status"] == "scheduled"
    with app.app_context(), db.connection_context():
        assert purge(utcnow() + dt.timedelta(days=31)) == 1
        assert not Deadline.select().where(Deadline.id == deadline).exists()
        assert Service.select().where(Service.id == service).exists()


def test_conflict_pages_speak_italian(app, demo, token, client):
    from test_admin_translations import _english_messages, _ignore, _record_fields, english_left

    from crm_portal.models import StaffUser

    with app.app_context(), db.connection_context():
        Company.create(name="Acme (duplicate)", vat_number="IT01234567890")
        StaffUser.update(language="it").where(StaffUser.email == "admin@example.com").execute()
    put(client, token, "company", "ACME", {"name": "Acme", "vat_number": "IT01234567890"})
    put(client, token, "company", "GLOBEX", {"vat_number": demo["companies"]["globex"].vat_number})
    staff_login(client)
    with app.app_context(), db.connection_context():
        conflict = SyncConflict.get()
    messages, ignore, records = _english_messages(), _ignore(app), _record_fields(app)
    for url in ("/admin/core_sync_conflict/", f"/admin/core_sync_conflict/resolve/?id={conflict.id}",
                "/admin/core_external_ref/"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert not english_left(page.text, messages, ignore, records), (url, english_left(page.text, messages,
                                                                                          ignore, records))


@pytest.mark.parametrize("settings", [
    {"SYNC_CRM_OWNED_FIELDS": {"contact": ["email", "portal_access"]}},
    {"SYNC_CRM_OWNED_FIELDS": {"invoice": ["number"]}},
    {"SYNC_DELETION_POLICY": {"product": "deactivate"}},
    {"SYNC_DELETION_POLICY": {"contact": "shred"}},
    {"SYNC_DELETE_AFTER_DAYS": -1},
])
def test_bad_sync_settings_stop_the_start(tmp_path, settings):
    from crm_portal import create_app

    with pytest.raises(ValueError, match="SYNC_"):
        create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
                    "INSTANCE_PATH": str(tmp_path / "instance"), **settings})
