"""The profile editor in a real browser under the admin's Content-Security-Policy: staff switch
modules on and off, set scope and actions, pick dashboard buttons and order them with the keyboard
(up/down buttons) and by drag-and-drop, save; a contact with that profile then sees exactly that
menu, those buttons in that order, and records in that scope. The page also fits a phone."""
from __future__ import annotations

import pytest
from live_server import CHROMIUM_SKIP, browser_page, live_server  # noqa: F401  (fixtures)
from test_browser_admin import admin_page  # noqa: F401  (fixture)

from crm_portal.db import db
from crm_portal.models import Button, Contact, Profile, ProfileButton, ProfileModule

pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]

#: What the test makes of the "user" profile (Bruno's).
ENABLED = {"tickets": ("company", {"view", "create"}), "quotes": ("own", {"view"}), "faq": ("own", {"view"})}
ORDER = ["quotes.list", "portal.me", "tickets.new", "faq.list"]


def set_checked(page, element_id: str, value: bool) -> None:
    """Tick or untick a Bootstrap custom control the way a person does: on its label."""
    if page.locator(f"#{element_id}").is_checked() != value:
        page.click(f"label[for='{element_id}']")
    assert page.locator(f"#{element_id}").is_checked() == value


def picked_order(page) -> list[str]:
    return page.eval_on_selector_all("[data-button-list] [data-button]",
                                     "items => items.filter(i => i.querySelector('input').checked"
                                     " && !i.querySelector('input').disabled).map(i => i.dataset.button)")


def test_round_trip_from_the_editor_to_the_contact_s_portal(app, live_server, admin_page):  # noqa: F811
    page = admin_page
    base = live_server.url
    registry = app.extensions["crm_portal"]
    with app.app_context(), db.connection_context():
        profile = Profile.get(Profile.name == "user")
        anna = Contact.get(Contact.email == "anna@acme.example")
        from modules.quotes.models import Quote
        from modules.tickets.models import Ticket

        anna_ticket = Ticket.select().where(Ticket.contact == anna.id).first()
        anna_quote = Quote.select().where((Quote.contact == anna.id) & (Quote.status != "draft")).first()
    assert anna_ticket is not None and anna_quote is not None  # the demo data the scope check relies on
    page.goto(f"{base}/admin/core_profile/edit/?id={profile.id}")

    # Modules: exactly ENABLED on, with their scope and actions.
    for name, module in registry.modules.items():
        set_checked(page, f"module-{name}", name in ENABLED)
        details = page.locator(f"#module-{name}-details")
        assert details.evaluate("fieldset => fieldset.disabled") == (name not in ENABLED)
        if name not in ENABLED:
            continue
        scope, actions = ENABLED[name]
        page.click(f"label[for='scope-{name}-{scope}']")
        for action in module.actions:
            set_checked(page, f"action-{name}-{action}", action in actions)
    # Buttons of modules switched off can no longer be picked.
    assert page.locator("[data-button='documents.list'] input").is_disabled()
    assert page.locator("[data-button='documents.list']").get_attribute("class").count("is-unavailable") == 1
    tickets_list = page.locator("[data-button='tickets.list'] input").get_attribute("id")
    set_checked(page, tickets_list, False)
    assert picked_order(page) == ["tickets.new", "quotes.list", "faq.list", "portal.me"]

    # Keyboard: focus "up" on Quotes and press Enter; the focus stays there and the move is announced.
    up = page.locator("[data-button='quotes.list'] [data-move='up']")
    up.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.closest('[data-button]').dataset.button") == "quotes.list"
    assert "position 1 of" in page.locator("[data-move-status]").inner_text()
    assert picked_order(page) == ["quotes.list", "tickets.new", "faq.list", "portal.me"]
    # Tab reaches "down" of the same row; Space moves it back down one and up again.
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    assert picked_order(page)[:2] == ["tickets.new", "quotes.list"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")
    assert picked_order(page) == ["quotes.list", "tickets.new", "faq.list", "portal.me"]

    # Drag-and-drop: "My data" dropped on the upper half of "New request" goes before it.
    page.set_viewport_size({"width": 1280, "height": 1400})  # both rows on screen at once
    page.locator("[data-button-list]").scroll_into_view_if_needed()
    page.locator("[data-button='portal.me'] .profile-button-handle").drag_to(
        page.locator("[data-button='tickets.new']"), target_position={"x": 40, "y": 4})
    assert picked_order(page) == ORDER

    with page.expect_navigation():
        page.click("[data-testid=save]")
    assert "saved" in page.locator(".alert-success").inner_text()
    assert picked_order(page) == ORDER  # the page shows what was stored
    assert page.problems == []

    with app.app_context(), db.connection_context():
        grants = {g.module: (g.scope, g.action_set) for g in ProfileModule.select().where(
            ProfileModule.profile == profile.id)}
        stored = [b.key for b in Button.select().join(ProfileButton).where(ProfileButton.profile == profile.id)
                  .order_by(ProfileButton.position)]
    assert grants == ENABLED
    assert stored == ORDER

    # Bruno, who has the profile, sees exactly that.
    context = page.context.browser.new_context(locale="en-GB")
    contact = context.new_page()
    contact.goto(f"{base}/login")
    contact.fill("input[name=email]", "bruno@acme.example")
    contact.fill("input[name=password]", "demo")
    with contact.expect_navigation():
        contact.click("[data-testid=login-submit]")
    menu = contact.eval_on_selector_all("#sidebar a[data-module]", "links => links.map(a => a.dataset.module)")
    assert menu == [name for name in registry.modules if name in ENABLED]
    buttons = contact.eval_on_selector_all("[data-testid=dashboard-buttons] [data-button]",
                                           "cards => cards.map(c => c.dataset.button)")
    assert buttons == ORDER
    # Tickets in the company scope: a colleague's request opens; quotes in the own scope: hers do not.
    assert contact.goto(f"{base}/tickets/{anna_ticket.id}").status == 200
    assert contact.goto(f"{base}/quotes/{anna_quote.id}").status == 404
    assert contact.goto(f"{base}/documents/").status == 404
    context.close()


def test_the_editor_fits_a_phone(app, live_server, admin_page):  # noqa: F811
    page = admin_page
    with app.app_context(), db.connection_context():
        profile = Profile.get(Profile.name == "company")
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(f"{live_server.url}/admin/core_profile/edit/?id={profile.id}")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for selector in ("label[for='module-tickets']", "[data-button='tickets.new'] [data-move='down']",
                     "[data-testid=save]", "[data-testid=profile-contacts] a"):
        box = page.locator(selector).first.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, selector
    # Switching a module off greys it out and makes its buttons unavailable, without a reload.
    set_checked(page, "module-tickets", False)
    assert page.locator("#module-tickets-details").evaluate("fieldset => fieldset.disabled")
    assert page.locator("[data-button='tickets.new'] input").is_disabled()
    set_checked(page, "module-tickets", True)
    assert not page.locator("[data-button='tickets.new'] input").is_disabled()
    assert page.problems == []
