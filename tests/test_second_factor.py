"""The second factor (TOTP): enrolment, the code step of the login, single use, throttling,
recovery codes, remembered devices, the requirement and staff resets."""
from __future__ import annotations

import re
import time

import pyotp
import pytest
from conftest import staff_login

from crm_portal import second_factor as sf
from crm_portal.db import db
from crm_portal.models import AuditEntry, Company, Contact, RecoveryCode, SecondFactor, StaffUser

CARLA = "carla@globex.example"
ADMIN = "admin@example.com"


def password_login(client, email=CARLA, password="demo", **extra):
    return client.post("/login", data={"email": email, "password": password, **extra})


def enrol(client, path="/me/second-factor"):
    """Enrol the logged-in user: returns (TOTP, recovery codes)."""
    assert client.post(path, data={"action": "start"}).status_code == 302
    page = client.get(path).text
    assert "<svg" in page and "<script" not in page.split('data-testid="second-factor-qr"')[1].split("</div>")[0]
    secret = re.search(r'data-testid="second-factor-secret">([A-Z2-7]+)<', page).group(1)
    totp = pyotp.TOTP(secret)
    wrong = client.post(path, data={"action": "confirm", "code": "000000" if totp.now() != "000000" else "111111"})
    assert wrong.status_code == 400
    done = client.post(path, data={"action": "confirm", "code": totp.now()})
    assert done.status_code == 200
    codes = re.findall(r"<li>([a-z2-7]{5}-[a-z2-7]{5})</li>", done.text)
    assert len(codes) == 10
    return totp, codes


def next_code(totp):
    """A code of the next time step (inside the accepted window, newer than the enrolment's)."""
    return totp.at(time.time() + 30)


def actions(app, action):
    with app.app_context(), db.connection_context():
        return AuditEntry.select().where(AuditEntry.action == action).count()


@pytest.fixture
def enrolled(app, demo):
    client = app.test_client()
    assert password_login(client).status_code == 302
    totp, codes = enrol(client)
    client.post("/logout")
    return totp, codes


def test_enrolment_stores_the_secret_encrypted_and_codes_hashed(app, enrolled):
    totp, codes = enrolled
    with app.app_context(), db.connection_context():
        factor = SecondFactor.get()
        assert factor.enabled_at is not None and totp.secret not in factor.secret
        assert sf.secret_of(factor) == totp.secret
        stored = [r.code_hash for r in RecoveryCode.select()]
        assert len(stored) == 10 and not set(codes) & set(stored)
    assert actions(app, "second-factor-enabled") == 1


def test_login_asks_for_the_code_and_a_code_works_once(app, enrolled):
    totp, _ = enrolled
    client = app.test_client()
    response = password_login(client, next="/me")
    assert response.status_code == 302 and response.location.endswith("/login/code")
    assert client.get("/me").status_code == 302  # not logged in yet
    code = next_code(totp)
    done = client.post("/login/code", data={"code": code})
    assert done.status_code == 302 and done.location.endswith("/me")
    assert client.get("/me").status_code == 200
    assert actions(app, "second-factor-verified") == 1

    thief = app.test_client()  # the same code, seen over the shoulder, a moment later
    password_login(thief)
    again = thief.post("/login/code", data={"code": code})
    assert again.status_code == 400 and thief.get("/me").status_code == 302
    assert actions(app, "second-factor-failed") == 1


def test_wrong_codes_are_throttled(app, enrolled):
    totp, _ = enrolled
    client = app.test_client()
    password_login(client)
    wrong = "123456" if next_code(totp) != "123456" else "654321"
    limit = app.config["LOGIN_THROTTLE_ACCOUNT_LIMIT"]
    for _ in range(limit):
        assert client.post("/login/code", data={"code": wrong}).status_code == 400
    refused = client.post("/login/code", data={"code": next_code(totp)})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert client.get("/me").status_code == 302
    assert actions(app, "second-factor-failed") == limit


def test_a_recovery_code_works_once(app, enrolled):
    _, codes = enrolled
    client = app.test_client()
    password_login(client)
    assert client.post("/login/code", data={"code": codes[0].upper()}).status_code == 302
    assert client.get("/me").status_code == 200
    assert actions(app, "recovery-code-used") == 1
    other = app.test_client()
    password_login(other)
    assert other.post("/login/code", data={"code": codes[0]}).status_code == 400
    assert other.get("/me").status_code == 302


def test_half_logged_in_session_reaches_nothing(app, enrolled):
    client = app.test_client()
    password_login(client)
    for path in ("/", "/me", "/me/second-factor", "/me/password", "/tickets/", "/admin/"):
        response = client.get(path)
        assert response.status_code in (302, 404) and "/login" in response.headers.get("Location", "/login"), path
    staff = app.test_client()
    staff.post("/admin/login", data={"email": CARLA, "password": "demo"})
    assert staff.get("/admin/").status_code == 302


def test_the_password_step_expires(app, enrolled, monkeypatch):
    totp, _ = enrolled
    client = app.test_client()
    password_login(client)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 301)
    response = client.post("/login/code", data={"code": next_code(totp)})
    assert response.status_code == 302 and response.location.endswith("/login")


def test_remembered_device_skips_the_code_until_reset_or_password_change(app, enrolled):
    totp, _ = enrolled
    client = app.test_client()
    password_login(client)
    client.post("/login/code", data={"code": next_code(totp), "remember_device": "y"})
    client.post("/logout")
    direct = password_login(client)
    assert direct.status_code == 302 and not direct.location.endswith("/login/code")
    assert client.get("/me").status_code == 200

    new = "a brand new passphrase 42"
    client.post("/me/password", data={"current_password": "demo", "password": new, "confirm": new})
    client.post("/logout")
    assert password_login(client, password=new).location.endswith("/login/code")


def test_remembered_device_dies_with_a_reset(app, enrolled):
    totp, _ = enrolled
    client = app.test_client()
    password_login(client)
    client.post("/login/code", data={"code": next_code(totp), "remember_device": "y"})
    admin = app.test_client()
    staff_login(admin)
    with app.app_context(), db.connection_context():
        carla = Contact.get(Contact.email == CARLA)
    reset = admin.post("/admin/core_contact/action/", data={"action": "reset_second_factor", "rowid": [str(carla.id)]})
    assert reset.status_code == 302
    assert actions(app, "second-factor-reset") == 1
    with app.app_context(), db.connection_context():
        assert SecondFactor.select().count() == 0 and RecoveryCode.select().count() == 0
    enrol(client)  # still logged in: enrols again
    client.post("/logout")
    assert password_login(client).location.endswith("/login/code")  # the old cookie no longer counts


def test_switching_off_needs_a_code_or_the_password(app, enrolled):
    client = app.test_client()
    password_login(client)
    client.post("/login/code", data={"code": next_code(enrolled[0])})
    refused = client.post("/me/second-factor", data={"action": "disable", "proof": "not it"})
    assert refused.status_code == 400
    assert client.post("/me/second-factor", data={"action": "disable", "proof": "demo"}).status_code == 302
    assert actions(app, "second-factor-disabled") == 1
    client.post("/logout")
    assert not password_login(client).location.endswith("/login/code")


@pytest.mark.parametrize("where", ["profile", "company"])
def test_required_by_profile_or_company_forces_enrolment(app, demo, where):
    with app.app_context(), db.connection_context():
        carla = Contact.get(Contact.email == CARLA)
        if where == "profile":
            carla.profile.second_factor_required = True
            carla.profile.save()
        else:
            Company.update(second_factor_required=True).where(Company.id == carla.company_id).execute()
    client = app.test_client()
    password_login(client)
    for path in ("/", "/me", "/tickets/", "/me/password"):
        response = client.get(path)
        if path == "/me/password":
            assert response.status_code == 200  # a password change stays possible
            continue
        assert response.status_code == 302 and response.location.endswith("/me/second-factor"), path
    enrol(client)
    assert client.get("/me").status_code == 200


def test_required_for_staff_forces_enrolment(app, demo):
    app.config["STAFF_REQUIRE_SECOND_FACTOR"] = True
    client = app.test_client()
    staff_login(client)
    for path in ("/admin/", "/admin/core_contact/", "/admin/preferences"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.endswith("/admin/second-factor"), path
    totp, _ = enrol(client, "/admin/second-factor")
    assert client.get("/admin/").status_code == 200
    client.post("/admin/logout")
    response = client.post("/admin/login", data={"email": ADMIN, "password": "demo"})
    assert response.location.endswith("/login/code")
    done = client.post("/login/code", data={"code": next_code(totp)})
    assert done.status_code == 302 and done.location.endswith("/admin/")
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"PRODUCTION": True}, True), ({"PRODUCTION": False}, False),
    ({"PRODUCTION": True, "STAFF_REQUIRE_SECOND_FACTOR": False}, False),
    ({"PRODUCTION": False, "STAFF_REQUIRE_SECOND_FACTOR": True}, True),
])
def test_staff_requirement_follows_production_unless_set(tmp_path, overrides, expected):
    from flask import Flask

    from crm_portal import config

    app = Flask(__name__, instance_path=str(tmp_path))
    config.load(app, {"SECRET_KEY": "k" * 40, "EXTERNAL_URL": "https://portal.example", **overrides})
    assert app.config["STAFF_REQUIRE_SECOND_FACTOR"] is expected


def test_admin_resets_a_staff_members_factor(app, demo):
    client = app.test_client()
    staff_login(client)
    enrol(client, "/admin/second-factor")
    with app.app_context(), db.connection_context():
        admin = StaffUser.get(StaffUser.email == ADMIN)
    response = client.post("/admin/core_staff/action/",
                           data={"action": "reset_second_factor", "rowid": [str(admin.id)]})
    assert response.status_code == 302
    assert actions(app, "second-factor-reset") == 1
    with app.app_context(), db.connection_context():
        assert SecondFactor.select().count() == 0


def test_a_password_reset_link_still_asks_for_the_code(app, enrolled):
    from crm_portal.account import tokens

    with app.app_context(), db.connection_context():
        carla = Contact.get(Contact.email == CARLA)
        with db.atomic():
            token = tokens.issue(carla, "reset")
    client = app.test_client()
    new = "a brand new passphrase 42"
    response = client.post(f"/reset-password/{token}", data={"password": new, "confirm": new})
    assert response.status_code == 302 and response.location.endswith("/login/code")
    assert client.get("/me").status_code == 302


def test_a_required_factor_cannot_be_switched_off(app, enrolled):
    with app.app_context(), db.connection_context():
        Company.update(second_factor_required=True).where(
            Company.id == Contact.get(Contact.email == CARLA).company_id).execute()
    client = app.test_client()
    password_login(client)
    client.post("/login/code", data={"code": next_code(enrolled[0])})
    assert client.post("/me/second-factor", data={"action": "disable", "proof": "demo"}).status_code == 400
    with app.app_context(), db.connection_context():
        assert SecondFactor.select().count() == 1


def test_the_code_page_speaks_italian(app, enrolled):
    client = app.test_client()
    client.post("/lang/it")
    password_login(client)
    page = client.get("/login/code").text
    assert "Inserisci il codice" in page and "Ricorda questo dispositivo per 30 giorni" in page


def test_staff_set_the_requirement_on_a_profile_and_a_company(app, demo):
    import json

    from test_admin_profiles import EDIT, VALID, editor_form, profile_id

    client = app.test_client()
    staff_login(client)
    pid = profile_id(app)
    assert 'name="second_factor_required"' in client.get(EDIT.format(pid)).text
    form = editor_form(modules=VALID, assignable=True, raw=(("second_factor_required", "y"),))
    assert client.post(EDIT.format(pid), data=form).status_code == 302
    with app.app_context(), db.connection_context():
        from crm_portal.models import Profile

        assert Profile.get_by_id(pid).second_factor_required is True
        entry = AuditEntry.select().where(AuditEntry.object_type == "core_profile").order_by(AuditEntry.id.desc()).get()
        assert json.loads(entry.details)["fields"]["second_factor_required"] == [False, True]
        company = Company.select().first()
    page = client.get(f"/admin/core_company/edit/?id={company.id}", headers={"Accept-Language": "it"}).text
    assert 'name="second_factor_required"' in page and "Secondo fattore obbligatorio" in page
