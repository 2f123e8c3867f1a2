"""The admin for each staff member: language switch and <html lang>, time zone and date formats,
the admin's own 403 page, and the forgotten-password links of the admin login."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from conftest import staff_login

import crm_portal
from crm_portal.account import tokens
from crm_portal.auth import verify_password
from crm_portal.db import db
from crm_portal.models import AuditEntry, Contact, OutboxMessage, StaffToken, StaffUser

NEW_PASSWORD = "correct horse battery staple"
STORED = dt.datetime(2026, 3, 14, 15, 9, 26, 535897)  # naive UTC, as every timestamp is stored


def staff(email: str = "admin@example.com") -> StaffUser:
    return StaffUser.get(StaffUser.email == email)


def set_staff(app, email: str = "admin@example.com", **values) -> None:
    with app.app_context(), db.connection_context():
        StaffUser.update(**values).where(StaffUser.email == email).execute()


# --- language ------------------------------------------------------------------------------------

def test_language_switch_is_saved_on_the_staff_user(app, demo, client):
    set_staff(app, language="it")
    staff_login(client)
    page = client.get("/admin/core_contact/")
    assert '<html lang="it">' in page.text and "Cognome" in page.text
    assert 'value="en"' in page.text and ">English<" in page.text
    response = client.post("/admin/language", data={"language": "en", "next": "/admin/core_contact/"})
    assert response.status_code == 302 and response.location.endswith("/admin/core_contact/")
    with app.app_context(), db.connection_context():
        assert staff().language == "en"
    page = client.get("/admin/core_contact/", headers={"Accept-Language": "it"})
    assert '<html lang="en">' in page.text and "Last name" in page.text and "Cognome" not in page.text
    # Another browser of the same staff member speaks English too: it is saved on them.
    other = app.test_client()
    staff_login(other)
    assert '<html lang="en">' in other.get("/admin/", headers={"Accept-Language": "it"}).text


def test_language_switch_needs_csrf_and_a_known_language(app, demo, client):
    set_staff(app, language="it")
    staff_login(client)
    client.post("/admin/language", data={"language": "en"}, csrf=False)
    client.post("/admin/language", data={"language": "xx"})
    with app.app_context(), db.connection_context():
        assert staff().language == "it"
    # Never sends anyone outside the admin.
    response = client.post("/admin/language", data={"language": "en", "next": "https://evil.example/admin"})
    assert response.location.endswith("/admin/")


def test_login_page_has_the_switch_and_its_language(app, demo, client):
    page = client.get("/admin/login", headers={"Accept-Language": "en"})
    assert '<html lang="en">' in page.text and "Forgot your password?" in page.text
    client.post("/admin/language", data={"language": "it", "next": "/admin/login"})
    page = client.get("/admin/login", headers={"Accept-Language": "en"})
    assert '<html lang="it">' in page.text and "Password dimenticata?" in page.text


def test_flask_admin_speaks_italian_with_its_own_catalogue(app, demo, client):
    """Flask-Admin's messages (domain "admin"), including those its compiled catalogue lacks."""
    set_staff(app, language="it")
    staff_login(client)
    listing = client.get("/admin/core_company/").text
    assert "Aggiungi filtro" in listing and "20 elementi" in listing and "Add Filter" not in listing
    refused = client.post("/admin/core_company/new/", data={})
    assert "Impossibile creare il record." in refused.text


# --- time zone and formats -------------------------------------------------------------------------

def test_times_are_shown_in_the_staff_zone_without_microseconds(app, demo, client):
    with app.app_context(), db.connection_context():
        Contact.update(last_login=STORED).where(Contact.email == "anna@acme.example").execute()
    set_staff(app, language="it", timezone="Asia/Tokyo")
    staff_login(client)
    listing = client.get("/admin/core_contact/?search=anna").text
    assert "00:09" in listing and "15:09" not in listing  # 15:09 UTC is 00:09 the next day in Tokyo
    assert "535897" not in listing and "2026-03-14 15:09" not in listing
    anna = demo["contacts"]["anna"]
    details = client.get(f"/admin/core_contact/details/?id={anna.id}").text
    assert "00:09:26" in details and "535897" not in details
    export = client.get("/admin/core_contact/export/csv/?search=anna").text
    assert "Ultimo accesso (Asia/Tokyo)" in export
    assert "2026-03-15T00:09:26+09:00" in export and "535897" not in export


def test_the_default_zone_is_the_portal_setting(app, demo, client):
    app.config["DEFAULT_TIMEZONE"] = "America/New_York"
    with app.app_context(), db.connection_context():
        Contact.update(last_login=STORED).where(Contact.email == "anna@acme.example").execute()
    staff_login(client)
    export = client.get("/admin/core_contact/export/csv/?search=anna").text
    assert "2026-03-14T11:09:26-04:00" in export and "(America/New_York)" in export


def test_an_unknown_default_zone_stops_the_start(tmp_path):
    from conftest import make_app

    from crm_portal.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="DEFAULT_TIMEZONE"):
        make_app(tmp_path, DEFAULT_TIMEZONE="Mars/Olympus")


def test_preferences_save_language_and_zone(app, demo, client):
    staff_login(client, "operatore@example.com")
    page = client.get("/admin/preferences")
    assert page.status_code == 200 and "Europe/Rome" in page.text
    refused = client.post("/admin/preferences", data={"language": "it", "timezone": "Nowhere/Atlantis"})
    assert refused.status_code == 400
    saved = client.post("/admin/preferences", data={"language": "en", "timezone": "Asia/Tokyo"})
    assert saved.status_code == 302
    with app.app_context(), db.connection_context():
        operator = staff("operatore@example.com")
        assert (operator.language, operator.timezone) == ("en", "Asia/Tokyo")
        assert AuditEntry.select().where(AuditEntry.action == "staff-preferences-changed").exists()
    assert client.post("/admin/preferences", data={"language": "it", "timezone": ""}).status_code == 302
    with app.app_context(), db.connection_context():
        assert staff("operatore@example.com").timezone is None  # back to the portal's default
    assert app.test_client().get("/admin/preferences").status_code == 302  # staff only


def test_staff_form_offers_zones_and_roles_by_name(app, demo, client):
    set_staff(app, language="it")
    staff_login(client)
    admin_id = demo_staff_id(app)
    page = client.get(f"/admin/core_staff/edit/?id={admin_id}").text
    assert ">Amministratore<" in page and ">Operatore<" in page and ">Italiano<" in page
    assert 'value="Europe/Rome"' in page and "Fuso orario" in page
    listing = client.get("/admin/core_staff/").text
    assert "Amministratore" in listing and ">admin<" not in listing


def demo_staff_id(app) -> int:
    with app.app_context(), db.connection_context():
        return staff().id


def test_audit_actions_read_by_name(app, demo, client):
    set_staff(app, language="it")
    staff_login(client)
    page = client.get("/admin/core_audit/").text
    assert "Accesso del personale" in page and ">staff-login<" not in page


AUDIT_CALL = re.compile(r"\b(?:audit|audit_integration)\(\s*[\"']([a-z][a-z0-9_.-]*)[\"']")


def _audit_actions_written() -> set[str]:
    """Every audit action the portal and its shipped modules write under a literal name."""
    root = Path(crm_portal.__file__).resolve().parent.parent
    found: set[str] = set()
    for folder in ("crm_portal", "modules"):
        for path in (root / folder).rglob("*.py"):
            found.update(AUDIT_CALL.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_audit_action_written_reads_by_name(app, demo, client):
    """The audit log names each action staff may find there, in their language: those of viewing
    as a contact, of customers' administrators, of tickets opened for customers or by the API …"""
    from flask_babel import force_locale

    from crm_portal.admin.labels import audit_action_labels

    written = _audit_actions_written()
    assert {"staff-login", "view-as-started", "colleague-invited", "ticket-opened-for-contact",
            "webhook.created"} <= written  # the search works
    labels = audit_action_labels(app.extensions["admin"][0])
    assert sorted(written - set(labels)) == []
    with app.test_request_context():
        for action in written:
            with force_locale("en"):
                english = str(labels[action])
            with force_locale("it"):
                italian = str(labels[action])
            assert english != italian, (action, italian)
    with app.app_context(), db.connection_context():
        anna = Contact.get(Contact.email == "anna@acme.example")
        AuditEntry.create(action="colleague-access-revoked", actor_type="contact", actor_id=anna.id,
                          actor_label=anna.email, object_type="core_contact", object_id=str(anna.id))
    set_staff(app, language="it")
    staff_login(client)
    page = client.get("/admin/core_audit/").text
    assert "Accesso al portale disattivato da un collega" in page and ">colleague-access-revoked<" not in page


def test_search_box_names_its_fields(app, demo, client):
    set_staff(app, language="it")
    staff_login(client)
    page = client.get("/admin/core_contact/").text
    assert 'placeholder="Cerca per Nome, Cognome, Email, Ruolo"' in page
    assert 'placeholder="None"' not in page


def test_an_empty_choice_reads_empty_not_none(app, demo, client):
    """A language left empty (the portal's default) is an empty cell, never Python's "None"."""
    with app.app_context(), db.connection_context():
        Contact.update(language=None).where(Contact.email == "anna@acme.example").execute()
        operator_id = staff("operatore@example.com").id
    set_staff(app, "operatore@example.com", language=None)
    set_staff(app, language="it")
    staff_login(client)
    anna = demo["contacts"]["anna"]
    for url in (f"/admin/core_contact/details/?id={anna.id}", f"/admin/core_staff/details/?id={operator_id}",
                "/admin/core_contact/?search=anna", "/admin/core_staff/"):
        page = client.get(url)
        assert page.status_code == 200 and "Lingua" in page.text, url
        assert not re.search(r">\s*None\s*<", page.text), url


# --- the admin's own 403 page ------------------------------------------------------------------------

def test_operator_gets_the_admin_403_page(app, demo, client):
    set_staff(app, "operatore@example.com", language="it")
    staff_login(client, "operatore@example.com")
    response = client.get("/admin/core_staff/")
    assert response.status_code == 403
    assert "Accesso negato" in response.text and "riservata agli amministratori" in response.text
    assert 'id="admin-navbar-collapse"' in response.text  # the admin's layout, its menu
    assert 'href="/admin/core_staff/"' not in response.text  # which shows only what the operator may open
    assert response.headers["Content-Type"].startswith("text/html")


# --- forgotten password ------------------------------------------------------------------------------

def staff_outbox(app) -> list[OutboxMessage]:
    with app.app_context(), db.connection_context():
        return list(OutboxMessage.select().where(OutboxMessage.template == "staff-password-reset")
                    .order_by(OutboxMessage.id))


def reset_link(app, base: str = "https://crm.example.org") -> str:
    message = staff_outbox(app)[-1]
    match = re.search(re.escape(base) + r"(/admin/reset-password/\S+)", message.body_text)
    assert match, message.body_text
    return match.group(1)


@pytest.fixture
def external(app):
    app.config["EXTERNAL_URL"] = "https://crm.example.org"


def test_staff_reset_link_sets_the_password_once(app, demo, client, external):
    old = app.test_client()
    staff_login(old, "operatore@example.com")
    response = client.post("/admin/forgot-password", data={"email": "Operatore@example.com"})
    assert response.status_code == 302 and "/admin/login" in response.location
    link = reset_link(app)  # built from EXTERNAL_URL, not from the request's host
    assert client.get(link).status_code == 200
    done = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 302
    with app.app_context(), db.connection_context():
        assert verify_password(staff("operatore@example.com").password_hash, NEW_PASSWORD)
        assert AuditEntry.select().where(AuditEntry.action == "staff-password-reset").exists()
    assert old.get("/admin/").status_code == 302  # the sessions from before the reset are over
    staff_login(app.test_client(), "operatore@example.com", NEW_PASSWORD)
    again = app.test_client().post(link, data={"password": "another long passphrase", "confirm":
                                               "another long passphrase"})
    assert again.status_code == 400 and 'data-reason="used"' in again.text


def test_unknown_or_inactive_staff_get_the_same_answer_and_no_email(app, demo, client, external):
    set_staff(app, "operatore@example.com", active=False)
    for email in ("nobody@example.com", "anna@acme.example", "operatore@example.com"):
        response = client.post("/admin/forgot-password", data={"email": email})
        assert response.status_code == 302 and "/admin/login" in response.location
    assert staff_outbox(app) == []
    assert client.post("/admin/forgot-password", data={"email": "not-an-email"}).status_code == 400


def test_a_newer_link_or_a_password_change_ends_the_older_one(app, demo, client, external):
    client.post("/admin/forgot-password", data={"email": "admin@example.com"})
    first = reset_link(app)
    client.post("/admin/forgot-password", data={"email": "admin@example.com"})
    second = reset_link(app)
    assert first != second
    assert 'data-reason="superseded"' in client.get(first).text
    with app.app_context(), db.connection_context():
        StaffUser.update(password_hash="changed").where(StaffUser.email == "admin@example.com").execute()
    assert 'data-reason="superseded"' in client.get(second).text


def test_bad_and_expired_links_are_refused(app, demo, client, external):
    assert client.get("/admin/reset-password/garbage").status_code == 400
    client.post("/admin/forgot-password", data={"email": "admin@example.com"})
    token = reset_link(app).rsplit("/", 1)[1]
    with app.app_context(), db.connection_context(), app.test_request_context():
        assert tokens.check_staff(token).ok
        assert tokens.check_staff(token, max_age=-1).error is tokens.TokenError.EXPIRED
        # A contact's reset token never opens a staff reset (another signature salt).
        assert tokens.check_staff(token[:-2] + "xx").error is tokens.TokenError.INVALID


def test_staff_reset_emails_are_limited_per_account_and_per_address(app, demo, client, external):
    for _ in range(7):
        client.post("/admin/forgot-password", data={"email": "admin@example.com"},
                    environ_base={"REMOTE_ADDR": "10.1.1.1"})
    assert len(staff_outbox(app)) == 5  # per account and hour
    with app.app_context(), db.connection_context():
        assert StaffToken.select().count() == 5
    app.config["MAIL_REQUEST_IP_LIMIT"] = 2
    other = app.test_client()
    for _ in range(2):
        other.post("/admin/forgot-password", data={"email": "nobody@example.com"})
    refused = other.post("/admin/forgot-password", data={"email": "operatore@example.com"})
    assert refused.status_code == 429
    assert len(staff_outbox(app)) == 5


def test_staff_reset_needs_csrf(app, demo, client, external):
    response = client.post("/admin/forgot-password", data={"email": "admin@example.com"}, csrf=False)
    assert response.status_code == 400 and staff_outbox(app) == []


def test_a_deactivated_staff_member_cannot_use_their_link(app, demo, client, external):
    client.post("/admin/forgot-password", data={"email": "operatore@example.com"})
    link = reset_link(app)
    set_staff(app, "operatore@example.com", active=False)
    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 400 and 'data-reason="superseded"' in response.text
    with app.app_context(), db.connection_context():
        assert not verify_password(staff("operatore@example.com").password_hash, NEW_PASSWORD)


def test_admins_set_a_staff_member_zone_from_the_known_ones(app, demo, client):
    staff_login(client)
    with app.app_context(), db.connection_context():
        operator = staff("operatore@example.com")
    form = {"email": operator.email, "name": operator.name, "role": "operator", "active": "y", "language": "it"}
    url = f"/admin/core_staff/edit/?id={operator.id}"
    refused = client.post(url, data={**form, "timezone": "Nowhere/Atlantis"})
    assert refused.status_code == 200  # the form again, with its error
    with app.app_context(), db.connection_context():
        assert staff("operatore@example.com").timezone is None
    assert client.post(url, data={**form, "timezone": "Asia/Tokyo"}).status_code == 302
    with app.app_context(), db.connection_context():
        assert staff("operatore@example.com").timezone == "Asia/Tokyo"
    assert client.post(url, data={**form, "timezone": ""}).status_code == 302
    with app.app_context(), db.connection_context():
        assert staff("operatore@example.com").timezone is None
