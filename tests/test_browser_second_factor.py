"""A real browser enrols a second factor in "My data" and logs in with a TOTP code, on a phone's
width and on a desktop's."""
from __future__ import annotations

import time

import pyotp
import pytest
from live_server import CHROMIUM_SKIP, browser_page, live_server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]


@pytest.mark.parametrize("width", [375, 1280])
def test_enrol_and_log_in_with_a_code(live_server, browser_page, width):  # noqa: F811
    page, url = browser_page, live_server.url
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(f"{url}/login")
    page.fill("input[name=email]", "carla@globex.example")
    page.fill("input[name=password]", "demo")
    page.click("[data-testid=login-submit]")
    page.wait_for_url(f"{url}/")
    page.goto(f"{url}/me")
    page.click("[data-testid=second-factor-link]")
    page.click("[data-testid=second-factor-start]")
    qr = page.locator("[data-testid=second-factor-qr] svg")
    assert qr.is_visible() and qr.bounding_box()["width"] <= width
    totp = pyotp.TOTP(page.locator("[data-testid=second-factor-secret]").inner_text().strip())
    page.fill("input[name=code]", totp.now())
    page.click("[data-testid=second-factor-confirm]")
    assert page.locator("[data-testid=recovery-codes] li").count() == 10
    page.click("[data-testid=codes-saved]")
    assert page.locator("[data-testid=second-factor-on]").is_visible()

    page.click("[data-testid=user-menu]")
    page.click("[data-testid=logout]")
    page.wait_for_url(f"{url}/login")
    page.fill("input[name=email]", "carla@globex.example")
    page.fill("input[name=password]", "demo")
    page.click("[data-testid=login-submit]")
    page.wait_for_url(f"{url}/login/code")
    page.fill("input[name=code]", totp.at(time.time() + 30))
    page.click("[data-testid=code-submit]")
    page.wait_for_url(f"{url}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
