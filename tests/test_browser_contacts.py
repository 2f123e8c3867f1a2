"""A real browser on a phone-sized screen: a company's administrator invites a colleague, changes a
profile and switches a colleague's access off through its confirmation step."""
from __future__ import annotations

import pytest
from live_server import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_SKIP, live_server  # noqa: F401  (fixture)

from crm_portal.db import db
from crm_portal.models import Contact, OutboxMessage

pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]

PHONE = {"width": 375, "height": 740}


@pytest.fixture
def phone_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(locale="en-GB", viewport=PHONE, is_mobile=True, has_touch=True)
        page = context.new_page()
        page.set_default_timeout(15000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def _fits(page) -> None:
    """Nothing wider than the screen: the page never scrolls sideways (tables scroll in their box)."""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], page.url


def test_administrator_on_a_phone(app, live_server, phone_page):  # noqa: F811
    with app.app_context(), db.connection_context():
        Contact.update(language="en").where(Contact.email == "anna@acme.example").execute()
        bruno_id = Contact.get(Contact.email == "bruno@acme.example").id
    page, url = phone_page, live_server.url
    page.goto(f"{url}/login")
    page.fill("input[name=email]", "anna@acme.example")
    page.fill("input[name=password]", "demo")
    page.click("[data-testid=login-submit]")
    page.wait_for_url(f"{url}/")

    page.goto(f"{url}/contacts/")
    _fits(page)
    page.click("[data-testid=invite-colleague]")
    page.wait_for_url(f"{url}/contacts/invite")
    _fits(page)
    page.fill("input[name=first_name]", "Nadia")
    page.fill("input[name=last_name]", "Nuova")
    page.fill("input[name=email]", "nadia@acme.example")
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{url}/contacts/*")
    assert "Invited" in page.locator("[data-testid=access-status]").inner_text()

    page.goto(f"{url}/contacts/{bruno_id}")
    _fits(page)
    page.click("[data-testid=revoke] summary")
    _fits(page)
    page.click("[data-testid=confirm-revoke]")
    page.wait_for_url(f"{url}/contacts/{bruno_id}*")
    assert "No access" in page.locator("[data-testid=access-status]").inner_text()
    _fits(page)
    with app.app_context(), db.connection_context():
        assert not Contact.get(Contact.email == "bruno@acme.example").portal_access
        assert OutboxMessage.select().where((OutboxMessage.to_address == "nadia@acme.example")
                                            & (OutboxMessage.template == "invitation")).exists()
