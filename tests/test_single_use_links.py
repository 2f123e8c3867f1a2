"""Emailed one-time links work once: invitation, password reset and registration confirmation.

Used a second time — one after the other, or twice at the same moment from two browsers against a
real threaded server — the link is refused with the token error page (400, reason "used") and the
first use's effect stands: the password is the one chosen first, one contact is registered.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import login, make_app, staff_login
from flask import Flask
from live_server import Browser, serve_in_thread

from crm_portal.auth import verify_password
from crm_portal.db import db
from crm_portal.models import Contact, OutboxMessage

FIRST = "correct horse battery staple"
SECOND = "another fine passphrase here"
REGISTRANT = {"first_name": "Marta", "last_name": "Blu", "email": "marta@acme.example",
              "company_name": "Acme", "vat_number": "", "phone": ""}


@pytest.fixture
def app(tmp_path) -> Iterator[Flask]:
    from crm_portal.demo import load_demo

    application = make_app(tmp_path, SELF_REGISTRATION=True)
    with application.app_context(), db.connection_context():
        load_demo(application)
    yield application
    if not db.is_closed():
        db.close()


# --- helpers -----------------------------------------------------------------------------------
def emailed_link(app: Flask, template: str, to: str) -> str:
    """The path of the link in the last ``template`` email queued for ``to``."""
    with app.app_context(), db.connection_context():
        message = (OutboxMessage.select().where((OutboxMessage.template == template)
                                                & (OutboxMessage.to_address == to))
                   .order_by(OutboxMessage.id.desc()).first())
    assert message is not None, f"no {template} email to {to}"
    match = re.search(r"http://portal\.test(/\S+)", message.body_text)
    assert match, message.body_text
    return match.group(1)


def reset_link(app: Flask, email: str = "anna@acme.example") -> str:
    response = app.test_client().post("/forgot-password", data={"email": email})
    assert response.status_code == 200
    return emailed_link(app, "password-reset", email)


def invitation_link(app: Flask, email: str = "nina@acme.example") -> str:
    """A new contact with portal access and no password yet, invited from the admin."""
    with app.app_context(), db.connection_context():
        nina = Contact.create(first_name="Nina", last_name="Nuova", email=email, language="en", portal_access=True,
                              company=Contact.get(Contact.email == "anna@acme.example").company_id)
    admin = app.test_client()
    staff_login(admin)
    response = admin.post("/admin/core_contact/action/", data={"action": "invite", "rowid": [str(nina.id)]})
    assert response.status_code == 302
    return emailed_link(app, "invitation", email)


def registration_link(app: Flask) -> str:
    response = app.test_client().post("/register", data=REGISTRANT)
    assert response.status_code == 200
    return emailed_link(app, "registration-confirm", REGISTRANT["email"])


def password_of(app: Flask, email: str) -> str | None:
    """Which of the two test passwords ``email`` has now (None: neither)."""
    with app.app_context(), db.connection_context():
        stored = Contact.get(Contact.email == email).password_hash
    return next((p for p in (FIRST, SECOND) if stored and verify_password(stored, p)), None)


def contacts_named(app: Flask, email: str) -> int:
    with app.app_context(), db.connection_context():
        return Contact.select().where(Contact.email == email).count()


def assert_used(response_status: int, body: str) -> None:
    assert response_status == 400, f"second use answered {response_status}"
    refused = 'data-testid="token-error"' in body and 'data-reason="used"' in body
    assert refused, "the second use did not get the used-link page"


def form(password: str) -> dict[str, str]:
    return {"password": password, "confirm": password}


# --- one after the other -----------------------------------------------------------------------
@pytest.mark.parametrize("kind,email", [("reset", "anna@acme.example"), ("invite", "nina@acme.example")])
def test_password_link_works_once(app, kind, email):
    link = reset_link(app, email) if kind == "reset" else invitation_link(app, email)
    first = app.test_client()
    assert first.get(link).status_code == 200
    assert first.post(link, data=form(FIRST)).status_code == 302
    assert first.get("/me").status_code == 200  # the link logged its user in
    assert password_of(app, email) == FIRST

    # The same browser (still logged in) and another one: both refused, the password stays.
    for browser in (first, app.test_client()):
        again = browser.post(link, data=form(SECOND))
        assert_used(again.status_code, again.text)
        assert password_of(app, email) == FIRST
        opened = browser.get(link)
        assert_used(opened.status_code, opened.text)
    login(app.test_client(), email, FIRST)


def test_registration_link_works_once(app):
    link = registration_link(app)
    first = app.test_client()
    assert first.post(link, data=form(FIRST)).status_code == 302
    assert contacts_named(app, REGISTRANT["email"]) == 1
    for browser in (first, app.test_client()):
        again = browser.post(link, data=form(SECOND))
        assert_used(again.status_code, again.text)
        assert contacts_named(app, REGISTRANT["email"]) == 1
        assert password_of(app, REGISTRANT["email"]) == FIRST


# --- twice at the same moment ------------------------------------------------------------------
def submit_together(port: int, link: str, passwords: list[str]) -> list[tuple[int, str]]:
    """Every browser opens the link, then all submit it at the same moment; their answers, in order."""
    browsers = [Browser(port, host="portal.test") for _ in passwords]  # the configured SERVER_NAME
    tokens = [b.token(link)[0] for b in browsers]
    start = threading.Barrier(len(browsers))
    answers: list[Any] = [None] * len(browsers)

    def submit(i: int) -> None:
        start.wait()
        try:
            status, _, page = browsers[i].request("POST", link, {"csrf_token": tokens[i], **form(passwords[i])})
            answers[i] = (status, page)
        except Exception as exc:  # reported by the test, not lost in a thread
            answers[i] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(browsers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(isinstance(a, tuple) for a in answers), answers
    return answers


@pytest.mark.parametrize("kind,email", [("reset", "anna@acme.example"), ("invite", "nina@acme.example")])
def test_parallel_submissions_of_a_password_link_one_wins(app, kind, email):
    link = reset_link(app, email) if kind == "reset" else invitation_link(app, email)
    with serve_in_thread(app) as server:
        answers = submit_together(server.port, link, [FIRST, SECOND])
    statuses = [status for status, _ in answers]
    assert sorted(statuses) == [302, 400], statuses
    winner = statuses.index(302)
    loser_status, loser_page = answers[1 - winner]
    assert_used(loser_status, loser_page)
    assert password_of(app, email) == [FIRST, SECOND][winner]  # the loser's password was never set


def test_parallel_confirmations_of_a_registration_register_one_contact(app):
    link = registration_link(app)
    with serve_in_thread(app) as server:
        answers = submit_together(server.port, link, [FIRST, SECOND])
    statuses = [status for status, _ in answers]
    assert contacts_named(app, REGISTRANT["email"]) == 1
    assert sorted(statuses) == [302, 400], statuses
    winner = statuses.index(302)
    assert_used(*answers[1 - winner])
    assert password_of(app, REGISTRANT["email"]) == [FIRST, SECOND][winner]
