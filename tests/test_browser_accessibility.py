"""Automated accessibility check: axe-core, injected into the login page, the dashboard, the ticket list,
a ticket page and a quote page, finds no "serious" or "critical" violation, on a desktop and on a phone.

axe-core is vendored under tests/vendor (MPL-2.0, see its README) so that the check needs no network.
The pages' Content-Security-Policy forbids inline scripts, so the check's own browser context bypasses
it to inject the engine; the pages are otherwise the ones users get.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from live_server import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_SKIP, live_server  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 375, "height": 812}}
BLOCKING = {"serious", "critical"}


@pytest.fixture
def axe_browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def violations(page) -> list[dict]:
    """axe-core's violations on the current page (WCAG 2.x A/AA rules and best practices)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    return page.evaluate("""async () => {
      const result = await axe.run(document, {resultTypes: ['violations']});
      return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")


def _describe(where: str, found: list[dict]) -> list[str]:
    return [f"{where}: {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}" for v in found
            if v["impact"] in BLOCKING]


@pytest.mark.parametrize("size", sorted(VIEWPORTS))
def test_no_serious_violations(live_server, axe_browser, size):  # noqa: F811
    base = live_server.url
    context = axe_browser.new_context(viewport=VIEWPORTS[size], locale="it-IT", bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    problems: list[str] = []
    try:
        page.goto(f"{base}/login")
        problems += _describe("login", violations(page))

        page.fill("input[name=email]", "anna@acme.example")
        page.fill("input[name=password]", "demo")
        page.click("[data-testid=login-submit]")
        page.wait_for_url(f"{base}/")
        problems += _describe("dashboard", violations(page))

        page.goto(f"{base}/tickets/")
        problems += _describe("ticket list", violations(page))

        first = page.locator("[data-testid=record-list] a[href]").filter(has_text=re.compile(r"^TT\d+$")).first
        page.goto(base + first.get_attribute("href"))
        assert re.search(r"/tickets/\d+$", page.url)
        problems += _describe("ticket page", violations(page))

        # A record whose table is wider than a phone: its scrolling wrapper must take the keyboard focus.
        page.goto(f"{base}/quotes/")
        page.goto(base + page.locator("[data-testid=record-list] tr[data-href]").first.get_attribute("data-href"))
        problems += _describe("quote page", violations(page))
    finally:
        context.close()
    assert not problems, "\n".join(problems)


def test_the_check_finds_violations(live_server, axe_browser):  # noqa: F811
    """The check is not blind: a page made inaccessible on purpose is reported."""
    context = axe_browser.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/login")
        page.evaluate("() => document.querySelectorAll('label').forEach(l => l.remove())")
        found = {v["id"] for v in violations(page) if v["impact"] in BLOCKING}
    finally:
        context.close()
    assert "label" in found
