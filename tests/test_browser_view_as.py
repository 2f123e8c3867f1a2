"""In a real browser under the portal's Content-Security-Policy: a staff member opens the portal as a
contact from the contacts list and leaves it from the banner; an operator opens a ticket for a
customer from the queue. No page logs an error or a CSP violation."""
from __future__ import annotations

import pytest
from live_server import CHROMIUM_SKIP, browser_page, live_server  # noqa: F401  (fixtures)

from crm_portal.db import db
from crm_portal.models import Contact, OutboxMessage
from crm_portal.modules.tickets.models import Ticket

pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]


def _staff_page(page, url: str, email: str):
    page.problems = []

    def on_console(msg) -> None:
        if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico"):
            page.problems.append(f"console: {msg.text} ({msg.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: page.problems.append(f"exception: {exc}"))
    page.goto(f"{url}/admin/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "demo")
    with page.expect_navigation():
        page.click("button[type=submit]")
    return page


def test_view_as_from_the_contacts_list_and_back(app, live_server, browser_page):  # noqa: F811
    page = _staff_page(browser_page, live_server.url, "admin@example.com")
    with app.app_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
    page.goto(f"{live_server.url}/admin/core_contact/?search=bruno")
    with page.expect_navigation():
        page.locator(f"a[href='/admin/view-as/{bruno.id}/']").click()
    with page.expect_navigation():
        page.click("[data-testid=view-as-start]")
    banner = page.locator("[data-testid=view-as-banner]")
    assert "Bruno Bianchi" in banner.inner_text()
    page.goto(f"{live_server.url}/documents/")
    assert "Rapporto intervento server" in page.content() and "Verifica backup trimestrale" not in page.content()
    with page.expect_navigation():
        page.click("[data-testid=view-as-leave]")
    assert f"/admin/core_contact/edit/?id={bruno.id}" in page.url
    assert page.problems == []


def test_an_operator_opens_a_ticket_for_a_customer(app, live_server, browser_page):  # noqa: F811
    page = _staff_page(browser_page, live_server.url, "operatore@example.com")
    with app.app_context(), db.connection_context():
        before = Ticket.select().count()
    page.goto(f"{live_server.url}/admin/tickets_queue/new/")
    page.fill("#contact-search", "bruno")
    with page.expect_navigation():
        page.press("#contact-search", "Enter")
    with page.expect_navigation():
        page.locator("[data-testid=contact-choices] a", has_text="Bruno Bianchi").click()
    while page.locator("[data-testid=new-ticket-form]").count() == 0:  # the contact's service steps
        with page.expect_navigation():
            page.locator(".list-group a").first.click()
    page.fill("input[name=title]", "Called: the printer is offline")
    page.fill("textarea[name=description]", "Since this morning, says Bruno.")
    page.select_option("select[name=category]", index=1)  # no mapping on the demo service: staff choose
    with page.expect_navigation():
        page.click("[data-testid=submit-new-ticket]")
    assert "/admin/tickets_queue/work/" in page.url
    assert page.locator("[data-testid=opened-by-staff]").count() == 1
    with app.app_context(), db.connection_context():
        assert Ticket.select().count() == before + 1
        assert OutboxMessage.select().where((OutboxMessage.to_address == "bruno@acme.example")
                                            & (OutboxMessage.template == "tickets_created")).count() == 1
    assert page.problems == []
