"""A real browser: log in, see the dashboard, open a list, log out (also on a phone-sized screen)."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from live_server import serve

CHROMIUM = os.environ.get("CRM_PORTAL_BROWSER") or shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"no Chromium at {CHROMIUM}: install Debian's chromium (.ci/run does) to run browser tests"),
]
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def portal_url(app, demo, tmp_path) -> Iterator[str]:
    with serve(app, tmp_path=tmp_path) as server:
        yield server.url


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_login_dashboard_list_logout(portal_url, browser):
    page = browser.new_page(locale="en-GB")
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{portal_url}/contacts/")
    assert "/login" in page.url
    page.fill("input[name=email]", "anna@acme.example")
    page.fill("input[name=password]", "demo")
    page.click("[data-testid=login-submit]")
    page.wait_for_url(f"{portal_url}/contacts/")
    assert page.locator("[data-testid=record-list] tbody tr").count() == 3

    page.goto(f"{portal_url}/")
    assert page.locator("h1").inner_text().startswith("Benvenuto, Anna")  # her language is Italian
    assert page.locator("[data-button='contacts.list']").is_visible()
    page.click("[data-button='contacts.list']")
    page.wait_for_url(f"{portal_url}/contacts/")
    page.fill("#q", "bianchi")
    page.press("#q", "Enter")
    page.wait_for_url("**q=bianchi**")
    assert page.locator("[data-testid=record-list] tbody tr").count() == 1
    assert "Da 1 a 1 di 1" in page.locator("[data-testid=showing]").inner_text()

    page.click("[data-testid=user-menu]")
    page.click("[data-testid=logout]")
    page.wait_for_url("**/login")
    page.goto(f"{portal_url}/contacts/")
    assert "/login" in page.url
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_phone_layout_has_a_menu_button(portal_url, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{portal_url}/login")
    page.fill("input[name=email]", "carla@globex.example")
    page.fill("input[name=password]", "demo")
    page.click("[data-testid=login-submit]")
    page.wait_for_url(f"{portal_url}/")
    menu_link = page.locator("#sidebar a[data-module='contacts']")
    assert not menu_link.is_visible()  # the side menu folds away on a phone
    page.click("button[aria-controls=sidebar]")
    menu_link.wait_for(state="visible")
    menu_link.click()
    page.wait_for_url(f"{portal_url}/contacts/")
    assert "globex.example" in page.content() and "acme.example" not in page.content()
    context.close()
