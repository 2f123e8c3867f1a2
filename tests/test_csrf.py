"""CSRF: every route that accepts POST — portal, account, every module, the admin — refuses a form
sent without the session's token with 400 and changes nothing; the same form with the token is
accepted, which proves the refusal came from the guard and not from the request itself.

The routes come from ``app.url_map``: a route added later is covered without touching this file, and
one whose URL this file cannot fill in (an unknown converter) fails the test instead of being skipped.
"""
from __future__ import annotations

import io
from typing import Any

import pytest
from conftest import login, make_app, staff_login
from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.routing import Rule

from crm_portal.account import tokens
from crm_portal.account.sessions import token_digest
from crm_portal.db import db
from crm_portal.models import Contact, LoginSession, StaffUser

PORTAL_USER = "anna@acme.example"  # company scope: sees her own and her colleague's records
STAFF_USER = "admin@example.com"
#: Routes whose whole point is to be reached without a session: the forms sent from a login page or
#: from an emailed link. They are guarded all the same (no login CSRF, no forged password change).
ANONYMOUS = frozenset({"auth.login", "admin.login", "account.forgot_password", "account.register",
                       "account.reset_password", "account.accept_invitation", "account.confirm_registration"})


@pytest.fixture
def app(tmp_path):
    application = make_app(tmp_path, SELF_REGISTRATION=True)
    yield application
    if not db.is_closed():
        db.close()


@pytest.fixture
def refusals(monkeypatch) -> list[str]:
    """The reasons the CSRF guard gave, request by request (the page itself is the generic 400)."""
    seen: list[str] = []
    original = CSRFProtect._error_response

    def spy(self, reason):
        seen.append(reason)
        return original(self, reason)

    monkeypatch.setattr(CSRFProtect, "_error_response", spy)
    return seen


# --- what to send ------------------------------------------------------------------------------
class Targets:
    """Existing demo records the logged-in user may act on, to fill in URLs and forms."""

    def __init__(self, app: Flask) -> None:
        from crm_portal.modules.faq import Article
        from crm_portal.modules.quotes import Quote
        from crm_portal.modules.tickets.models import Ticket, TicketAttachment

        with app.app_context(), db.connection_context():
            anna = Contact.get(Contact.email == PORTAL_USER)
            self.ticket = Ticket.get((Ticket.contact == anna) & Ticket.status.not_in(["closed", "discarded"]))
            self.quote = Quote.get((Quote.contact == anna) & (Quote.status == "sent"))
            self.article = Article.get(Article.title == "Accesso remoto al gestionale Acme")
            attachment = TicketAttachment.get_or_none(TicketAttachment.ticket == self.ticket)
            self.attachment_id = attachment.id if attachment else 1
            bruno = Contact.get(Contact.email == "bruno@acme.example")
            self.colleague = bruno.id  # anna administers her colleagues (contacts "manage")
            self.user_profile = bruno.profile_id
            self.reset = tokens.issue(bruno, "reset")
            self.staff_reset = tokens.issue_staff(StaffUser.get(StaffUser.email == STAFF_USER))
            self.invite = tokens.issue(Contact.get(Contact.email == "carla@globex.example"), "invite")
            self.register = tokens.issue_registration(
                {"email": "new@initech.example", "first_name": "Nuovo", "last_name": "Utente",
                 "company_name": "Initech", "vat_number": "", "phone": "", "language": "it"})
            # another browser of anna's, which "My data" can log out
            self.other_session = LoginSession.create(contact=anna, token_digest=token_digest(anna.session_token)).id
            self.admin_rows = _first_rows(app)

    def url(self, rule: Rule) -> str:
        """The rule's URL with every converter filled in (and the row a Flask-Admin form acts on)."""
        values: dict[str, Any] = {}
        for name in rule.arguments:
            values[name] = self._value(rule, name)
        path = rule.build(values, append_unknown=False)[1]
        view = rule.endpoint.split(".")[0]
        if rule.endpoint.endswith(".edit_view") and view in self.admin_rows:
            path += f"?id={self.admin_rows[view]}"
        return path

    def _value(self, rule: Rule, name: str) -> Any:
        blueprint = rule.endpoint.split(".")[0]
        if name == "token":
            return {"account.reset_password": self.reset, "account.accept_invitation": self.invite,
                    "admin.reset_password": self.staff_reset,
                    "account.confirm_registration": self.register}[rule.endpoint]
        if name == "code":
            return "it"
        if name == "attachment_id":
            return self.attachment_id
        if name == "contact_id":
            return self.ticket.contact_id
        if name in ("record_id", "id"):
            by_blueprint = {"tickets": self.ticket.id, "tickets_queue": self.ticket.id, "quotes": self.quote.id,
                            "faq": self.article.id, "contacts": self.colleague,
                            "account_sessions": self.other_session}
            if blueprint in by_blueprint:
                return by_blueprint[blueprint]
        raise AssertionError(f"no value for <{name}> of {rule.rule}: teach tests/test_csrf.py about it")

    def form(self, rule: Rule) -> dict[str, Any]:
        """A form the route would accept (with the token)."""
        view, _, action = rule.endpoint.partition(".")
        row = self.admin_rows.get(view)
        forms: dict[str, dict[str, Any]] = {
            "auth.login": {"email": PORTAL_USER, "password": "demo"},
            "admin.login": {"email": STAFF_USER, "password": "demo"},
            "account.forgot_password": {"email": PORTAL_USER},
            "account.register": {"first_name": "Ugo", "last_name": "Verdi", "email": "ugo@initech.example",
                                 "company_name": "Initech"},
            "account.reset_password": {"password": "Lampone-Verde-42", "confirm": "Lampone-Verde-42"},
            "account.accept_invitation": {"password": "Lampone-Verde-42", "confirm": "Lampone-Verde-42"},
            "account.confirm_registration": {"password": "Lampone-Verde-42", "confirm": "Lampone-Verde-42"},
            "account.me": {"first_name": "Anna", "last_name": "Rossi", "language": "it"},
            "account.change_password": {"current_password": "demo", "password": "Lampone-Verde-42",
                                        "confirm": "Lampone-Verde-42"},
            "account.change_request": {"req-field": "company", "req-message": "Acme Italia S.p.A."},
            "tickets.comment": {"body": "A comment"},
            "tickets.reopen": {"body": "Still broken"},
            "tickets.close": {"rating": "5"},
            "tickets.create": {"title": "Printer offline", "description": "Since this morning.", "type": "problem"},
            "quotes.accept": {"comment": "ok", "confirm": "1"},
            "quotes.reject": {"comment": "no", "confirm": "1"},
            "faq.feedback": {"helpful": "1"},
            "contacts.invite": {"first_name": "Nuovo", "last_name": "Collega", "email": "nuovo@acme.example",
                                "profile": str(self.user_profile)},
            "contacts.profile": {"profile": str(self.user_profile)},
            "tickets_queue.update": {"body": "On it", "kind": "public"},
        }
        if rule.endpoint in forms:
            return dict(forms[rule.endpoint])
        if rule.endpoint in ("tickets.upload", "documents.upload"):
            return {"file": (io.BytesIO(b"log line\n"), "log.txt"), "title": "Log"}
        if action == "delete_view" and row is not None:
            return {"id": str(row)}
        if action == "action_view" and row is not None:
            return {"action": "delete", "rowid": str(row)}
        if action == "ajax_update" and row is not None:
            return {"list_form_pk": str(row)}
        return {}


def _admin_views(app: Flask) -> list[Any]:
    return [view for admin in app.extensions["admin"] for view in admin._views]


def _first_rows(app: Flask) -> dict[str, Any]:
    """Per Flask-Admin model view, the id of an existing row (what its edit/delete forms act on)."""
    rows = {}
    for view in _admin_views(app):
        model = getattr(view, "model", None)
        if model is not None:
            first = model.select().order_by(model._meta.primary_key).first()
            if first is not None:
                rows[view.endpoint] = first.get_id()
    return rows


def _post_rules(app: Flask) -> list[Rule]:
    """Every POST route of the pages. The REST API (``/api/``) takes no cookie, only a bearer token,
    so it has no CSRF guard: tests/test_api_webhooks.py proves a session cookie alone gets 401."""
    return sorted((r for r in app.url_map.iter_rules() if "POST" in r.methods and not r.rule.startswith("/api/")),
                  key=lambda r: r.rule)


def database_state() -> dict[str, list[str]]:
    """Every row of every table, comparable before and after a request."""
    state = {}
    for table in db.get_tables():
        cursor = db.execute_sql(f'SELECT * FROM "{table}"')
        state[table] = sorted(repr(row) for row in cursor.fetchall())
    return state


def _role(rule: Rule) -> str:
    """Who sends the form: nobody yet, the staff (the admin's routes) or a portal contact."""
    if rule.endpoint in ANONYMOUS:
        return "anonymous"
    return "staff" if rule.rule.startswith("/admin/") else "portal"


def _client_for(app: Flask, role: str):
    client = app.test_client()
    if role == "staff":
        staff_login(client, STAFF_USER)
    elif role == "portal":
        login(client, PORTAL_USER)
    return client


# --- tests -------------------------------------------------------------------------------------
def test_every_post_route_refuses_a_form_without_token(app, demo, refusals):
    targets = Targets(app)
    rules = _post_rules(app)
    # The portal, the account pages, every module and the admin are all in the walk.
    endpoints = {r.endpoint for r in rules}
    assert {"auth.login", "auth.logout", "account.me", "account.reset_password", "tickets.comment",
            "quotes.accept", "faq.feedback", "deadlines.regenerate", "admin.logout",
            "core_company.create_view", "tickets_queue.take"} <= endpoints
    clients: dict[str, Any] = {}
    failures = []
    for rule in rules:
        role = _role(rule)
        if role not in clients:
            clients[role] = _client_for(app, role)
        client = clients[role]
        url = targets.url(rule)
        with app.app_context(), db.connection_context():
            before = database_state()
        del refusals[:]
        response = client.post(url, data=targets.form(rule), csrf=False)
        with app.app_context(), db.connection_context():
            changed = [t for t, rows in database_state().items() if before.get(t) != rows]
        if response.status_code != 400 or not refusals or changed:
            failures.append(f"{rule.endpoint} POST {url}: {response.status_code}, guard reasons {refusals}, "
                            f"tables changed {changed}")
    assert not failures, "\n".join(failures)
    assert len(rules) > 100  # the admin's model views alone have five POST routes each


# Main routes sent again with the token: accepted (never the guard's 400), with the status of success.
ACCEPTED = [
    ("anonymous", "auth.login", 302),
    ("anonymous", "admin.login", 302),
    ("anonymous", "account.forgot_password", 200),
    ("anonymous", "account.register", 200),
    ("anonymous", "account.reset_password", 302),
    ("anonymous", "account.confirm_registration", 302),
    ("portal", "account.me", 302),
    ("portal", "account.change_request", 302),
    ("portal", "tickets.comment", 302),
    ("portal", "tickets.upload", 302),
    ("portal", "quotes.accept", 302),
    ("portal", "faq.feedback", 302),
    ("portal", "deadlines.regenerate", 302),
    ("portal", "contacts.invite", 302),
    ("portal", "contacts.revoke", 302),
    ("portal", "auth.set_language", 302),
    ("portal", "auth.logout", 302),
    ("staff", "tickets_queue.take", 302),
    ("staff", "view_as.start", 302),
    ("staff", "core_button.delete_view", 302),
    ("staff", "admin.logout", 302),
]


@pytest.mark.parametrize("role,endpoint,status", ACCEPTED, ids=[e for _, e, _ in ACCEPTED])
def test_the_same_post_with_token_passes_the_guard(app, demo, refusals, role, endpoint, status):
    targets = Targets(app)
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    assert _role(rule) == role
    client = _client_for(app, role)
    url = targets.url(rule)
    with app.app_context(), db.connection_context():
        before = database_state()
    response = client.post(url, data=targets.form(rule))
    assert not refusals
    assert response.status_code == status, f"POST {url}: {response.status_code}"
    if endpoint not in ("auth.set_language", "auth.logout", "admin.logout", "auth.login", "admin.login"):
        with app.app_context(), db.connection_context():
            assert database_state() != before, f"POST {url} with its token changed nothing"
