"""Findings of the security audit, each with the test that keeps it closed: links built from a
forged Host, parallel password guesses slipping past the throttle, revoked access coming back
through old links, weak staff and temporary passwords, the demo loader on real instances."""
from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import csrf_token, login, make_app, staff_login
from live_server import serve_in_thread

from crm_portal import create_app
from crm_portal.account import compile_translations, tokens
from crm_portal.auth import hash_password, verify_password
from crm_portal.config import ConfigurationError
from crm_portal.db import db
from crm_portal.demo import load_demo
from crm_portal.models import AccountToken, Company, Contact, OutboxMessage, StaffUser

compile_translations()

EXTERNAL = "https://portal.example.com/crm"
STRONG = "correct horse battery staple"


def outbox(app, template: str) -> list[OutboxMessage]:
    with app.app_context(), db.connection_context():
        return list(OutboxMessage.select().where(OutboxMessage.template == template).order_by(OutboxMessage.id))


def contact(app, email: str) -> Contact:
    with app.app_context(), db.connection_context():
        return Contact.get(Contact.email == email)


def links(message: OutboxMessage) -> list[str]:
    return re.findall(r"https?://[^\s\"'<>]+", message.body_text + (message.body_html or ""))


def assert_links_external(message: OutboxMessage) -> None:
    found = links(message)
    assert found, message.body_text
    assert all(link.startswith(EXTERNAL + "/") for link in found), found
    assert "evil.example" not in message.body_text and "evil.example" not in (message.body_html or "")


@pytest.fixture
def ext_app(tmp_path):
    """No SERVER_NAME (as in production): links can only come from EXTERNAL_URL or the request."""
    app = make_app(tmp_path, SERVER_NAME=None, EXTERNAL_URL=EXTERNAL)
    with app.app_context(), db.connection_context():
        load_demo(app)
    return app


def post_on_host(client, path: str, data: dict, host: str):
    """A form posted from a page served for ``host`` (its session and CSRF token)."""
    page = client.get(path, base_url=f"http://{host}")
    return client.post(path, data={**data, "csrf_token": csrf_token(page.text)}, base_url=f"http://{host}",
                       csrf=False)


# --- 1. Host header poisoning --------------------------------------------------------------------

def test_forged_host_never_reaches_the_reset_email(ext_app):
    client = ext_app.test_client()
    response = post_on_host(client, "/forgot-password", {"email": "anna@acme.example"}, "evil.example")
    assert response.status_code == 200
    [message] = outbox(ext_app, "password-reset")
    assert_links_external(message)
    assert message.body_html and f"{EXTERNAL}/reset-password/" in message.body_html
    # the link is a working one on the real site
    path = links(message)[0].removeprefix(EXTERNAL)
    assert ext_app.test_client().get(path).status_code == 200


def test_forged_forwarded_host_behind_a_proxy_never_reaches_the_email(tmp_path):
    app = make_app(tmp_path, SERVER_NAME=None, EXTERNAL_URL=EXTERNAL, PROXY_FIX=1)
    with app.app_context(), db.connection_context():
        load_demo(app)
    client = app.test_client()
    forged = {"X-Forwarded-Host": "evil.example"}
    assert client.get("/forgot-password", headers=forged).status_code == 200
    response = client.post("/forgot-password", data={"email": "anna@acme.example"}, headers=forged)
    assert response.status_code == 200
    [message] = outbox(app, "password-reset")
    assert_links_external(message)


def test_staff_notifications_ignore_a_forged_host(ext_app):
    from crm_portal.models import ProfileModule
    from crm_portal.modules.tickets import workflow

    # a change request mailed to support, with its admin link, requested on a forged host
    with ext_app.app_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        ProfileModule.delete().where((ProfileModule.profile == bruno.profile_id)
                                     & (ProfileModule.module == "tickets")).execute()
    client = ext_app.test_client()
    login_page = client.get("/login", base_url="http://evil.example")
    client.post("/login", data={"email": "bruno@acme.example", "password": "demo",
                                "csrf_token": csrf_token(login_page.text)},
                base_url="http://evil.example", csrf=False)
    page = client.get("/me", base_url="http://evil.example")
    response = client.post("/me/request", data={"req-field": "role", "req-message": "CFO now",
                                                "csrf_token": csrf_token(page.text)},
                           base_url="http://evil.example", csrf=False)
    assert response.status_code == 302
    [request_mail] = outbox(ext_app, "change-request")
    assert request_mail.to_address == ext_app.config["SUPPORT_EMAIL"]
    assert_links_external(request_mail)

    # a customer's comment on a ticket, notified to support while serving a forged host
    with ext_app.test_request_context("/", base_url="http://evil.example"), db.connection_context():
        carla = Contact.get(Contact.email == "carla@globex.example")
        carla.notification_events = '{"tickets.created": true}'  # her confirmation of the new ticket
        with db.atomic():
            ticket = workflow.create_ticket(workflow.Actor.customer(carla), carla, title="Printer", description="d")
            workflow.add_comment(ticket, workflow.Actor.customer(carla), "Any news?", "public")
    [to_support] = outbox(ext_app, "tickets_customer_comment")
    assert_links_external(to_support)
    assert_links_external(outbox(ext_app, "tickets_created")[-1])


def test_links_fall_back_to_server_name_then_localhost_never_the_request(tmp_path):
    from crm_portal.outbox import external_url

    app = make_app(tmp_path, SERVER_NAME=None)
    with app.test_request_context("/", base_url="http://evil.example"):
        assert external_url("auth.login") == "http://127.0.0.1:5000/login"
    app.config.update(SERVER_NAME="portal.test", PREFERRED_URL_SCHEME="https")
    with app.test_request_context("/", base_url="http://evil.example"):
        assert external_url("account.reset_password", token="t") == "https://portal.test/reset-password/t"


def test_trusted_hosts_answer_400_to_any_other_host(tmp_path):
    app = make_app(tmp_path, SERVER_NAME=None, EXTERNAL_URL="https://portal.example.com",
                   TRUSTED_HOSTS=["portal.example.com"], PROXY_FIX=1)
    client = app.test_client()
    assert client.get("/login", base_url="https://portal.example.com").status_code == 200
    evil = client.get("/login", base_url="http://evil.example")
    assert evil.status_code == 400 and "Bad request" in evil.text
    assert client.post("/forgot-password", data={"email": "a@b.example"}, base_url="http://evil.example",
                       csrf=False).status_code == 400
    forwarded = client.get("/login", base_url="https://portal.example.com",
                           headers={"X-Forwarded-Host": "evil.example"})
    assert forwarded.status_code == 400 and "Bad request" in forwarded.text


def test_trusted_hosts_from_the_environment_and_consistent_with_external_url(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_PORTAL_TRUSTED_HOSTS", "portal.example.com, .intranet.example")
    app = make_app(tmp_path, SERVER_NAME=None, EXTERNAL_URL="https://portal.example.com")
    assert app.config["TRUSTED_HOSTS"] == ["portal.example.com", ".intranet.example"]
    with pytest.raises(ConfigurationError, match="not in TRUSTED_HOSTS"):
        make_app(tmp_path, SERVER_NAME=None, EXTERNAL_URL="https://elsewhere.example")


def _production(tmp_path, **config):
    return create_app({"INSTANCE_PATH": str(tmp_path / "i"), "PRODUCTION": True, "SECRET_KEY": "s",
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", **config})


def test_production_refuses_to_start_without_external_url(tmp_path):
    with pytest.raises(ConfigurationError, match="EXTERNAL_URL is not set"):
        _production(tmp_path)
    with pytest.raises(ConfigurationError, match="not a base URL"):
        _production(tmp_path, EXTERNAL_URL="portal.example.com")
    app = _production(tmp_path, EXTERNAL_URL="https://Portal.example.com/crm/")
    assert app.config["EXTERNAL_URL"] == "https://portal.example.com/crm"


def test_init_writes_external_url_and_checks_the_admin_password(tmp_path):
    instance = tmp_path / "inst"
    instance.mkdir()
    (instance / "config.toml").write_text('PORTAL_NAME = "Mine"\n\n[EXTRA]\nkey = 1\n')
    app = create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
                      "BABEL_DEFAULT_LOCALE": "en"})
    runner = app.test_cli_runner()

    weak = runner.invoke(args=["init", "--admin-password", "demo"])
    assert weak.exit_code != 0 and "at least 10" in weak.output
    common = runner.invoke(args=["init", "--admin-password", "password123"])
    assert common.exit_code != 0 and "too common" in common.output
    assert not (instance / "secret_key").exists()  # refused before anything was written

    done = runner.invoke(args=["init", "--admin-password", STRONG, "--external-url", "https://portal.example.com/"])
    assert done.exit_code == 0, done.output
    text = (instance / "config.toml").read_text()
    assert 'EXTERNAL_URL = "https://portal.example.com"' in text.split("[EXTRA]")[0]
    assert 'PORTAL_NAME = "Mine"' in text and "key = 1" in text
    bad = runner.invoke(args=["init", "--external-url", "javascript:alert(1)"])
    assert bad.exit_code != 0 and "not a base URL" in bad.output

    fresh = tmp_path / "fresh"
    app = create_app({"INSTANCE_PATH": str(fresh), "DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}"})
    assert app.test_cli_runner().invoke(args=["init", "--no-admin"]).exit_code == 0
    assert 'EXTERNAL_URL = "http://127.0.0.1:5000"' in (fresh / "config.toml").read_text()
    with app.app_context(), db.connection_context():
        assert StaffUser.select().count() == 0


# --- 2. Throttle race ----------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer of its own (302 after a login)


def _post(url: str, data: dict) -> int:
    body = urllib.parse.urlencode(data).encode()
    try:
        with urllib.request.build_opener(_NoRedirect).open(urllib.request.Request(url, data=body),
                                                            timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


@pytest.mark.parametrize("path,email,module", [
    ("/login", "carla@globex.example", "crm_portal.views.auth"),
    ("/admin/login", "admin@example.com", "crm_portal.views.auth"),
])
def test_parallel_wrong_passwords_get_at_most_the_limit_of_checks(tmp_path, monkeypatch, path, email, module):
    import importlib

    app = make_app(tmp_path, WTF_CSRF_ENABLED=False)  # raw HTTP posts from many threads, no form to read
    with app.app_context(), db.connection_context():
        load_demo(app)
    checked = []
    lock = threading.Lock()

    def slow_counting_verify(stored_hash, password):
        with lock:
            checked.append(password)
        time.sleep(0.3)  # a slow hash: every request of the burst is in flight at once
        return verify_password(stored_hash, password)

    monkeypatch.setattr(importlib.import_module(module), "verify_password", slow_counting_verify)
    limit = app.config["LOGIN_THROTTLE_ACCOUNT_LIMIT"]
    with serve_in_thread(app) as server:
        base = server.url
        codes: list[int] = []
        threads = [threading.Thread(target=lambda: codes.append(
            _post(base + path, {"email": email, "password": "wrong-guess"}))) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert len(codes) == 20
    assert len(checked) <= limit, f"{len(checked)} passwords checked in parallel, limit {limit}"
    assert codes.count(200) == len(checked) and codes.count(429) == 20 - len(checked)


def test_successful_logins_never_block_an_office_address(tmp_path):
    from crm_portal import ratelimit
    from crm_portal.models import LoginThrottle

    app = make_app(tmp_path, LOGIN_THROTTLE_IP_LIMIT=3)
    with app.app_context(), db.connection_context():
        load_demo(app)
    client = app.test_client()
    for _ in range(5):  # an office behind one address: successful logins never block it
        login(client, "anna@acme.example")
        client.post("/logout")
    with app.app_context(), db.connection_context():
        row = LoginThrottle.get_or_none(LoginThrottle.key == ratelimit.ip_key("127.0.0.1"))
        assert row is None or (row.failures == 0 and row.pending == 0 and row.blocked_until is None)


def test_colleagues_logging_in_at_once_from_one_address_all_get_in(tmp_path):
    """More simultaneous logins than the limits (per address and per account) all succeed: an
    attempt beyond the places in flight waits for them instead of being refused."""
    app = make_app(tmp_path, WTF_CSRF_ENABLED=False)  # raw HTTP posts, as in the burst test above
    with app.app_context(), db.connection_context():
        load_demo(app)
    people = 30  # > LOGIN_THROTTLE_IP_LIMIT (20) and > LOGIN_THROTTLE_ACCOUNT_LIMIT (5) for one account
    with serve_in_thread(app) as server:
        base = server.url
        codes: list[int] = []
        threads = [threading.Thread(target=lambda: codes.append(
            _post(base + "/login", {"email": "anna@acme.example", "password": "demo"}))) for _ in range(people)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert codes.count(302) == people, codes


# --- 3. Revoked access stays revoked -------------------------------------------------------------

def _admin_edit_contact(client, contact_id: int, **changes):
    with client.application.app_context(), db.connection_context():
        c = Contact.get_by_id(contact_id)
        data = {"first_name": c.first_name, "last_name": c.last_name, "email": c.email, "phone": c.phone or "",
                "language": c.language or "", "company": str(c.company_id or "__None"),
                "profile": str(c.profile_id or "__None")}
        for flag in ("portal_access", "must_change_password", "notify_by_email"):
            if getattr(c, flag):
                data[flag] = "y"
    data.update(changes)
    return client.post(f"/admin/core_contact/edit/?id={contact_id}",
                       data={k: v for k, v in data.items() if v is not None})


def _feed(app, client) -> str:
    client.post("/deadlines/calendar/regenerate")
    page = client.get("/deadlines/calendar").text
    match = re.search(r'value="http://portal\.test(/deadlines-feed/[^"]+\.ics)"', page)
    assert match
    return match.group(1)


def test_revoking_access_kills_links_sessions_cookies_and_feed(app, demo):
    from crm_portal.modules.deadlines import CalendarToken

    anna = demo["contacts"]["anna"]
    browser = app.test_client()
    browser.post("/login", data={"email": "anna@acme.example", "password": "demo", "remember": "y"})
    remember = browser.get_cookie("crm_portal_remember", domain="portal.test").value
    feed = _feed(app, browser)
    assert app.test_client().get(feed).status_code == 200

    visitor = app.test_client()
    visitor.post("/forgot-password", data={"email": "anna@acme.example"})
    admin = app.test_client()
    staff_login(admin)
    admin.post("/admin/core_contact/action/", data={"action": "invite", "rowid": [str(anna.id)]})
    reset = links(outbox(app, "password-reset")[-1])[0].removeprefix("http://portal.test")
    invite = links(outbox(app, "invitation")[-1])[0].removeprefix("http://portal.test")

    assert _admin_edit_contact(admin, anna.id, portal_access=None).status_code == 302

    with app.app_context(), db.connection_context():
        assert not Contact.get_by_id(anna.id).portal_access
        assert AccountToken.select().where((AccountToken.contact == anna.id)
                                           & AccountToken.revoked_at.is_null()
                                           & AccountToken.used_at.is_null()).count() == 0
        assert CalendarToken.get_or_none(CalendarToken.contact == anna.id) is None
    assert browser.get("/me").status_code == 302  # the session is over
    thief = app.test_client()
    thief.set_cookie("crm_portal_remember", remember, domain="portal.test")
    assert thief.get("/me").status_code == 302  # and the remember-me cookie
    assert app.test_client().get(feed).status_code == 404
    for link in (reset, invite):
        stranger = app.test_client()
        assert stranger.get(link).status_code == 400
        assert stranger.post(link, data={"password": STRONG, "confirm": STRONG}).status_code == 400
        assert stranger.get("/me").status_code == 302
    assert not contact(app, "anna@acme.example").portal_access

    # access switched on again: the old links and feed stay dead
    _admin_edit_contact(admin, anna.id, portal_access="y")
    assert app.test_client().get(invite).status_code == 400
    assert app.test_client().get(feed).status_code == 404


def test_a_link_never_switches_access_on(app, demo):
    """Even a link that was not revoked (access cleared by another path) is refused."""
    with app.app_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        with db.atomic():
            invite = tokens.issue(bruno, "invite")
            reset = tokens.issue(bruno, "reset")
        Contact.update(portal_access=False).where(Contact.id == bruno.id).execute()
    for purpose, token in (("invitation", invite), ("reset-password", reset)):
        client = app.test_client()
        page = client.get(f"/{purpose}/{token}")
        assert page.status_code == 400 and 'data-reason="superseded"' in page.text
        assert client.post(f"/{purpose}/{token}", data={"password": STRONG, "confirm": STRONG}).status_code == 400
        assert client.get("/me").status_code == 302
    bruno = contact(app, "bruno@acme.example")
    assert not bruno.portal_access and verify_password(bruno.password_hash, "demo")


def test_access_revoked_between_check_and_use_is_refused(app, demo):
    with app.app_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        with db.atomic():
            token = tokens.issue(bruno, "reset")
        result = tokens.check(token, "reset")
        assert result.ok
        Contact.update(portal_access=False).where(Contact.id == bruno.id).execute()
        with db.atomic():
            assert tokens.consume(result) is False


def test_invitation_action_skips_contacts_without_access(app, demo):
    with app.app_context(), db.connection_context():
        nina = Contact.create(first_name="Nina", last_name="Nuova", email="nina@acme.example")
    admin = app.test_client()
    staff_login(admin)
    response = admin.post("/admin/core_contact/action/", data={"action": "invite", "rowid": [str(nina.id)]},
                          follow_redirects=True)
    assert "without portal access were skipped: 1" in response.text
    assert outbox(app, "invitation") == []


# --- 4. One password policy for everybody --------------------------------------------------------

def test_temporary_password_follows_the_policy_in_the_staff_language(app, demo):
    from crm_portal.modules.deadlines import CalendarToken

    bruno = demo["contacts"]["bruno"]
    admin = app.test_client()
    staff_login(admin)
    weak = _admin_edit_contact(admin, bruno.id, new_password="demo1234")
    assert weak.status_code == 200 and "Use at least 10 characters." in weak.text
    common = _admin_edit_contact(admin, bruno.id, new_password="password123")
    assert "too common" in common.text
    own_email = _admin_edit_contact(admin, bruno.id, new_password="bruno@acme.example")
    assert "must not be your email" in own_email.text
    admin.post("/lang/it")
    italian = _admin_edit_contact(admin, bruno.id, new_password="short")
    assert "Usa almeno 10 caratteri." in italian.text
    assert verify_password(contact(app, "bruno@acme.example").password_hash, "demo")

    # a good one is stored, must be changed, and ends links, sessions and the feed address
    browser = app.test_client()
    login(browser, "bruno@acme.example")
    feed = _feed(app, browser)
    assert _admin_edit_contact(admin, bruno.id, new_password=STRONG).status_code == 302
    updated = contact(app, "bruno@acme.example")
    assert verify_password(updated.password_hash, STRONG) and updated.must_change_password
    assert browser.get("/me").status_code == 302
    assert app.test_client().get(feed).status_code == 404
    with app.app_context(), db.connection_context():
        assert CalendarToken.get_or_none(CalendarToken.contact == bruno.id) is not None  # rotated, not lost


def test_staff_password_follows_the_policy(app, demo):
    admin = app.test_client()
    staff_login(admin)
    with app.app_context(), db.connection_context():
        operator = StaffUser.get(StaffUser.email == "operatore@example.com")
    data = {"name": operator.name, "email": operator.email, "role": operator.role, "active": "y",
            "language": ""}
    for weak, message in (("demo", "Use at least 10 characters."), ("qwertyuiop", "too common"),
                          ("operatore@example.com", "must not be your email")):
        response = admin.post(f"/admin/core_staff/edit/?id={operator.id}", data={**data, "new_password": weak})
        assert response.status_code == 200 and message in response.text, weak
    assert admin.post(f"/admin/core_staff/edit/?id={operator.id}",
                      data={**data, "new_password": STRONG}).status_code == 302
    staff_login(app.test_client(), "operatore@example.com", STRONG)


def test_deactivating_staff_ends_their_sessions(app, demo):
    operator_browser = app.test_client()
    staff_login(operator_browser, "operatore@example.com")
    admin = app.test_client()
    staff_login(admin)
    with app.app_context(), db.connection_context():
        operator = StaffUser.get(StaffUser.email == "operatore@example.com")
        before = operator.session_token
    admin.post(f"/admin/core_staff/edit/?id={operator.id}",
               data={"name": operator.name, "email": operator.email, "role": operator.role, "language": ""})
    with app.app_context(), db.connection_context():
        assert StaffUser.get_by_id(operator.id).session_token != before


# --- 5. Demo data and the calendar feed ----------------------------------------------------------

def test_demo_refuses_a_production_instance(tmp_path):
    app = make_app(tmp_path, PRODUCTION=True, EXTERNAL_URL="https://portal.example.com")
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code != 0 and "production" in result.output
    with app.app_context(), db.connection_context():
        assert Company.select().count() == 0 and StaffUser.select().count() == 0


def test_demo_never_resets_an_existing_password(tmp_path):
    app = make_app(tmp_path)
    with app.app_context(), db.connection_context():
        StaffUser.create(email="admin@example.com", name="Real admin", role="admin",
                         password_hash=hash_password(STRONG))
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0 and "keep their own passwords: admin@example.com" in result.output
    with app.app_context(), db.connection_context():
        admin = StaffUser.get(StaffUser.email == "admin@example.com")
        assert verify_password(admin.password_hash, STRONG) and not verify_password(admin.password_hash, "demo")
        operator = StaffUser.get(StaffUser.email == "operatore@example.com")  # created: the demo password
        assert verify_password(operator.password_hash, "demo")


def test_calendar_feed_address_changes_with_the_password(app, demo, client):
    login(client, "anna@acme.example")
    feed = _feed(app, client)
    response = client.post("/me/password", data={"current_password": "demo", "password": STRONG, "confirm": STRONG})
    assert response.status_code == 302
    assert app.test_client().get(feed).status_code == 404
    new_feed = re.search(r'value="http://portal\.test(/deadlines-feed/[^"]+\.ics)"',
                         client.get("/deadlines/calendar").text).group(1)
    assert new_feed != feed and app.test_client().get(new_feed).status_code == 200
