"""Accounts: my data, password change, forgotten password and its one-time links, invitations,
self-registration and a password change forced at first login."""
from __future__ import annotations

import re

import pytest
from conftest import login, make_app, staff_login

from crm_portal import signals
from crm_portal.account import compile_translations, tokens
from crm_portal.auth import hash_password, verify_password
from crm_portal.db import db
from crm_portal.models import AccountToken, AuditEntry, Contact, OutboxMessage

compile_translations()

NEW_PASSWORD = "correct horse battery staple"
ACCOUNT_TEMPLATES = ("invitation", "access-enabled", "password-reset", "password-changed", "registration-confirm",
                     "registration-exists", "registration-review", "change-request")

def same_page(html: str, email: str) -> str:
    """The page with the typed address and the (time-stamped) CSRF tokens masked."""
    return re.sub(r'(name="csrf_token"[^>]*value=)"[^"]*"', r"\1csrf", html.replace(email, "X"))



def contact(email: str) -> Contact:
    return Contact.get(Contact.email == email)


def outbox(app, template: str | None = None, to: str | None = None) -> list[OutboxMessage]:
    with app.app_context(), db.connection_context():
        query = OutboxMessage.select().order_by(OutboxMessage.id)
        if template:
            query = query.where(OutboxMessage.template == template)
        else:  # account emails only (demo data of other modules may queue their own)
            query = query.where(OutboxMessage.template.in_(ACCOUNT_TEMPLATES))
        if to:
            query = query.where(OutboxMessage.to_address == to)
        return list(query)


def link_in(message: OutboxMessage) -> str:
    match = re.search(r"http://portal\.test(/\S+)", message.body_text)
    assert match, message.body_text
    return match.group(1)


def request_reset(client, app, email: str = "anna@acme.example") -> str:
    response = client.post("/forgot-password", data={"email": email})
    assert response.status_code == 200
    return link_in(outbox(app, "password-reset", email)[-1])


# --- my data --------------------------------------------------------------------------------------

def test_me_shows_own_data(app, demo, client):
    login(client, "anna@acme.example")
    page = client.get("/me")
    assert page.status_code == 200
    for text in ("Anna Rossi", "anna@acme.example", "Responsabile IT", "Sede di Milano", "Acme S.p.A."):
        assert text in page.text
    assert "bruno@acme.example" not in page.text


def test_me_needs_login_and_is_not_for_staff(app, demo, client):
    assert client.get("/me").status_code == 302
    staff_login(client)
    assert client.get("/me").status_code == 404


def test_me_saves_only_editable_fields(app, demo, client):
    login(client, "bruno@acme.example")
    response = client.post("/me", data={"phone": "+39 02 123", "mobile": "333 1234567", "language": "en",
                                        "notify_by_email": "", "email": "evil@evil.example", "role": "Boss"})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        bruno = contact("bruno@acme.example")
        assert (bruno.phone, bruno.mobile, bruno.language, bruno.notify_by_email) == \
            ("+39 02 123", "333 1234567", "en", False)
        assert bruno.role == "Amministrazione"
        assert AuditEntry.select().where(AuditEntry.action == "account-updated").count() == 1


def test_me_rejects_bad_fields_and_saves_nothing(app, demo, client):
    login(client, "bruno@acme.example")
    for data in ({"phone": "1" * 41, "mobile": "", "language": "it"},
                 {"phone": "<script>", "mobile": "", "language": "it"},
                 {"phone": "", "mobile": "", "language": "xx"}):
        response = client.post("/me", data=data)
        assert response.status_code == 400
        assert "invalid-feedback" in response.text
    with app.app_context(), db.connection_context():
        assert contact("bruno@acme.example").phone == "+39 02 5550001"


def test_admin_decides_what_is_editable(tmp_path):
    app = make_app(tmp_path, ACCOUNT_EDITABLE_FIELDS=["language"])
    from crm_portal.demo import load_demo

    with app.app_context(), db.connection_context():
        load_demo(app)
    client = app.test_client()
    login(client, "bruno@acme.example")
    assert 'name="phone"' not in client.get("/me").text
    client.post("/me", data={"phone": "999", "language": "en"})
    with app.app_context(), db.connection_context():
        bruno = contact("bruno@acme.example")
        assert bruno.language == "en" and bruno.phone == "+39 02 5550001"


def test_change_request_goes_to_support_without_tickets(app, demo, client):
    from crm_portal.models import ProfileModule

    with app.app_context(), db.connection_context():  # bruno's profile without the tickets module
        ProfileModule.delete().where((ProfileModule.profile == contact("bruno@acme.example").profile_id)
                                     & (ProfileModule.module == "tickets")).execute()
    login(client, "bruno@acme.example")
    response = client.post("/me/request", data={"req-field": "role", "req-message": "Now I am the CFO"})
    assert response.status_code == 302
    [message] = outbox(app, "change-request")
    assert message.to_address == app.config["SUPPORT_EMAIL"]
    assert "Now I am the CFO" in message.body_text and "bruno@acme.example" in message.body_text
    assert message.language == app.config["BABEL_DEFAULT_LOCALE"]


def test_change_request_taken_over_by_a_receiver(app, demo, client):
    seen = []

    def open_ticket(sender, contact, field, message):
        seen.append((contact.email, field, message))
        return "ticket #1"

    signals.change_requested.connect(open_ticket)
    try:
        login(client, "bruno@acme.example")
        client.post("/me/request", data={"req-field": "email", "req-message": "bruno.bianchi@acme.example"})
    finally:
        signals.change_requested.disconnect(open_ticket)
    assert seen == [("bruno@acme.example", "email", "bruno.bianchi@acme.example")]
    assert outbox(app, "change-request") == []


def test_change_request_empty_or_too_long(app, demo, client):
    login(client, "bruno@acme.example")
    assert client.post("/me/request", data={"req-field": "role", "req-message": ""}).status_code == 400
    assert client.post("/me/request", data={"req-field": "role", "req-message": "x" * 2001}).status_code == 400
    assert client.post("/me/request", data={"req-field": "salary", "req-message": "more"}).status_code == 400
    assert outbox(app, "change-request") == []


# --- change password ---------------------------------------------------------------------------

@pytest.mark.parametrize("current,new,error", [
    ("wrong", NEW_PASSWORD, "The current password is not correct."),
    ("demo", "short1", "Use at least 10 characters."),
    ("demo", "password123", "too common"),
    ("demo", "Qwertyuiop", "too common"),
    ("demo", "aaaaaaaaaaaa", "too common"),
    ("demo", "x" * 1025, "Use at most 1024 characters."),
    ("demo", "carla@globex.example", "must not be your email"),
    ("", NEW_PASSWORD, "This field is required."),
])
def test_change_password_rejects(app, demo, client, current, new, error):
    login(client, "carla@globex.example")
    response = client.post("/me/password", data={"current_password": current, "password": new, "confirm": new})
    assert response.status_code == 400
    assert error in response.text
    with app.app_context(), db.connection_context():
        assert verify_password(contact("carla@globex.example").password_hash, "demo")
    assert outbox(app, "password-changed") == []


def test_change_password_confirmation_must_match(app, demo, client):
    login(client, "carla@globex.example")
    response = client.post("/me/password", data={"current_password": "demo", "password": NEW_PASSWORD,
                                                  "confirm": NEW_PASSWORD + "!"})
    assert response.status_code == 400 and "do not match" in response.text


def test_change_password_accepts_long_passphrase_and_ends_other_sessions(app, demo):
    here, elsewhere = app.test_client(), app.test_client()
    login(here, "bruno@acme.example")
    login(elsewhere, "bruno@acme.example")
    long_password = "my very long passphrase about a tram in Milano on a rainy Tuesday evening!"
    assert len(long_password) >= 64
    response = here.post("/me/password", data={"current_password": "demo", "password": long_password,
                                                "confirm": long_password})
    assert response.status_code == 302
    assert here.get("/me").status_code == 200            # this browser stays logged in
    assert elsewhere.get("/me").status_code == 302       # every other session is gone
    [message] = outbox(app, "password-changed")
    assert message.to_address == "bruno@acme.example"
    assert long_password not in message.body_text
    login(app.test_client(), "bruno@acme.example", long_password)


def test_temporary_password_forces_a_change_first(app, demo, client):
    with app.app_context(), db.connection_context():
        Contact.update(password_hash=hash_password("temporary-123"), must_change_password=True) \
            .where(Contact.email == "chiara@acme.example").execute()
    login(client, "chiara@acme.example", "temporary-123")
    for url in ("/", "/me", "/contacts/"):
        response = client.get(url)
        assert response.status_code == 302 and response.location.endswith("/me/password")
    assert client.get("/me/password").status_code == 200
    response = client.post("/me/password", data={"current_password": "temporary-123", "password": NEW_PASSWORD,
                                                  "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    with app.app_context(), db.connection_context():
        assert contact("chiara@acme.example").must_change_password is False
    assert len(outbox(app, "password-changed")) == 1


# --- forgotten password --------------------------------------------------------------------------

def test_forgot_password_same_answer_for_unknown_email(app, demo, client):
    known = client.post("/forgot-password", data={"email": "anna@acme.example"})
    unknown = client.post("/forgot-password", data={"email": "nobody@acme.example"})
    assert known.status_code == unknown.status_code == 200
    assert same_page(known.text, "anna@acme.example") == same_page(unknown.text, "nobody@acme.example")
    assert [m.to_address for m in outbox(app, "password-reset")] == ["anna@acme.example"]


def test_forgot_password_bad_input(app, demo, client):
    assert client.post("/forgot-password", data={"email": ""}).status_code == 400
    assert client.post("/forgot-password", data={"email": "not-an-email"}).status_code == 400
    assert client.post("/forgot-password", data={"email": "a" * 250 + "@x.example"}).status_code == 400
    assert outbox(app) == []


def test_reset_link_sets_password_once(app, demo, client):
    link = request_reset(client, app)
    assert "reset-password" in link
    assert client.get(link).status_code == 200
    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert client.get("/me").status_code == 200  # logged in by the reset
    [changed] = outbox(app, "password-changed")
    assert changed.to_address == "anna@acme.example"
    login(app.test_client(), "anna@acme.example", NEW_PASSWORD)

    again = app.test_client().post(link, data={"password": "another good passphrase",
                                               "confirm": "another good passphrase"})
    assert again.status_code == 400
    assert 'data-reason="used"' in again.text and "/forgot-password" in again.text


def test_reset_link_rejects_weak_password_and_keeps_working(app, demo, client):
    link = request_reset(client, app)
    response = client.post(link, data={"password": "password123", "confirm": "password123"})
    assert response.status_code == 400 and "too common" in response.text
    assert client.get(link).status_code == 200


def test_newer_link_supersedes_older(app, demo, client):
    first = request_reset(client, app)
    second = request_reset(client, app)
    assert first != second
    response = client.get(first)
    assert response.status_code == 400 and 'data-reason="superseded"' in response.text
    assert client.get(second).status_code == 200


def test_password_change_kills_reset_link(app, demo, client):
    link = request_reset(client, app)
    login(client, "anna@acme.example")
    client.post("/me/password", data={"current_password": "demo", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    response = app.test_client().get(link)
    assert response.status_code == 400 and 'data-reason="superseded"' in response.text


def test_password_change_elsewhere_kills_link_even_without_revocation(app, demo, client):
    link = request_reset(client, app)
    with app.app_context(), db.connection_context():
        # e.g. staff set a temporary password in the admin: the fingerprint no longer matches
        Contact.update(password_hash=hash_password("set-by-staff-1")) \
            .where(Contact.email == "anna@acme.example").execute()
    assert 'data-reason="superseded"' in client.get(link).text


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: t[:20],
    lambda t: "x" * 5000,
    lambda t: "not-a-token",
])
def test_tampered_link(app, demo, client, mangle):
    link = request_reset(client, app)
    token = link.rsplit("/", 1)[1]
    response = client.get(f"/reset-password/{mangle(token)}")
    assert response.status_code in (400, 404)
    if response.status_code == 400:
        assert 'data-reason="invalid"' in response.text


def test_token_signed_for_another_purpose_is_invalid(app, demo):
    with app.test_request_context(), db.connection_context():
        anna = contact("anna@acme.example")
        invite = tokens.issue(anna, "invite")
        assert tokens.check(invite, "reset").error is tokens.TokenError.INVALID
        assert tokens.check(invite, "invite").ok


def test_token_expiry_frozen_clock(app, demo, monkeypatch):
    clock = {"now": 1_800_000_000.0}
    monkeypatch.setattr(tokens, "now", lambda: clock["now"])
    with app.test_request_context(), db.connection_context():
        anna = contact("anna@acme.example")
        token = tokens.issue(anna, "reset")
        limit = app.config["PASSWORD_RESET_MAX_AGE"]
        assert limit == 3600
        clock["now"] += limit
        assert tokens.check(token, "reset").ok
        clock["now"] += 1
        assert tokens.check(token, "reset").error is tokens.TokenError.EXPIRED


def test_expired_link_page_offers_a_new_one(app, demo, client, monkeypatch):
    clock = {"now": 1_800_000_000.0}
    monkeypatch.setattr(tokens, "now", lambda: clock["now"])
    link = request_reset(client, app)
    clock["now"] += app.config["PASSWORD_RESET_MAX_AGE"] + 1
    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 400
    assert 'data-reason="expired"' in response.text and 'href="/forgot-password"' in response.text
    with app.app_context(), db.connection_context():
        assert verify_password(contact("anna@acme.example").password_hash, "demo")


def test_reset_emails_are_limited(app, demo, client):
    for _ in range(8):
        client.post("/forgot-password", data={"email": "anna@acme.example"})
    assert len(outbox(app, "password-reset")) == 5


def test_no_reset_for_contact_without_access(app, demo, client):
    with app.app_context(), db.connection_context():
        Contact.update(portal_access=False).where(Contact.email == "anna@acme.example").execute()
    assert client.post("/forgot-password", data={"email": "anna@acme.example"}).status_code == 200
    assert outbox(app, "password-reset") == []


# --- invitations -----------------------------------------------------------------------------------

def _admin_edit_contact(client, contact_id: int, **changes):
    from crm_portal.models import Contact as C

    with client.application.app_context(), db.connection_context():
        c = C.get_by_id(contact_id)
        data = {"first_name": c.first_name, "last_name": c.last_name, "email": c.email, "phone": c.phone or "",
                "language": c.language or "", "company": str(c.company_id or "__None"),
                "profile": str(c.profile_id or "__None")}
        if c.portal_access:
            data["portal_access"] = "y"
        if c.must_change_password:
            data["must_change_password"] = "y"
        if c.notify_by_email:
            data["notify_by_email"] = "y"
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(f"/admin/core_contact/edit/?id={contact_id}", data=data)


def test_enabling_portal_access_sends_invitation(app, demo):
    with app.app_context(), db.connection_context():
        new = Contact.create(first_name="Nina", last_name="Nuova", email="nina@acme.example",
                             company=demo["companies"]["acme"].id, language="it")
    admin = app.test_client()
    staff_login(admin)
    response = _admin_edit_contact(admin, new.id, portal_access="y")
    assert response.status_code == 302
    [invitation] = outbox(app, "invitation")
    assert invitation.to_address == "nina@acme.example" and invitation.language == "it"
    assert "Il tuo accesso" in invitation.subject and "Buongiorno Nina" in invitation.body_text
    assert ("password" not in invitation.body_text.split("http")[0].lower()
            or "scegliere la tua password" in invitation.body_text)

    # saving again does not send another one
    _admin_edit_contact(admin, new.id, portal_access="y")
    assert len(outbox(app, "invitation")) == 1

    client = app.test_client()
    link = link_in(invitation)
    assert client.get(link).status_code == 200
    assert client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 302
    assert client.get("/me").status_code == 200
    assert client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 400


def test_enabling_access_of_contact_with_password_announces_it(app, demo):
    with app.app_context(), db.connection_context():
        Contact.update(portal_access=False).where(Contact.email == "bruno@acme.example").execute()
        bruno = contact("bruno@acme.example")
    admin = app.test_client()
    staff_login(admin)
    _admin_edit_contact(admin, bruno.id, portal_access="y")
    assert outbox(app, "invitation") == []
    [message] = outbox(app, "access-enabled")
    assert message.to_address == "bruno@acme.example"


def test_invitation_can_be_switched_off(tmp_path):
    app = make_app(tmp_path, INVITE_ON_PORTAL_ACCESS=False)
    from crm_portal.demo import load_demo

    with app.app_context(), db.connection_context():
        load_demo(app)
        new = Contact.create(first_name="Nina", last_name="Nuova", email="nina@acme.example")
    admin = app.test_client()
    staff_login(admin)
    _admin_edit_contact(admin, new.id, portal_access="y")
    assert outbox(app) == []


def test_admin_action_resends_invitation(app, demo):
    admin = app.test_client()
    staff_login(admin)
    anna = demo["contacts"]["anna"]
    response = admin.post("/admin/core_contact/action/", data={"action": "invite", "rowid": [str(anna.id)]})
    assert response.status_code == 302
    assert [m.to_address for m in outbox(app, "invitation")] == ["anna@acme.example"]


# --- self-registration ---------------------------------------------------------------------------

@pytest.fixture
def reg_app(tmp_path):
    from crm_portal.demo import load_demo

    app = make_app(tmp_path, SELF_REGISTRATION=True)
    with app.app_context(), db.connection_context():
        load_demo(app)
    return app


REGISTRANT = {"first_name": "Marta", "last_name": "Blu", "email": "marta@acme.example",
              "company_name": "Acme", "vat_number": "", "phone": "02 1234"}


def test_registration_is_off_by_default(app, demo, client):
    assert client.get("/register").status_code == 404
    assert "/register" not in client.get("/login").text


def test_registration_with_company_domain_activates_after_confirmation(reg_app):
    client = reg_app.test_client()
    assert "/register" in client.get("/login").text
    response = client.post("/register", data=REGISTRANT)
    assert response.status_code == 200 and "marta@acme.example" in response.text
    with reg_app.app_context(), db.connection_context():
        assert Contact.get_or_none(Contact.email == "marta@acme.example") is None  # not before confirmation
    link = link_in(outbox(reg_app, "registration-confirm")[0])
    assert client.get(link).status_code == 200
    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    with reg_app.app_context(), db.connection_context():
        marta = contact("marta@acme.example")
        assert marta.portal_access and marta.company.name == "Acme S.p.A." and marta.profile.name == "user"
    assert client.get("/me").status_code == 200
    again = reg_app.test_client().post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert again.status_code == 400 and 'data-reason="used"' in again.text


def test_registration_without_match_waits_for_approval(reg_app):
    client = reg_app.test_client()
    client.post("/register", data={**REGISTRANT, "email": "marta@gmail.example", "vat_number": "IT01234567890"})
    link = link_in(outbox(reg_app, "registration-confirm")[0])
    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 200 and 'data-testid="register-pending"' in response.text
    with reg_app.app_context(), db.connection_context():
        marta = contact("marta@gmail.example")
        assert not marta.portal_access
        assert marta.company.name == "Acme S.p.A."  # matched by VAT number, but VAT is public: staff decide
    [review] = outbox(reg_app, "registration-review")
    assert review.to_address == reg_app.config["SUPPORT_EMAIL"]
    assert reg_app.test_client().post("/login", data={"email": "marta@gmail.example",
                                                      "password": NEW_PASSWORD}).status_code == 200


def test_registration_of_existing_email_gives_same_page(reg_app):
    client = reg_app.test_client()
    new = client.post("/register", data={**REGISTRANT, "email": "new@acme.example"})
    old = client.post("/register", data={**REGISTRANT, "email": "anna@acme.example"})
    assert same_page(new.text, "new@acme.example") == same_page(old.text, "anna@acme.example")
    [notice] = outbox(reg_app, "registration-exists")
    assert notice.to_address == "anna@acme.example" and "/forgot-password" in notice.body_text


def test_registration_bad_input(reg_app):
    client = reg_app.test_client()
    for data in ({**REGISTRANT, "email": "nope"}, {**REGISTRANT, "first_name": ""},
                 {**REGISTRANT, "last_name": "x" * 101}, {**REGISTRANT, "vat_number": "<b>"}):
        assert client.post("/register", data=data).status_code == 400
    assert outbox(reg_app) == []


# --- email language ------------------------------------------------------------------------------

def test_emails_in_recipient_language(app, demo, client):
    client.post("/forgot-password", data={"email": "anna@acme.example"})   # Italian
    client.post("/forgot-password", data={"email": "carla@globex.example"})  # English
    [anna] = outbox(app, "password-reset", "anna@acme.example")
    [carla] = outbox(app, "password-reset", "carla@globex.example")
    assert anna.language == "it" and "Scegli una nuova password" in anna.subject
    assert "Buongiorno Anna" in anna.body_text and "scade tra 60 minuti" in anna.body_text
    assert "Buongiorno Anna" in anna.body_html and 'lang="it"' in anna.body_html
    assert carla.language == "en" and "Choose a new password" in carla.subject
    assert "Hello Carla" in carla.body_text and "expires in 60 minutes" in carla.body_text


def test_italian_pages(app, demo, client):
    login(client, "anna@acme.example")
    assert "I tuoi dati" in client.get("/me").text
    assert "Password attuale" in client.get("/me/password").text
    anonymous = app.test_client()
    anonymous.post("/lang/it")
    assert "Invia il link" in anonymous.get("/forgot-password").text


def test_tokens_table_rows(app, demo, client):
    request_reset(client, app)
    request_reset(client, app)
    with app.app_context(), db.connection_context():
        rows = list(AccountToken.select().order_by(AccountToken.id))
        assert len(rows) == 2 and rows[0].revoked_at is not None and rows[1].revoked_at is None


def test_password_reset_requests_are_limited_per_address(app, demo, client):
    app.config["MAIL_REQUEST_IP_LIMIT"] = 3
    for _ in range(3):
        assert client.post("/forgot-password", data={"email": "nobody@example.org"}).status_code == 200
    refused = client.post("/forgot-password", data={"email": "bruno@acme.example"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert outbox(app, "password-reset") == []  # nothing sent while refused
    other = app.test_client()
    assert other.post("/forgot-password", data={"email": "bruno@acme.example"},
                      environ_base={"REMOTE_ADDR": "10.9.8.7"}).status_code == 200
    assert len(outbox(app, "password-reset")) == 1


def test_staff_changing_a_login_email_logs_the_account_out_and_warns_the_old_address(app, demo):
    anna = demo["contacts"]["anna"]
    browser = app.test_client()
    login(browser, anna.email)
    admin = app.test_client()
    staff_login(admin)
    assert _admin_edit_contact(admin, anna.id, email="Anna.Rossi@acme.example").status_code == 302
    assert browser.get("/tickets/").status_code == 302
    [warning] = outbox(app, "email-changed")
    assert warning.to_address == "anna@acme.example" and "anna.rossi@acme.example" in warning.body_text
    # Another change that leaves the address alone warns nobody.
    assert _admin_edit_contact(admin, anna.id, phone="+39 02 1234").status_code == 302
    assert len(outbox(app, "email-changed")) == 1
