"""A real browser through the forgotten-password flow: ask for the link, open it from the written
.eml message, choose a password, log out and log in with it."""
from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest
from live_server import CHROMIUM_SKIP, browser_page, live_server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]

NEW_PASSWORD = "a quiet morning on lake Como"


def _reset_link(mail_dir: Path, to: str) -> str:
    for eml in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        if message["To"] == to and "/reset-password/" in message.get_body(("plain",)).get_content():
            return re.search(r"http://\S+/reset-password/\S+", message.get_body(("plain",)).get_content()).group(0)
    raise AssertionError(f"no reset email for {to} in {mail_dir}")


def test_forgot_password_end_to_end(live_server, browser_page):  # noqa: F811
    page, url = browser_page, live_server.url
    page.goto(f"{url}/login")
    page.click("text=Forgot your password?")
    page.wait_for_url(f"{url}/forgot-password")
    page.fill("input[name=email]", "carla@globex.example")
    page.click("[data-testid=send-reset]")
    assert "carla@globex.example" in page.locator("[data-testid=reset-sent]").inner_text()

    link = _reset_link(Path(live_server.app.instance_path) / "mail", "carla@globex.example")
    assert link.startswith(url)
    page.goto(link)
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.click("[data-testid=save-password]")
    page.wait_for_url(f"{url}/")

    page.click("[data-testid=user-menu]")
    page.click("[data-testid=logout]")
    page.wait_for_url(f"{url}/login")
    page.fill("input[name=email]", "carla@globex.example")
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]:has-text('Log in')")
    assert "Wrong email or password." in page.content()
    page.fill("input[name=email]", "carla@globex.example")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.click("button[type=submit]:has-text('Log in')")
    page.wait_for_url(f"{url}/")

    # the link worked once
    page.goto(link)
    assert page.locator("[data-testid=token-error]").get_attribute("data-reason") == "used"
