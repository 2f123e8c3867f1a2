"""In a real Chromium: a customer opens a quote, accepts it with a comment and downloads its PDF."""
from __future__ import annotations

import pytest
from live_server import CHROMIUM_SKIP, browser_page, live_server  # noqa: F401  (fixtures)

from crm_portal.db import db

pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]


def test_accept_quote_and_download_pdf(live_server, browser_page, tmp_path):  # noqa: F811
    from crm_portal.modules.quotes import Quote

    app = live_server.app
    with app.app_context(), db.connection_context():
        quote = Quote.get(Quote.number == "P-2025-010")  # carla's, English-speaking
    page = browser_page
    page.goto(live_server.url + "/login")
    page.fill("input[name=email]", "carla@globex.example")
    page.fill("input[name=password]", "demo")
    page.click('[data-testid="login-submit"]')
    page.wait_for_url(live_server.url + "/")

    page.goto(live_server.url + "/quotes/")
    page.click(f"text={quote.number}")
    page.wait_for_url(f"{live_server.url}/quotes/{quote.id}")
    assert page.locator('[data-testid="quote-lines"]').is_visible()

    page.fill("#comment", "Approved by finance <ok>")
    page.click('[data-testid="accept"]')
    # A confirmation page first, with the comment to send; its button decides.
    assert "Approved by finance <ok>" in page.inner_text('[data-testid="confirm-comment"]')
    page.click('[data-testid="confirm-decision"]')
    page.wait_for_url(f"{live_server.url}/quotes/{quote.id}")
    assert "Quote accepted" in page.inner_text(".alert-success")
    decision = page.inner_text('[data-testid="decision"]')
    assert "Accepted" in decision and "Carla Neri" in decision
    assert "Approved by finance <ok>" in page.inner_text("#decision")
    assert page.locator('[data-testid="decision-form"]').count() == 0

    with page.expect_download() as info:
        page.click('[data-testid="quote-pdf"]')
    download = info.value
    assert download.suggested_filename == f"quote-{quote.number}.pdf"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    assert target.read_bytes().startswith(b"%PDF-")

    with app.app_context(), db.connection_context():
        saved = Quote.get_by_id(quote.id)
        assert saved.status == "accepted" and saved.decision_comment == "Approved by finance <ok>"
