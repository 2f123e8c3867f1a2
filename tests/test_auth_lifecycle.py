"""Login lifecycle: same answer for bad credentials, safe redirects, sessions that die on logout and
password change, throttling of failed logins, cookies and CSRF."""
from __future__ import annotations

import datetime as dt

import peewee as pw
import pytest
from conftest import csrf_token, login, make_app, staff_login
from test_account import same_page

from crm_portal import device_cookies, ratelimit
from crm_portal.db import db, utcnow
from crm_portal.models import AuditEntry, Contact, LoginThrottle

SESSION_COOKIE = "crm_portal_session"
REMEMBER_COOKIE = "crm_portal_remember"


def cookie(client, name):
    found = client.get_cookie(name, domain="portal.test")
    return found.value if found else None


@pytest.fixture
def clock(monkeypatch):
    state = {"now": utcnow()}
    monkeypatch.setattr(ratelimit, "now", lambda: state["now"])
    return state


def test_wrong_password_and_unknown_email_answer_the_same(app, demo):
    client = app.test_client()
    wrong = client.post("/login", data={"email": "carla@globex.example", "password": "nope"})
    unknown = client.post("/login", data={"email": "nobody@globex.example", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 200
    assert "Wrong email or password." in wrong.text and "Wrong email or password." in unknown.text
    assert same_page(wrong.text, "carla@globex.example") == same_page(unknown.text, "nobody@globex.example")
    with app.app_context(), db.connection_context():
        assert AuditEntry.select().where(AuditEntry.action == "login-failed").count() == 2


@pytest.mark.parametrize("data", [
    {"email": "", "password": "demo"},
    {"email": "carla@globex.example", "password": ""},
    {"email": "c" * 250 + "@globex.example", "password": "demo"},
    {"email": "carla@globex.example", "password": "x" * 1025},
])
def test_login_field_errors(app, demo, data):
    response = app.test_client().post("/login", data=data)
    assert response.status_code == 200 and "invalid-feedback" in response.text
    assert cookie(app.test_client(), SESSION_COOKIE) is None


@pytest.mark.parametrize("target", [
    "//evil.com", "/\\evil.com", "\\\\evil.com", "https://x@evil.com", "https://evil.com/", "javascript:alert(1)",
    "http:evil.com", " //evil.com", "\t//evil.com", "//evil.com/%2f..", "evil.com",
])
def test_next_outside_the_site_is_ignored(app, demo, target):
    client = app.test_client()
    response = client.post("/login", data={"email": "carla@globex.example", "password": "demo", "next": target})
    assert response.status_code == 302
    assert response.location in ("/", "http://portal.test/")


def test_next_inside_the_site_is_followed(app, demo):
    client = app.test_client()
    response = client.post("/login", data={"email": "carla@globex.example", "password": "demo", "next": "/me?x=1"})
    assert response.location.endswith("/me?x=1")


def test_captured_cookies_die_at_logout(app, demo):
    client = app.test_client()
    client.post("/login", data={"email": "carla@globex.example", "password": "demo", "remember": "y"})
    session_value, remember_value = cookie(client, SESSION_COOKIE), cookie(client, REMEMBER_COOKIE)
    assert session_value and remember_value
    response = client.post("/logout")
    assert response.status_code == 302
    assert cookie(client, REMEMBER_COOKIE) is None  # the browser is told to drop it

    thief = app.test_client()
    thief.set_cookie(SESSION_COOKIE, session_value, domain="portal.test")
    assert thief.get("/me").status_code == 302
    thief = app.test_client()
    thief.set_cookie(REMEMBER_COOKIE, remember_value, domain="portal.test")
    assert thief.get("/me").status_code == 302


def test_captured_cookies_die_at_password_change(app, demo):
    client = app.test_client()
    client.post("/login", data={"email": "carla@globex.example", "password": "demo", "remember": "y"})
    session_value, remember_value = cookie(client, SESSION_COOKIE), cookie(client, REMEMBER_COOKIE)
    new = "a brand new passphrase 42"
    changed = client.post("/me/password", data={"current_password": "demo", "password": new, "confirm": new})
    assert changed.status_code == 302
    assert client.get("/me").status_code == 200
    assert cookie(client, REMEMBER_COOKIE) not in (None, remember_value)  # a fresh remember-me cookie
    for name, value in ((SESSION_COOKIE, session_value), (REMEMBER_COOKIE, remember_value)):
        thief = app.test_client()
        thief.set_cookie(name, value, domain="portal.test")
        assert thief.get("/me").status_code == 302


def test_remember_me_alone_logs_in(app, demo):
    client = app.test_client()
    client.post("/login", data={"email": "carla@globex.example", "password": "demo", "remember": "y"})
    other = app.test_client()
    other.set_cookie(REMEMBER_COOKIE, cookie(client, REMEMBER_COOKIE), domain="portal.test")
    assert other.get("/me").status_code == 200


def test_disabled_contact_is_logged_out_on_next_request(app, demo):
    client = app.test_client()
    login(client, "carla@globex.example")
    assert client.get("/me").status_code == 200
    with app.app_context(), db.connection_context():
        Contact.update(portal_access=False).where(Contact.email == "carla@globex.example").execute()
    assert client.get("/me").status_code == 302


def test_cookie_flags(app, demo):
    client = app.test_client()
    response = client.post("/login", data={"email": "carla@globex.example", "password": "demo", "remember": "y"})
    headers = response.headers.getlist("Set-Cookie")
    for name in (SESSION_COOKIE, REMEMBER_COOKIE):
        [header] = [h for h in headers if h.startswith(name + "=")]
        assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    [remember] = [h for h in headers if h.startswith(REMEMBER_COOKIE + "=")]
    expires = dt.datetime.strptime(remember.split("Expires=")[1].split(";")[0], "%a, %d %b %Y %H:%M:%S GMT")
    assert abs((expires - utcnow()) - dt.timedelta(days=30)) < dt.timedelta(minutes=5)


def test_cookies_are_secure_in_production(tmp_path):
    from crm_portal.demo import load_demo

    app = make_app(tmp_path, PRODUCTION=True, EXTERNAL_URL="https://portal.test")
    with app.app_context(), db.connection_context():
        load_demo(app)
    client = app.test_client()
    response = client.post("/login", data={"email": "carla@globex.example", "password": "demo", "remember": "y"},
                           base_url="https://portal.test")
    headers = response.headers.getlist("Set-Cookie")
    assert len(headers) >= 2 and all("Secure" in h for h in headers)


# --- throttling ---------------------------------------------------------------------------------

def test_account_throttle_then_owner_gets_back_in(app, demo, clock):
    attacker = app.test_client()
    limit = app.config["LOGIN_THROTTLE_ACCOUNT_LIMIT"]
    for _ in range(limit):
        assert attacker.post("/login", data={"email": "carla@globex.example", "password": "guess"}).status_code == 200
    blocked = attacker.post("/login", data={"email": "carla@globex.example", "password": "guess"})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    # even the right password waits (no oracle), but only for a short while
    owner = app.test_client()
    assert owner.post("/login", data={"email": "carla@globex.example", "password": "demo"}).status_code == 429
    # other accounts are not affected
    login(app.test_client(), "anna@acme.example")

    clock["now"] += dt.timedelta(seconds=app.config["LOGIN_THROTTLE_MAX_DELAY"] + 1)
    login(owner, "carla@globex.example")
    with app.app_context(), db.connection_context():
        row = LoginThrottle.get(LoginThrottle.key == ratelimit.account_key("carla@globex.example"))
        assert (row.failures, row.pending, row.blocked_until) == (0, 0, None)  # a success clears the counter


def _busy_audit(monkeypatch, times: int | None) -> list[str]:
    """Make the login's audit find the database busy ``times`` times (``None``: always)."""
    from crm_portal.views import auth as auth_views

    real, calls = auth_views.audit, []

    def audit(action, *args, **kwargs):
        calls.append(action)
        if times is None or len(calls) <= times:
            raise pw.OperationalError("database is locked")
        return real(action, *args, **kwargs)

    monkeypatch.setattr(auth_views, "audit", audit)
    return calls


def _counters(app, email: str) -> list[tuple[int, int]]:
    keys = [ratelimit.account_key(email), ratelimit.ip_key("127.0.0.1")]
    with app.app_context(), db.connection_context():
        return [(row.failures, row.pending) for row in
                LoginThrottle.select().where(LoginThrottle.key.in_(keys)).order_by(LoginThrottle.key)]


def _audited(app, action: str) -> int:
    with app.app_context(), db.connection_context():
        return AuditEntry.select().where(AuditEntry.action == action).count()


def test_a_busy_database_while_storing_a_login_neither_leaks_a_place_nor_audits_twice(app, demo, monkeypatch):
    """The outcome of a failed login meets a busy database once: it is stored once (one failure, one
    audit entry) and the places the attempt reserved are given back."""
    calls = _busy_audit(monkeypatch, 1)
    response = app.test_client().post("/login", data={"email": "carla@globex.example", "password": "guess"})
    assert response.status_code == 200 and calls == ["login-failed", "login-failed"]
    assert _counters(app, "carla@globex.example") == [(1, 0), (1, 0)]
    assert _audited(app, "login-failed") == 1


def test_a_login_whose_outcome_cannot_be_stored_gives_its_places_back(app, demo, monkeypatch):
    _busy_audit(monkeypatch, None)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().post("/login", data={"email": "carla@globex.example", "password": "demo"})
    assert response.status_code == 500
    assert _counters(app, "carla@globex.example") == [(0, 0), (0, 0)]  # reserved, then released
    assert _audited(app, "login") == 0
    monkeypatch.undo()
    login(app.test_client(), "carla@globex.example")


def _client(app, ip: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def _attempt(client, password: str, email: str = "bruno@acme.example"):
    return client.post("/login", data={"email": email, "password": password})


def test_an_attack_from_elsewhere_never_locks_out_a_device_that_logged_in_before(app, demo, clock):
    """OWASP's device cookies: bruno's own browser, known from an earlier login, gets in while an
    attacker elsewhere has the account throttled; a new browser waits like the attacker."""
    owner = _client(app, "192.0.2.10")
    login(owner, "bruno@acme.example")
    assert owner.post("/logout").status_code == 302
    attacker = _client(app, "198.51.100.7")
    for _ in range(app.config["LOGIN_THROTTLE_ACCOUNT_LIMIT"] + 3):
        _attempt(attacker, "guess")
    assert _attempt(attacker, "demo").status_code == 429  # the right password from the attacker's side
    new_device = _client(app, "192.0.2.11")
    assert _attempt(new_device, "demo").status_code == 429  # an unknown browser is an untrusted client
    response = _attempt(owner, "demo")
    assert response.status_code == 302 and response.headers["Location"].endswith("/")


def test_a_device_is_throttled_on_its_own_and_its_cookie_is_bound_to_its_account(app, demo, clock):
    owner = _client(app, "192.0.2.10")
    login(owner, "bruno@acme.example")
    assert owner.post("/logout").status_code == 302
    for _ in range(app.config["LOGIN_THROTTLE_ACCOUNT_LIMIT"]):
        assert _attempt(owner, "guess").status_code == 200
    assert _attempt(owner, "demo").status_code == 429  # the device's own failures delay it
    # ... and only it: the account is not locked for a client that never failed.
    assert _attempt(_client(app, "192.0.2.12"), "demo").status_code == 302
    # Bruno's device cookie does nothing for anna's account, nor a forged one for anyone.
    attacker = _client(app, "198.51.100.7")
    for _ in range(app.config["LOGIN_THROTTLE_ACCOUNT_LIMIT"]):
        _attempt(attacker, "guess", "anna@acme.example")
    domain = app.config["SERVER_NAME"] or "localhost"
    cookie = owner.get_cookie(device_cookies.COOKIE_NAME, domain=domain)
    assert cookie is not None
    borrowed = _client(app, "192.0.2.13")
    borrowed.set_cookie(device_cookies.COOKIE_NAME, cookie.value, domain=domain)
    assert _attempt(borrowed, "demo", "anna@acme.example").status_code == 429
    forged = _client(app, "192.0.2.14")
    forged.set_cookie(device_cookies.COOKIE_NAME, cookie.value[:-2] + "xx", domain=domain)
    assert _attempt(forged, "demo", "anna@acme.example").status_code == 429


def test_the_device_cookie_names_no_email_and_is_http_only(app, demo):
    client = app.test_client()
    response = client.post("/login", data={"email": "anna@acme.example", "password": "demo"})
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(device_cookies.COOKIE_NAME))
    assert "HttpOnly" in header and "SameSite=Lax" in header and "anna" not in header


def test_delay_grows_and_is_capped(app, demo, clock):
    client = app.test_client()
    limit, base, cap = (app.config[k] for k in ("LOGIN_THROTTLE_ACCOUNT_LIMIT", "LOGIN_THROTTLE_BASE_DELAY",
                                                "LOGIN_THROTTLE_MAX_DELAY"))
    waits = []
    for _ in range(limit + 30):
        response = client.post("/login", data={"email": "carla@globex.example", "password": "guess"})
        if response.status_code == 429:
            waits.append(int(response.headers["Retry-After"]))
            clock["now"] += dt.timedelta(seconds=waits[-1])
    assert waits[0] == base and waits[1] == 2 * base
    assert waits == sorted(waits) and max(waits) == cap


def test_unknown_email_is_throttled_like_a_known_one(app, demo, clock):
    client = app.test_client()
    limit = app.config["LOGIN_THROTTLE_ACCOUNT_LIMIT"]
    codes = [client.post("/login", data={"email": "ghost@globex.example", "password": "x"}).status_code
             for _ in range(limit + 1)]
    assert codes == [200] * limit + [429]


def test_ip_throttle(tmp_path, clock):
    app = make_app(tmp_path, LOGIN_THROTTLE_IP_LIMIT=4, LOGIN_THROTTLE_ACCOUNT_LIMIT=100)
    client = app.test_client()
    for n in range(4):
        assert client.post("/login", data={"email": f"u{n}@x.example", "password": "x"}).status_code == 200
    assert client.post("/login", data={"email": "u9@x.example", "password": "x"}).status_code == 429
    other_ip = client.post("/login", data={"email": "u9@x.example", "password": "x"},
                           environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other_ip.status_code == 200


def test_quiet_window_resets_counter(app, demo, clock):
    client = app.test_client()
    limit = app.config["LOGIN_THROTTLE_ACCOUNT_LIMIT"]
    for _ in range(limit - 1):
        client.post("/login", data={"email": "carla@globex.example", "password": "guess"})
    clock["now"] += dt.timedelta(seconds=app.config["LOGIN_THROTTLE_WINDOW"] + 1)
    for _ in range(limit - 1):
        assert client.post("/login", data={"email": "carla@globex.example", "password": "guess"}).status_code == 200


def test_staff_login_is_throttled(app, demo, clock):
    client = app.test_client()
    limit = app.config["LOGIN_THROTTLE_ACCOUNT_LIMIT"]
    for _ in range(limit):
        assert client.post("/admin/login", data={"email": "admin@example.com", "password": "guess"}).status_code == 200
    assert client.post("/admin/login", data={"email": "admin@example.com", "password": "demo"}).status_code == 429
    # the portal account of the same address is a different key
    clock["now"] += dt.timedelta(seconds=app.config["LOGIN_THROTTLE_MAX_DELAY"] + 1)
    staff_login(client)


def test_staff_logout_kills_captured_cookie(app, demo):
    client = app.test_client()
    staff_login(client)
    captured = cookie(client, SESSION_COOKIE)
    assert client.post("/admin/logout").status_code == 302
    thief = app.test_client()
    thief.set_cookie(SESSION_COOKIE, captured, domain="portal.test")
    assert thief.get("/admin/").status_code == 302


# --- CSRF ---------------------------------------------------------------------------------------

def test_csrf_is_enforced(app, demo, client):
    """Posts without the form's token are refused (the client sends none with ``csrf=False``)."""
    assert client.post("/login", data={"email": "carla@globex.example", "password": "demo"},
                       csrf=False).status_code == 400
    token = csrf_token(client.get("/login").text)
    response = client.post("/login", data={"email": "carla@globex.example", "password": "demo", "csrf_token": token},
                           csrf=False)
    assert response.status_code == 302
    assert client.post("/logout", csrf=False).status_code == 400            # no token: refused, still logged in
    assert client.get("/me").status_code == 200
    assert client.post("/forgot-password", data={"email": "carla@globex.example"}, csrf=False).status_code == 400
    assert client.post("/me/password", data={"current_password": "demo"}, csrf=False).status_code == 400
    page = client.get("/me")
    assert client.post("/logout", data={"csrf_token": csrf_token(page.text)}, csrf=False).status_code == 302
    assert client.get("/me").status_code == 302


def test_password_hashes_use_owasp_argon2id_and_old_ones_are_upgraded(app, demo, client):
    from argon2 import PasswordHasher

    from crm_portal.auth import hash_password
    from crm_portal.db import db
    from crm_portal.models import Contact

    assert hash_password("x" * 12).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    with app.app_context(), db.connection_context():
        Contact.update(password_hash=PasswordHasher(memory_cost=65536, time_cost=3, parallelism=4).hash("demo")) \
            .where(Contact.email == "bruno@acme.example").execute()
    assert client.post("/login", data={"email": "bruno@acme.example", "password": "demo"}).status_code == 302
    with app.app_context(), db.connection_context():
        assert Contact.get(Contact.email == "bruno@acme.example").password_hash.startswith("$argon2id$v=19$m=19456")
