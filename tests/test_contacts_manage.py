"""Customers' own administrators: the contacts module's ``manage`` action.

anna (Acme, "company" profile: contacts with company scope and ``manage``) administers her
colleagues bruno and chiara ("user" profile, the assignable one); carla is at Globex. Every guard
— own company only, assignable profiles only, never oneself, ``manage`` required, CSRF, the email
throttle — has a test here that fails without it.
"""
from __future__ import annotations

import pytest
from conftest import login, staff_login

from crm_portal import signals
from crm_portal.db import db
from crm_portal.models import AuditEntry, Contact, OutboxMessage, Profile, ProfileModule, StaffUser
from crm_portal.testing import CsrfClient


def _contact(email: str) -> Contact:
    return Contact.get(Contact.email == email)


def _profile(name: str) -> Profile:
    return Profile.get(Profile.name == name)


@pytest.fixture
def ids(app, demo):
    """Contact and profile ids by short name; anna reads the portal in English."""
    with app.app_context(), db.connection_context():
        Contact.update(language="en").where(Contact.email == "anna@acme.example").execute()
        out = {key: contact.id for key, contact in demo["contacts"].items()}
        out.update({f"profile_{p.name}": p.id for p in Profile.select()})
    return out


@pytest.fixture
def anna(app, ids, client):
    login(client, "anna@acme.example")
    return client


def _second_client(app, email: str):
    other = app.test_client()
    assert isinstance(other, CsrfClient)
    login(other, email)
    return other


def _grant_contacts(app, profile: str, scope: str | None, actions: str = "view,export,manage") -> None:
    with app.app_context(), db.connection_context():
        ProfileModule.delete().where((ProfileModule.profile == _profile(profile).id)
                                     & (ProfileModule.module == "contacts")).execute()
        if scope is not None:
            ProfileModule.create(profile=_profile(profile).id, module="contacts", scope=scope, actions=actions)


def _state(app, contact_id: int) -> tuple:
    with app.app_context(), db.connection_context():
        c = Contact.get_by_id(contact_id)
        return c.portal_access, c.profile_id, c.session_token


def _outbox(app, to: str) -> list[OutboxMessage]:
    with app.app_context(), db.connection_context():
        return list(OutboxMessage.select().where(OutboxMessage.to_address == to))


# --- the power-user matrix -----------------------------------------------------------------------

ROUTES = {
    "revoke": lambda ids: ("/contacts/{id}/revoke", {}),
    "profile": lambda ids: ("/contacts/{id}/profile", {"profile": str(ids["profile_company"])}),
}


def _changes(app, ids, route: str, target: int) -> None:
    """Put the target where the route has something to change (anna's colleagues only)."""
    if route == "profile":
        with app.app_context(), db.connection_context():
            Profile.update(assignable=True).where(Profile.name == "company").execute()


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("who", ["colleague", "self", "other_company"])
def test_power_user_matrix(app, ids, anna, route, who):
    target = {"colleague": ids["bruno"], "self": ids["anna"], "other_company": ids["carla"]}[who]
    _changes(app, ids, route, target)
    url, data = ROUTES[route](ids)
    before = _state(app, target)
    response = anna.post(url.format(id=target), data=data)
    after = _state(app, target)
    if who == "colleague":
        assert response.status_code == 302
        assert after != before
    elif who == "self":
        assert response.status_code == 403
        assert "You cannot change your own portal access or profile" in response.text
        assert after == before
    else:
        assert response.status_code == 404
        assert "Carla" not in response.text
        assert after == before


def test_other_company_by_id_and_by_forged_form(app, ids, anna):
    """Another company's contact answers 404 to every route, its page included; an invitation
    form cannot place a contact in another company either."""
    with app.app_context(), db.connection_context():
        Contact.update(portal_access=False).where(Contact.id == ids["dario"]).execute()
    for url in (f"/contacts/{ids['carla']}", f"/contacts/{ids['dario']}"):
        assert anna.get(url).status_code == 404
    for path in ("revoke", "enable", "profile"):
        assert anna.post(f"/contacts/{ids['dario']}/{path}",
                         data={"profile": str(ids["profile_user"])}).status_code == 404
    assert _state(app, ids["dario"])[0] is False
    response = anna.post("/contacts/invite", data={
        "first_name": "Forged", "last_name": "Company", "email": "forged@example.com",
        "profile": str(ids["profile_user"]), "company": str(ids["carla"]), "company_id": "2"})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        assert _contact("forged@example.com").company_id == _contact("anna@acme.example").company_id


def test_manage_is_required(app, ids, client):
    """bruno with the contacts module but without ``manage``: 403 on every route, no manage
    section, no last-login column; with the module hidden: 404."""
    _grant_contacts(app, "user", "company", "view,export")
    login(client, "bruno@acme.example")
    page = client.get(f"/contacts/{ids['chiara']}")
    assert page.status_code == 200
    assert 'data-testid="manage"' not in page.text
    listing = client.get("/contacts/")
    assert 'data-testid="invite-colleague"' not in listing.text
    assert "Ultimo accesso" not in listing.text and "Last login" not in listing.text
    export = client.get("/contacts/export.csv")
    assert "Ultimo accesso" not in export.text and "Last login" not in export.text
    before = _state(app, ids["chiara"])
    assert client.get("/contacts/invite").status_code == 403
    assert client.post("/contacts/invite", data={"first_name": "N", "last_name": "N", "email": "n@acme.example",
                                                 "profile": str(ids["profile_user"])}).status_code == 403
    assert client.post(f"/contacts/{ids['chiara']}/revoke").status_code == 403
    assert client.post(f"/contacts/{ids['chiara']}/profile",
                       data={"profile": str(ids["profile_user"])}).status_code == 403
    assert _state(app, ids["chiara"]) == before
    with app.app_context(), db.connection_context():
        assert not Contact.select().where(Contact.email == "n@acme.example").exists()
    _grant_contacts(app, "user", None)
    assert client.get("/contacts/invite").status_code == 404
    assert client.post(f"/contacts/{ids['chiara']}/revoke").status_code == 404


def test_manage_shows_columns_and_section(app, ids, anna):
    listing = anna.get("/contacts/")
    assert "Last login" in listing.text
    assert 'data-testid="invite-colleague"' in listing.text
    page = anna.get(f"/contacts/{ids['bruno']}")
    assert 'data-testid="manage"' in page.text and 'data-testid="profile-form"' in page.text
    own = anna.get(f"/contacts/{ids['anna']}")
    assert 'data-testid="self-note"' in own.text
    assert 'data-testid="profile-form"' not in own.text and 'data-testid="revoke"' not in own.text


# --- profiles ------------------------------------------------------------------------------------

def test_profile_only_among_assignable(app, ids, anna):
    page = anna.get(f"/contacts/{ids['bruno']}")
    assert f'value="{ids["profile_company"]}"' not in page.text  # not offered
    for forged in (str(ids["profile_company"]), "999999", "x", ""):
        response = anna.post(f"/contacts/{ids['bruno']}/profile", data={"profile": forged})
        assert response.status_code == 400, forged
        assert "Choose one of the profiles offered" in response.text
    assert _state(app, ids["bruno"])[1] == ids["profile_user"]


def test_profile_change_is_audited_and_signalled(app, ids, anna):
    with app.app_context(), db.connection_context():
        Profile.update(assignable=True).where(Profile.name == "company").execute()
    seen = []

    def receiver(sender, **kwargs):
        seen.append((kwargs["change"], kwargs["contact"].email, kwargs["by"].email, kwargs["details"]))

    signals.colleague_changed.connect(receiver)
    try:
        response = anna.post(f"/contacts/{ids['bruno']}/profile", data={"profile": str(ids["profile_company"])})
    finally:
        signals.colleague_changed.disconnect(receiver)
    assert response.status_code == 302
    assert seen == [("profile-changed", "bruno@acme.example", "anna@acme.example",
                     {"from": "user", "to": "company"})]
    with app.app_context(), db.connection_context():
        entry = AuditEntry.get(AuditEntry.action == "colleague-profile-changed")
        assert (entry.actor_type, entry.actor_id, entry.object_id) == ("contact", ids["anna"], str(ids["bruno"]))
        assert '"to": "company"' in entry.details


# --- access --------------------------------------------------------------------------------------

def test_revoke_ends_the_colleague_session(app, ids, anna):
    bruno = _second_client(app, "bruno@acme.example")
    assert bruno.get("/contacts/").status_code == 200
    page = anna.get(f"/contacts/{ids['bruno']}")
    assert 'data-testid="confirm-revoke"' in page.text  # behind a confirmation step
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs["contact"].email)

    signals.portal_access_revoked.connect(receiver)
    try:
        response = anna.post(f"/contacts/{ids['bruno']}/revoke")
    finally:
        signals.portal_access_revoked.disconnect(receiver)
    assert response.status_code == 302
    assert seen == ["bruno@acme.example"]
    after = bruno.get("/contacts/")
    assert after.status_code == 302 and "/login" in after.headers["Location"]
    assert bruno.post("/login", data={"email": "bruno@acme.example", "password": "demo"}).status_code != 302
    with app.app_context(), db.connection_context():
        assert not _contact("bruno@acme.example").portal_access
        entry = AuditEntry.get(AuditEntry.action == "colleague-access-revoked")
        assert (entry.actor_type, entry.actor_id) == ("contact", ids["anna"])
    # Switched off already: nothing more happens.
    assert anna.post(f"/contacts/{ids['bruno']}/revoke").status_code == 302


def test_enable_sends_the_usual_email(app, ids, anna):
    assert anna.post(f"/contacts/{ids['bruno']}/revoke").status_code == 302
    assert anna.post(f"/contacts/{ids['bruno']}/enable").status_code == 302
    templates = [m.template for m in _outbox(app, "bruno@acme.example")]
    assert templates == ["access-enabled"]  # he has a password: told that he can log in again
    login(app.test_client(), "bruno@acme.example")
    with app.app_context(), db.connection_context():
        Contact.update(portal_access=False, password_hash=None).where(Contact.id == ids["chiara"]).execute()
    assert anna.post(f"/contacts/{ids['chiara']}/enable").status_code == 302
    assert [m.template for m in _outbox(app, "chiara@acme.example")] == ["invitation"]
    with app.app_context(), db.connection_context():
        actions = [e.action for e in AuditEntry.select().where(AuditEntry.actor_id == ids["anna"])
                   .order_by(AuditEntry.id)]
    assert "colleague-access-enabled" in actions and "invitation-sent" in actions
    # Already on: no second email.
    assert anna.post(f"/contacts/{ids['chiara']}/enable").status_code == 302
    assert len(_outbox(app, "chiara@acme.example")) == 1


def test_enable_follows_invite_on_portal_access(app, ids, anna):
    app.config["INVITE_ON_PORTAL_ACCESS"] = False
    assert anna.post(f"/contacts/{ids['bruno']}/revoke").status_code == 302
    response = anna.post(f"/contacts/{ids['bruno']}/enable", follow_redirects=True)
    assert "has been switched on." in response.text and "told by email" not in response.text
    assert _state(app, ids["bruno"])[0] is True
    assert _outbox(app, "bruno@acme.example") == []


# --- invitations ---------------------------------------------------------------------------------

def _invite(client, email="nuovo@acme.example", **extra):
    data = {"first_name": "Nuovo", "last_name": "Collega", "email": email, "profile": extra.pop("profile")}
    data.update(extra)
    return client.post("/contacts/invite", data=data)


def test_invite_creates_colleague_and_sends_invitation(app, ids, anna):
    seen = []

    def receiver(sender, **kwargs):
        seen.append((kwargs["change"], kwargs["contact"].email))

    assert anna.get("/contacts/invite").status_code == 200
    signals.colleague_changed.connect(receiver)
    try:
        response = _invite(anna, email=" Nuovo@ACME.example ", profile=str(ids["profile_user"]))
    finally:
        signals.colleague_changed.disconnect(receiver)
    assert response.status_code == 302
    assert seen == [("invited", "nuovo@acme.example")]
    with app.app_context(), db.connection_context():
        new = _contact("nuovo@acme.example")
        assert new.company_id == _contact("anna@acme.example").company_id
        assert new.profile_id == ids["profile_user"] and new.portal_access and new.password_hash is None
        entry = AuditEntry.get(AuditEntry.action == "colleague-invited")
        assert (entry.actor_type, entry.actor_id, entry.object_id) == ("contact", ids["anna"], str(new.id))
    messages = _outbox(app, "nuovo@acme.example")
    assert [m.template for m in messages] == ["invitation"]
    assert "https://portal.test/invitation/" in messages[0].body_text or "/invitation/" in messages[0].body_text
    page = anna.get(response.headers["Location"])
    assert "Invited" in page.text


def test_invite_with_used_email_creates_nothing(app, ids, anna):
    with app.app_context(), db.connection_context():
        count = Contact.select().count()
    for email in ("carla@globex.example", "BRUNO@acme.example"):
        response = _invite(anna, email=email, profile=str(ids["profile_user"]))
        assert response.status_code == 400
        assert "This email address is already used by a contact" in response.text
    with app.app_context(), db.connection_context():
        assert Contact.select().count() == count
        assert not OutboxMessage.select().where(OutboxMessage.template == "invitation").exists()


def test_invite_needs_a_company(app, ids, anna):
    """A contact without a company has nowhere to add colleagues: the page does not exist."""
    with app.app_context(), db.connection_context():
        Contact.update(company=None).where(Contact.id == ids["anna"]).execute()
    assert anna.get("/contacts/invite").status_code == 404
    assert _invite(anna, profile=str(ids["profile_user"])).status_code == 404
    with app.app_context(), db.connection_context():
        assert not Contact.select().where(Contact.email == "nuovo@acme.example").exists()


def test_invite_refuses_profile_not_assignable(app, ids, anna):
    response = _invite(anna, profile=str(ids["profile_company"]))
    assert response.status_code == 400
    assert "Choose one of the profiles offered" in response.text
    with app.app_context(), db.connection_context():
        assert not Contact.select().where(Contact.email == "nuovo@acme.example").exists()


def test_invite_is_throttled(app, ids, anna):
    app.config["MAIL_REQUEST_IP_LIMIT"] = 2
    for i in range(2):
        assert _invite(anna, email=f"n{i}@acme.example", profile=str(ids["profile_user"])).status_code == 302
    refused = _invite(anna, email="n9@acme.example", profile=str(ids["profile_user"]))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    with app.app_context(), db.connection_context():
        assert not Contact.select().where(Contact.email == "n9@acme.example").exists()
    # Enabling access sends email too: the same limit.
    assert anna.post(f"/contacts/{ids['bruno']}/revoke").status_code == 302
    assert anna.post(f"/contacts/{ids['bruno']}/enable").status_code == 429
    assert _state(app, ids["bruno"])[0] is False


# --- CSRF ----------------------------------------------------------------------------------------

def test_csrf_required(app, ids, anna):
    before = _state(app, ids["bruno"])
    with app.app_context(), db.connection_context():
        Profile.update(assignable=True).where(Profile.name == "company").execute()
    assert anna.post(f"/contacts/{ids['bruno']}/revoke", csrf=False).status_code == 400
    assert anna.post(f"/contacts/{ids['bruno']}/profile", data={"profile": str(ids["profile_company"])},
                     csrf=False).status_code == 400
    assert anna.post("/contacts/invite", data={"first_name": "A", "last_name": "B", "email": "c@acme.example",
                                               "profile": str(ids["profile_user"])}, csrf=False).status_code == 400
    assert _state(app, ids["bruno"]) == before
    with app.app_context(), db.connection_context():
        assert not Contact.select().where(Contact.email == "c@acme.example").exists()


# --- audit log and activity ----------------------------------------------------------------------

def test_changes_are_in_the_staff_audit_log(app, ids, anna):
    assert anna.post(f"/contacts/{ids['bruno']}/revoke").status_code == 302
    with app.app_context(), db.connection_context():
        StaffUser.update(language="en").where(StaffUser.email == "admin@example.com").execute()
    staff = app.test_client()
    staff_login(staff)
    page = staff.get("/admin/core_audit/?search=colleague")
    assert page.status_code == 200
    assert "Portal access switched off by a colleague" in page.text and "anna@acme.example" in page.text


def test_activity_of_a_colleague(app, ids, anna):
    login(app.test_client(), "bruno@acme.example")  # bruno's activity: a login
    login(app.test_client(), "chiara@acme.example")
    page = anna.get(f"/contacts/{ids['bruno']}")
    section = page.text.split('data-testid="activity"', 1)[1].split("</ul>", 1)[0]
    assert "Logged in" in section
    assert section.count("<li") == 1  # chiara's login is hers, not bruno's
    listing = anna.get("/contacts/")
    assert listing.text.count('data-testid="last-activity"') == 3  # anna, bruno, chiara logged in
    with app.app_context(), db.connection_context():
        assert _contact("bruno@acme.example").last_login is not None


def test_activity_names_colleagues_acted_on(app, ids, anna):
    assert anna.post(f"/contacts/{ids['chiara']}/revoke").status_code == 302
    bruno = _second_client(app, "bruno@acme.example")
    _grant_contacts(app, "user", "company")
    page = bruno.get(f"/contacts/{ids['anna']}")
    section = page.text.split('data-testid="activity"', 1)[1].split("</ul>", 1)[0]
    assert "Chiara Verdi" in section
    # One line per change: the account module's companion entry (portal-access-revoked) is left out.
    assert section.count("Ha disattivato") == 1  # bruno reads Italian
    with app.app_context(), db.connection_context():
        AuditEntry.update(object_id=str(ids["carla"])).where(
            AuditEntry.action == "colleague-access-revoked").execute()
    section = bruno.get(f"/contacts/{ids['anna']}").text.split('data-testid="activity"', 1)[1]
    assert "Carla" not in section.split("</ul>", 1)[0]  # never a name of another company


def test_italian_pages(app, ids, client):
    with app.app_context(), db.connection_context():
        Contact.update(language="it").where(Contact.id == ids["anna"]).execute()
    login(client, "anna@acme.example")
    page = client.get(f"/contacts/{ids['bruno']}")
    assert "Amministrazione del portale" in page.text and "Attività recenti" in page.text
    assert "Invita un collega" in client.get("/contacts/invite").text


def test_list_with_activity_runs_constant_queries(app, ids, anna, queries):
    def count() -> int:
        with queries:
            assert anna.get("/contacts/?per_page=100").status_code == 200
        return queries.count

    login(app.test_client(), "bruno@acme.example")
    assert anna.post(f"/contacts/{ids['chiara']}/revoke").status_code == 302  # an entry naming a colleague
    few = count()
    with app.app_context(), db.connection_context():
        acme = _contact("anna@acme.example").company_id
        with db.atomic():
            Contact.insert_many([{"first_name": f"W{i}", "last_name": f"S{i:03d}", "email": f"w{i}@acme.example",
                                  "company": acme, "session_token": f"t{i}"} for i in range(60)]).execute()
            workers = list(Contact.select().where(Contact.email.startswith("w")))
            AuditEntry.insert_many(
                [{"actor_type": "contact", "actor_id": w.id, "action": a, "object_type": "core_contact",
                  "object_id": str(ids["bruno"])} for w in workers
                 for a in ("login", "colleague-access-revoked")]).execute()
    many = count()
    listing = anna.get("/contacts/?per_page=100")
    assert listing.text.count('data-testid="last-activity"') >= 61
    assert many == few, queries.queries
