"""The admin in a real browser under the portal's Content-Security-Policy (no inline event handlers):
the row delete asks first, "with selected" actions run on the ticked rows after their confirmation,
"select all" and inline "Add" work, and no page logs an error or a CSP violation."""
from __future__ import annotations

import pytest
from live_server import CHROMIUM_SKIP, browser_page, live_server  # noqa: F401  (fixtures)
from peewee import fn

from crm_portal.db import db
from crm_portal.models import Company, Contact, OutboxMessage

pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]


@pytest.fixture
def admin_page(live_server, browser_page):  # noqa: F811
    """``browser_page`` logged in as the staff admin; console errors (CSP violations among them) and
    uncaught exceptions are collected in ``page.problems``."""
    page = browser_page
    page.problems = []

    def on_console(msg) -> None:
        # The portal has no favicon; Chromium asks for /favicon.ico all the same.
        if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico"):
            page.problems.append(f"console: {msg.text} ({msg.location.get('url')})")

    page.on("console", on_console)
    page.on("response", lambda r: page.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda exc: page.problems.append(f"exception: {exc}"))
    page.goto(f"{live_server.url}/admin/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", "demo")
    with page.expect_navigation():
        page.click("[data-testid=login-submit]")
    assert "/admin/login" not in page.url
    return page


def answer_next_dialog(page, accept: bool) -> list[str]:
    """Accept or dismiss the next dialog; the returned list receives its message."""
    seen: list[str] = []

    def handle(dialog) -> None:
        seen.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", handle)
    return seen


def test_row_delete_asks_first(app, live_server, admin_page):  # noqa: F811
    page = admin_page
    with app.app_context(), db.connection_context():
        company = Company.create(name="Cancellanda Browser S.r.l.")
    page.goto(f"{live_server.url}/admin/core_company/?search=Cancellanda")
    delete = page.locator("tr", has_text="Cancellanda Browser").locator("button[title='Delete Record']")

    seen = answer_next_dialog(page, accept=False)
    delete.click()
    assert seen == ["Are you sure you want to delete this record?"]
    page.reload()
    assert page.locator("tr", has_text="Cancellanda Browser").count() == 1
    with app.app_context(), db.connection_context():
        assert Company.get_or_none(Company.id == company.id) is not None

    seen = answer_next_dialog(page, accept=True)
    with page.expect_navigation():
        delete.click()
    assert seen == ["Are you sure you want to delete this record?"]
    assert "successfully deleted" in page.locator(".alert").inner_text()
    assert page.locator("tr", has_text="Cancellanda Browser").count() == 0
    with app.app_context(), db.connection_context():
        assert Company.get_or_none(Company.id == company.id) is None
    assert page.problems == []


def test_send_invitation_to_the_selected_contacts(app, live_server, admin_page):  # noqa: F811
    page = admin_page
    with app.app_context(), db.connection_context():
        people = [Contact.create(first_name=first, last_name="Invitabile", email=f"{first.lower()}@invito.example",
                                 portal_access=True, language="en") for first in ("Uno", "Due", "Tre")]
        last_id = OutboxMessage.select(fn.MAX(OutboxMessage.id)).scalar() or 0
    chosen = people[:2]
    page.goto(f"{live_server.url}/admin/core_contact/?search=Invitabile")
    boxes = page.locator("input.action-checkbox")
    toggle = page.locator("input.action-rowtoggle")
    assert boxes.count() == 3

    def run_action() -> None:
        page.click("a.dropdown-toggle:text-is('With selected')")
        page.click(".dropdown-menu a:text-is('Send invitation')")

    # Nothing ticked: a message, no request.
    seen = answer_next_dialog(page, accept=True)
    run_action()
    assert seen == ["Please select at least one record."]

    # "Select all" ticks every row; unticking one unticks it.
    toggle.check()
    assert [boxes.nth(i).is_checked() for i in range(3)] == [True, True, True]
    page.locator(f"input.action-checkbox[value='{people[2].id}']").uncheck()
    assert not toggle.is_checked()

    # Dismissing the confirmation sends nothing.
    seen = answer_next_dialog(page, accept=False)
    run_action()
    assert seen == ["Send a new link to set a password to the selected contacts?"]
    with app.app_context(), db.connection_context():
        assert not OutboxMessage.select().where(OutboxMessage.id > last_id).exists()

    seen = answer_next_dialog(page, accept=True)
    with page.expect_navigation():
        run_action()
    assert seen == ["Send a new link to set a password to the selected contacts?"]
    assert "Invitations queued: 2." in page.locator(".alert").inner_text()
    with app.app_context(), db.connection_context():
        queued = list(OutboxMessage.select().where(OutboxMessage.id > last_id))
        assert sorted(m.to_address for m in queued) == sorted(c.email for c in chosen)
        assert {m.template for m in queued} == {"invitation"}
    assert page.problems == []


def test_filters_tabs_and_inline_forms_run_without_violations(app, live_server, admin_page):  # noqa: F811
    page = admin_page
    base = live_server.url
    # "Add Filter" and its entries, and the current tab, are javascript: links: never followed.
    page.goto(f"{base}/admin/core_contact/")
    page.click("a.nav-link.dropdown-toggle:text-is('Add Filter')")
    page.locator(".field-filters a.filter").first.click()
    assert page.locator("#filter_form table.filters tr").count() == 1
    page.click("a.nav-link.active")
    # An inline model's "Add" button adds a blank sub-form.
    page.goto(f"{base}/admin/quotes_quote/new/")
    fresh = page.locator(".inline-field.fresh")
    assert fresh.count() == 0
    page.click("a#lines-button")
    assert fresh.count() == 1
    for path in ("/admin/", "/admin/core_company/new/", "/admin/core_outbox/", "/admin/faq_article/new/"):
        assert page.goto(base + path).ok, path
    assert page.problems == []
