"""Flask-Admin: staff only, every core model manageable, unknown ids are 404, changes audited."""
from __future__ import annotations

import pytest
from conftest import login, staff_login

from crm_portal.db import db
from crm_portal.models import AuditEntry, Contact, Profile, ProfileModule

CORE_VIEWS = ["core_company", "core_contact", "core_profile", "core_button", "core_staff", "core_audit"]


def test_anonymous_is_sent_to_staff_login(app, demo, client):
    response = client.get("/admin/core_company/")
    assert response.status_code == 302 and "/admin/login" in response.location
    assert client.get("/admin/login").status_code == 200


def test_portal_contact_never_gets_past_it(app, demo, client):
    login(client, "anna@acme.example")
    for view in CORE_VIEWS:
        assert client.get(f"/admin/{view}/").status_code == 404
    assert client.get("/admin/").status_code == 404
    # A contact's password does not open the staff login either.
    client.post("/logout")
    response = client.post("/admin/login", data={"email": "anna@acme.example", "password": "demo"})
    assert response.status_code == 200
    assert client.get("/admin/core_company/").status_code == 302


def test_staff_cannot_use_the_portal_as_a_contact(app, demo, client):
    staff_login(client)
    assert client.get("/contacts/").status_code == 404
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("view", CORE_VIEWS)
def test_admin_lists_and_unknown_ids(app, demo, client, view):
    staff_login(client)
    assert client.get(f"/admin/{view}/").status_code == 200
    assert client.get(f"/admin/{view}/?search=acme").status_code == 200
    assert client.get(f"/admin/{view}/details/?id=999999").status_code == 404
    assert client.get(f"/admin/{view}/details/?id=abc").status_code == 404
    if view != "core_audit":
        assert client.get(f"/admin/{view}/edit/?id=999999").status_code == 404


def test_operator_sees_no_configuration(app, demo, client):
    staff_login(client, "operatore@example.com")
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/core_profile/").status_code == 403
    assert client.get("/admin/core_staff/").status_code == 403


def test_search_and_filter_contacts(app, demo, client):
    staff_login(client)
    page = client.get("/admin/core_contact/?search=bianchi").text
    assert "bruno@acme.example" in page and "anna@acme.example" not in page


def test_edit_contact_access_and_profile_is_audited(app, demo, client):
    staff_login(client)
    bruno = demo["contacts"]["bruno"]
    with app.app_context(), db.connection_context():
        company_profile = Profile.get(Profile.name == "company")
    edit = client.get(f"/admin/core_contact/edit/?id={bruno.id}")
    assert edit.status_code == 200
    form = {"first_name": "Bruno", "last_name": "Bianchi", "email": "BRUNO@acme.example",
            "company": str(bruno.company_id), "profile": str(company_profile.id), "language": "it",
            "portal_access": "y"}
    response = client.post(f"/admin/core_contact/edit/?id={bruno.id}", data=form)
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        saved = Contact.get_by_id(bruno.id)
        assert saved.profile_id == company_profile.id
        assert saved.email == "bruno@acme.example"
        assert AuditEntry.select().where((AuditEntry.action == "admin-updated")
                                         & (AuditEntry.object_id == str(bruno.id))).exists()


def test_revoking_portal_access_logs_the_contact_out(app, demo, client):
    contact_client = app.test_client()
    login(contact_client, "bruno@acme.example")
    assert contact_client.get("/contacts/").status_code == 200
    staff_login(client)
    bruno = demo["contacts"]["bruno"]
    form = {"first_name": "Bruno", "last_name": "Bianchi", "email": "bruno@acme.example",
            "company": str(bruno.company_id), "profile": str(bruno.profile_id), "language": "it"}
    assert client.post(f"/admin/core_contact/edit/?id={bruno.id}", data=form).status_code == 302
    response = contact_client.get("/contacts/")
    assert response.status_code == 302 and "/login" in response.location


def test_profile_editor_runs_under_the_strict_policy(app, demo, client):
    staff_login(client)
    with app.app_context(), db.connection_context():
        profile = Profile.get(Profile.name == "user")
        # precondition: the profile edited below has grants to show (raises if it has none)
        ProfileModule.get((ProfileModule.profile == profile) & (ProfileModule.module == "contacts"))
    page = client.get(f"/admin/core_profile/edit/?id={profile.id}")
    assert page.status_code == 200 and 'data-module="contacts"' in page.text
    assert 'nonce="' in page.text and "js/profile_editor.js" in page.text
    assert " on" + "click=" not in page.text and "<script>" not in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]


def test_admin_pages_escape_user_text(app, demo, client):
    with app.app_context(), db.connection_context():
        Contact.update(role="<img src=x onerror=alert(1)>").where(Contact.email == "bruno@acme.example").execute()
    staff_login(client)
    bruno = demo["contacts"]["bruno"]
    page = client.get(f"/admin/core_contact/details/?id={bruno.id}").text
    assert "<img src=x onerror=alert(1)>" not in page


def test_admin_menu_speaks_the_staff_language(app, demo, client):
    staff_login(client)
    italian = client.get("/admin/", headers={"Accept-Language": "it"}).text
    assert "Aziende" in italian and "Portale" in italian and "Registro attività" in italian
    english = client.get("/admin/", headers={"Accept-Language": "en"}).text
    assert "Companies" in english and "Audit log" in english
