"""Account hygiene: the contact's signed-in browsers (listed, ended one by one or all but this one,
by staff too), the email about a login from a new browser, and weak or breached passwords refused
wherever a password is set."""
from __future__ import annotations

import re

import pytest
from conftest import staff_login
from test_security_audit import _admin_edit_contact

from crm_portal import create_app
from crm_portal.account import compile_translations, tokens
from crm_portal.auth import verify_password
from crm_portal.db import db
from crm_portal.models import AuditEntry, Contact, LoginSession, OutboxMessage, StaffUser

compile_translations()

SESSION_COOKIE = "crm_portal_session"
REMEMBER_COOKIE = "crm_portal_remember"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"
SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.1 Mobile/15E148 Safari/604.1")
STRONG = "correct horse battery staple"


def browser(app, user_agent: str, ip: str):
    client = app.test_client()
    client.environ_base.update({"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": ip})
    return client


def cookie(client, name):
    found = client.get_cookie(name, domain="portal.test")
    return found.value if found else None


def logged_in(app, user_agent=FIREFOX, ip="203.0.113.7", email="carla@globex.example", password="demo"):
    client = browser(app, user_agent, ip)
    response = client.post("/login", data={"email": email, "password": password, "remember": "y"})
    assert response.status_code == 302, response.text
    return client


def replay(app, name: str, value: str):
    """A fresh browser carrying only a captured cookie."""
    thief = app.test_client()
    thief.set_cookie(name, value, domain="portal.test")
    return thief


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-testid="login-session">(.*?)</tr>', html, re.S)


def record_ids(app, email="carla@globex.example") -> list[int]:
    with app.app_context(), db.connection_context():
        return [r.id for r in LoginSession.select().join(Contact).where(Contact.email == email)
                .order_by(LoginSession.id)]


def emails(app, template: str, to: str | None = None) -> list[OutboxMessage]:
    with app.app_context(), db.connection_context():
        query = OutboxMessage.select().where(OutboxMessage.template == template).order_by(OutboxMessage.id)
        return list(query.where(OutboxMessage.to_address == to) if to else query)


def audits(app, action: str) -> list[AuditEntry]:
    with app.app_context(), db.connection_context():
        return list(AuditEntry.select().where(AuditEntry.action == action))


# --- sessions and devices ------------------------------------------------------------------------

def test_my_data_lists_both_browsers_in_plain_words(app, demo):
    desk = logged_in(app, FIREFOX, "203.0.113.7")
    logged_in(app, SAFARI, "198.51.100.9")
    page = desk.get("/me")
    assert page.status_code == 200
    found = rows(page.text)
    assert len(found) == 2
    [mine] = [r for r in found if 'data-testid="this-device"' in r]
    assert "Firefox on Windows" in mine and "203.0.113.7" in mine and "end-session" not in mine
    [other] = [r for r in found if r is not mine]
    assert "Mobile Safari on iOS" in other and "198.51.100.9" in other and "end-session" in other
    assert 'data-testid="end-other-sessions"' in page.text


def test_log_out_everywhere_else_ends_the_other_browser_and_its_remember_cookie(app, demo):
    desk = logged_in(app, FIREFOX, "203.0.113.7")
    phone = logged_in(app, SAFARI, "198.51.100.9")
    phone_session, phone_remember = cookie(phone, SESSION_COOKIE), cookie(phone, REMEMBER_COOKIE)
    desk_remember = cookie(desk, REMEMBER_COOKIE)

    assert desk.post("/me/sessions/end-others").status_code == 302
    assert desk.get("/me").status_code == 200  # this browser stays
    assert cookie(desk, REMEMBER_COOKIE) not in (None, desk_remember)  # with a remember-me cookie that works
    assert replay(app, REMEMBER_COOKIE, cookie(desk, REMEMBER_COOKIE)).get("/me").status_code == 200
    assert phone.get("/me").status_code == 302  # the other is logged out at its next request
    for name, value in ((SESSION_COOKIE, phone_session), (REMEMBER_COOKIE, phone_remember)):
        assert replay(app, name, value).get("/me").status_code == 302
    assert len(rows(desk.get("/me").text)) == 1
    [entry] = audits(app, "sessions-ended")
    assert entry.actor_type == "contact" and '"ended": 1' in entry.details


def test_log_out_one_device(app, demo):
    desk = logged_in(app, FIREFOX, "203.0.113.7")
    phone = logged_in(app, SAFARI, "198.51.100.9")
    tablet = logged_in(app, SAFARI, "198.51.100.10")
    mine, phone_id, tablet_id = record_ids(app)
    assert desk.post(f"/me/sessions/{phone_id}/end").status_code == 302
    assert phone.get("/me").status_code == 302
    assert desk.get("/me").status_code == 200 and tablet.get("/me").status_code == 200
    assert desk.post(f"/me/sessions/{phone_id}/end").status_code == 404  # ended already
    assert desk.post(f"/me/sessions/{mine}/end").status_code == 404  # this browser logs out with the button
    anna = logged_in(app, email="anna@acme.example")
    assert anna.post(f"/me/sessions/{tablet_id}/end").status_code == 404  # another contact's session
    assert tablet.get("/me").status_code == 200
    assert [e.details for e in audits(app, "session-ended")] == [f'{{"session": {phone_id}}}']


def test_a_revoked_session_cannot_be_replayed(app, demo):
    """The session token is not rotated by a one-device logout: only the revoked record refuses
    the captured cookies."""
    desk = logged_in(app)
    phone = logged_in(app, SAFARI, "198.51.100.9")
    captured = {name: cookie(phone, name) for name in (SESSION_COOKIE, REMEMBER_COOKIE)}
    phone_id = record_ids(app)[1]
    desk.post(f"/me/sessions/{phone_id}/end")
    for name, value in captured.items():
        assert replay(app, name, value).get("/me").status_code == 302, name
    assert desk.get("/me").status_code == 200


def test_last_seen_is_written_at_most_every_few_minutes(app, demo, frozen_clock, queries):
    desk = logged_in(app)
    with queries:
        desk.get("/me")
    quiet = queries.count
    assert not [q for q in queries.queries if "UPDATE" in q and "core_login_session" in q]
    frozen_clock.advance(minutes=6)
    with queries:
        desk.get("/me")
    assert [q for q in queries.queries if "UPDATE" in q and "core_login_session" in q]
    assert queries.count <= quiet + 3  # at most the update (and its BEGIN/COMMIT)
    with app.app_context(), db.connection_context():
        assert LoginSession.get_by_id(record_ids(app)[0]).last_seen_at == frozen_clock.now


def test_staff_see_a_contacts_sessions_and_log_them_all_out(app, demo):
    desk = logged_in(app)
    phone = logged_in(app, SAFARI, "198.51.100.9")
    carla = demo["contacts"]["carla"]
    admin = app.test_client()
    staff_login(admin)
    assert 'data-testid="sessions-link"' in admin.get(f"/admin/core_contact/edit/?id={carla.id}").text
    page = admin.get(f"/admin/contact-sessions/{carla.id}/")
    assert page.status_code == 200 and len(rows(page.text)) == 2 and "Firefox on Windows" in page.text
    assert admin.get("/admin/contact-sessions/999999/").status_code == 404
    assert admin.post(f"/admin/contact-sessions/{carla.id}/").status_code == 302
    assert desk.get("/me").status_code == 302 and phone.get("/me").status_code == 302
    [entry] = audits(app, "sessions-ended-by-staff")
    assert entry.actor_type == "staff" and entry.object_id == str(carla.id)
    assert len(rows(admin.get(f"/admin/contact-sessions/{carla.id}/").text)) == 0
    assert desk.get(f"/admin/contact-sessions/{carla.id}/").status_code in (302, 404)  # never a contact's


# --- an email on a login from a new device ------------------------------------------------------

def test_a_new_device_is_announced_once_a_known_one_is_not(app, demo):
    desk = logged_in(app)  # the account's first session: nothing to compare with
    assert emails(app, "new-device-login") == []
    logged_in(app, SAFARI, "198.51.100.9")
    [message] = emails(app, "new-device-login", "carla@globex.example")
    assert "Mobile Safari on iOS" in message.body_text and "198.51.100.9" in message.body_text
    assert "http://portal.test/me#sessions" in message.body_text
    assert "http://portal.test/me/password" in message.body_text
    desk.post("/logout")
    desk.post("/login", data={"email": "carla@globex.example", "password": "demo"})  # the desk is known
    assert desk.get("/me").status_code == 200
    assert len(emails(app, "new-device-login")) == 1


def test_the_new_device_email_speaks_the_contacts_language(app, demo):
    logged_in(app, email="anna@acme.example")
    logged_in(app, SAFARI, "198.51.100.9", email="anna@acme.example")
    [message] = emails(app, "new-device-login", "anna@acme.example")
    assert "Mobile Safari su iOS" in message.body_text and "Nuovo accesso" in message.subject


def test_the_first_login_after_an_invitation_is_not_announced(app, demo):
    with app.test_request_context(), db.connection_context():
        anna = Contact.get(Contact.email == "anna@acme.example")
        link = f"/invitation/{tokens.issue(anna, 'invite')}"
    invited = browser(app, FIREFOX, "203.0.113.7")
    assert invited.post(link, data={"password": STRONG, "confirm": STRONG}).status_code == 302
    invited.post("/logout")
    assert invited.post("/login", data={"email": "anna@acme.example", "password": STRONG}).status_code == 302
    assert emails(app, "new-device-login") == []


def test_a_new_device_is_announced_after_the_second_factor_once(app, demo):
    """The password step hands out the device cookie before the code: the cookie alone does not
    make the browser known, the code step's login is still announced; the next login is not."""
    from test_second_factor import enrol, next_code

    desk = logged_in(app)
    totp, recovery = enrol(desk)
    phone = browser(app, SAFARI, "198.51.100.9")
    assert phone.post("/login", data={"email": "carla@globex.example", "password": "demo"}).status_code == 302
    assert emails(app, "new-device-login") == []  # not logged in yet
    assert phone.post("/login/code", data={"code": next_code(totp)}).status_code == 302
    assert len(emails(app, "new-device-login")) == 1
    phone.post("/logout")
    phone.post("/login", data={"email": "carla@globex.example", "password": "demo"})
    assert phone.post("/login/code", data={"code": recovery[0]}).status_code == 302
    assert phone.get("/me").status_code == 200
    assert len(emails(app, "new-device-login")) == 1


def test_the_new_device_email_can_be_switched_off(app, demo):
    app.config["NEW_DEVICE_EMAIL"] = False
    logged_in(app)
    logged_in(app, SAFARI, "198.51.100.9")
    assert emails(app, "new-device-login") == []


# --- weak and breached passwords -------------------------------------------------------------------

WEAK_FOR_ACME = "acmeacme2024"  # zxcvbn scores it 3 for a stranger, 1 for someone at Acme
BREACHED = "leavemealone"  # in zxcvbn's list of breached passwords, not in our common list


def test_a_password_built_on_the_company_is_weak_for_its_people_only(app, demo):
    from crm_portal.account.passwords import problems

    with app.test_request_context(), db.connection_context():
        assert problems(WEAK_FOR_ACME, email="carla@globex.example") == []
        assert problems(WEAK_FOR_ACME, email="anna@acme.example") != []
        assert problems("globex2024!", email="carla@globex.example", names=["Globex S.r.l."]) != []


def test_a_breached_password_is_refused_even_without_the_strength_estimate(app, demo):
    from crm_portal.account.passwords import problems

    app.config["PASSWORD_MIN_SCORE"] = 0
    with app.test_request_context():
        assert problems(BREACHED) == ["This password is too common or too easy to guess; choose another one."]
        assert problems(STRONG) == []


def test_change_password_refuses_a_weak_one_in_the_users_language(app, demo):
    anna = logged_in(app, email="anna@acme.example")  # Italian
    response = anna.post("/me/password", data={"current_password": "demo", "password": WEAK_FOR_ACME,
                                               "confirm": WEAK_FOR_ACME})
    assert response.status_code == 400
    assert "Questa password è troppo facile da indovinare." in response.text
    assert "Aggiungi una o due parole" in response.text
    carla = logged_in(app)  # English
    response = carla.post("/me/password", data={"current_password": "demo", "password": "globex2024!",
                                                 "confirm": "globex2024!"})
    assert response.status_code == 400 and "This password is too easy to guess." in response.text
    with app.app_context(), db.connection_context():
        assert verify_password(Contact.get(Contact.email == "anna@acme.example").password_hash, "demo")


@pytest.mark.parametrize("purpose", ["invite", "reset"])
def test_emailed_links_refuse_weak_and_breached_passwords(app, demo, purpose):
    with app.test_request_context(), db.connection_context():
        anna = Contact.get(Contact.email == "anna@acme.example")
        token = tokens.issue(anna, purpose)
    link = f"/{'invitation' if purpose == 'invite' else 'reset-password'}/{token}"
    client = app.test_client()
    client.post("/lang/it")
    for weak in (WEAK_FOR_ACME, BREACHED):
        response = client.post(link, data={"password": weak, "confirm": weak})
        assert response.status_code == 400, weak
        assert "troppo" in response.text, weak
    assert client.post(link, data={"password": STRONG, "confirm": STRONG}).status_code == 302


def test_registration_refuses_a_password_built_on_the_company(app, demo):
    app.config["SELF_REGISTRATION"] = True
    with app.test_request_context(), db.connection_context():
        token = tokens.issue_registration({"email": "zoe@zeta.example", "first_name": "Zoe", "last_name": "Zeta",
                                           "company_name": "Zeta", "vat_number": "", "phone": "",
                                           "language": "en"})
    response = app.test_client().post(f"/register/confirm/{token}",
                                      data={"password": "zetazeta2024", "confirm": "zetazeta2024"})
    assert response.status_code == 400 and "too easy to guess" in response.text


def test_staff_forms_refuse_weak_passwords(app, demo):
    admin = app.test_client()
    staff_login(admin)
    anna = demo["contacts"]["anna"]
    response = _admin_edit_contact(admin, anna.id, new_password=WEAK_FOR_ACME)
    assert response.status_code == 200 and "too easy to guess" in response.text
    with app.app_context(), db.connection_context():
        operator = StaffUser.get(StaffUser.email == "operatore@example.com")
    data = {"name": operator.name, "email": operator.email, "role": operator.role, "active": "y", "language": ""}
    response = admin.post(f"/admin/core_staff/edit/?id={operator.id}", data={**data, "new_password": BREACHED})
    assert response.status_code == 200 and "too common" in response.text


def test_init_refuses_a_weak_admin_password(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path / "inst"), "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
                      "BABEL_DEFAULT_LOCALE": "en"})
    result = app.test_cli_runner().invoke(args=["init", "--admin-password", "example2024!",
                                                "--admin-email", "admin@example.com"])
    assert result.exit_code != 0 and "too easy to guess" in result.output
