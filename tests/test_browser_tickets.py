"""A real browser through the whole customer journey: open a request with the wizard and an
attachment, find it in the list, comment, let an operator resolve it in the admin, close it with a
rating. Emails for each step end up in the outbox."""
from __future__ import annotations

import re

import pytest
from live_server import CHROMIUM_SKIP, browser_page, live_server  # noqa: F401  (fixtures)

from crm_portal.db import db
from crm_portal.models import OutboxMessage

pytestmark = [pytest.mark.browser, CHROMIUM_SKIP]


def test_customer_journey(live_server, browser_page, tmp_path):  # noqa: F811
    base = live_server.url
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    screenshot = tmp_path / "shot.png"
    screenshot.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
                           b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
                           b"\x00\x00\x00\x00IEND\xaeB`\x82")

    page.goto(f"{base}/login")
    page.fill("input[name=email]", "bruno@acme.example")
    page.fill("input[name=password]", "demo")
    page.click("[data-testid=login-submit]")
    page.wait_for_url(f"{base}/")
    assert page.locator("[data-testid=tickets-dashboard] svg").count() >= 1  # server-rendered chart

    # The wizard: the service steps when the services module offers them, then the form.
    page.click("[data-button='tickets.new']")
    for testid in ("services", "subcategories"):
        if page.locator(f"[data-testid={testid}] a").count():
            page.locator(f"[data-testid={testid}] a").first.click()
    page.fill("#title", "Stampa <b>cedolini</b> bloccata")
    page.fill("#description", "Si blocca al 40% con 'modello non trovato'.")
    page.select_option("#type", "question")
    if page.locator("select#category").count():  # no service mapping: the customer picks one
        page.select_option("#category", index=1)
    page.select_option("#priority", "urgent")
    page.set_input_files("#attachments", str(screenshot))
    page.click("[data-testid=submit-ticket]")
    page.wait_for_url(re.compile(r"/tickets/\d+$"))
    ticket_url = page.url
    title = page.locator("h1").inner_text()
    assert "Stampa <b>cedolini</b> bloccata" in title  # shown as text, not markup
    number = re.search(r"TT\d+", title).group(0)
    assert page.locator("[data-testid=attachments] a", has_text="shot.png").count() == 1

    # The list shows it.
    page.goto(f"{base}/tickets/?state=open")
    row = page.locator(f"tr[data-ticket='{number}']")
    assert row.count() == 1 and "Aperto" in row.inner_text()

    # A comment from the ticket page (the conversation is at the top).
    page.goto(ticket_url)
    page.fill("#comment-body", "Succede anche con il PDF.")
    page.click("[data-testid=send-comment]")
    page.wait_for_url(re.compile(r"/tickets/\d+"))
    assert page.locator("[data-testid=comment-count]").inner_text() == "1"

    # The operator answers and resolves it from the admin.
    operator = page.context.browser.new_context(locale="en-GB").new_page()
    operator.goto(f"{base}/admin/login")
    operator.fill("input[name=email]", "operatore@example.com")
    operator.fill("input[name=password]", "demo")
    operator.click("[data-testid=login-submit]")
    operator.goto(f"{base}/admin/tickets_queue/")
    operator.click(f"a:text-is('{number}')")
    operator.click("[data-testid=take]")
    operator.fill("#body", "Abbiamo corretto il modello di stampa.")
    operator.select_option("#status", "resolved")
    operator.click("[data-testid=save]")
    assert "Resolved" in operator.locator("[data-testid=status]").inner_text()
    operator.context.close()

    # The customer closes it with a rating.
    page.goto(ticket_url)
    assert "Abbiamo corretto il modello di stampa." in page.locator("#conversation").inner_text()
    page.check("input[name=rating][value='5']")
    page.fill("#comment", "Perfetto")
    page.click("[data-testid=close-ticket]")
    page.wait_for_url(re.compile(r"/tickets/\d+"))
    assert "Chiuso" in page.locator("[data-testid=ticket-status]").inner_text()
    assert page.locator("[data-testid=comment-form]").count() == 0
    # No script blocked by the Content Security Policy (the portal allows no inline script).
    assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors

    with live_server.app.app_context(), db.connection_context():
        sent = [m.template for m in OutboxMessage.select().where(OutboxMessage.subject.contains(f"[{number}]"))
                .order_by(OutboxMessage.id)]
    # Support hears of the comment; the customer of the taking in charge and of the reply with
    # its move to Resolved (one email), not of her own new ticket, comment or close.
    assert sent == ["tickets_customer_comment", "tickets_update", "tickets_update"]


def test_older_comments_load_in_place(live_server, browser_page):  # noqa: F811
    """The "older comments" link appends the older page under the comments shown (tickets.js,
    allowed by the Content Security Policy) instead of leaving the page."""
    from crm_portal.models import Contact
    from crm_portal.modules.tickets import workflow

    with live_server.app.app_context(), db.connection_context():
        workflow.install_defaults()
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        actor = workflow.Actor.customer(bruno)
        with workflow.quiet(), db.atomic():
            ticket = workflow.create_ticket(actor, bruno, title="Long thread", description="d")
            for i in range(1, 46):
                workflow.add_comment(ticket, actor, f"Message {i}.", "public")
    base = live_server.url
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{base}/login")
    page.fill("input[name=email]", "bruno@acme.example")
    page.fill("input[name=password]", "demo")
    page.click("[data-testid=login-submit]")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/tickets/{ticket.id}")
    comments = page.locator("#conversation article[data-comment]")
    assert comments.count() == 20
    page.click("[data-testid=older-comments]")
    page.locator("#conversation article[data-comment='25']").wait_for()  # (no wait_for_function: the CSP)
    assert comments.count() == 40
    assert page.url == f"{base}/tickets/{ticket.id}"  # appended in place, no navigation
    page.click("[data-testid=older-comments]")
    page.locator("#conversation article[data-comment='1']").wait_for()
    assert comments.count() == 45
    assert comments.last.get_attribute("data-comment") == "1"
    assert page.locator("[data-testid=older-comments]").count() == 0
    assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors
