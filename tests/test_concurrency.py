"""Many people writing at once, against a real server (gunicorn with threads, as in production).

On SQLite every write transaction starts ``BEGIN IMMEDIATE`` and waits for the lock instead of failing;
on PostgreSQL (``CRM_PORTAL_TEST_DATABASE_URL``) the same tests run against the server. Nothing may be
lost and no request may fail: every post is stored, every ticket number is taken exactly once.
"""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from live_server import Browser, serve

from crm_portal.db import db
from crm_portal.modules.tickets.models import Ticket, TicketComment

CLIENTS = 50
COMMENTS_EACH = 20
NEW_TICKETS = 200


def _run(jobs, workers: int) -> list:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: job(), jobs))


def _ticket_for(app, email: str) -> Ticket:
    from crm_portal.models import Contact

    with app.app_context(), db.connection_context():
        contact = Contact.get(Contact.email == email)
        return Ticket.select().where(Ticket.contact == contact.id).order_by(Ticket.id).first()


@pytest.fixture
def server(app, demo, tmp_path):
    # Two processes with threads: writers meet both inside one process and across processes.
    with serve(app, workers=2, threads=16, tmp_path=tmp_path) as live:
        yield live


def test_concurrent_comments_are_all_stored(app, server):
    ticket = _ticket_for(app, "bruno@acme.example")
    path = f"/tickets/{ticket.id}"
    start = threading.Barrier(CLIENTS)

    def person(index: int):
        def job() -> list[int]:
            browser = Browser(server.port)
            browser.login("bruno@acme.example" if index % 2 else "anna@acme.example")
            token, _ = browser.token(path)
            start.wait(60)  # everyone posts at the same moment
            return [browser.request("POST", f"{path}/comment",
                                    {"csrf_token": token, "body": f"client {index} comment {n}", "kind": "public"})[0]
                    for n in range(COMMENTS_EACH)]
        return job

    statuses = [s for result in _run([person(i) for i in range(CLIENTS)], CLIENTS) for s in result]
    assert len(statuses) == CLIENTS * COMMENTS_EACH
    assert {s: statuses.count(s) for s in set(statuses)} == {302: CLIENTS * COMMENTS_EACH}
    with app.app_context(), db.connection_context():
        stored = TicketComment.select().where(TicketComment.ticket == ticket.id,
                                              TicketComment.body.startswith("client ")).count()
        counted = Ticket.get_by_id(ticket.id).public_comments
        public_before = ticket.public_comments
    assert stored == CLIENTS * COMMENTS_EACH
    assert counted == public_before + CLIENTS * COMMENTS_EACH  # the counter lost no increment either


def _wizard_form(browser: Browser) -> tuple[str, dict[str, str]]:
    """Follow the wizard's service and sub-category links to the request form; its path and fields."""
    path = "/tickets/new"
    for _ in range(3):
        token, html = browser.token(path)
        if 'name="title"' in html:
            category = re.search(r'<select[^>]*name="category"[^>]*>.*?<option[^>]*value="(\d+)"', html, re.S)
            return path, {"csrf_token": token, "category": category.group(1)}
        link = re.search(r'href="(/tickets/new\?[^"]+)"', html)
        assert link, "the wizard offers no next step"
        path = link.group(1).replace("&amp;", "&")
    raise AssertionError("the wizard never reached the form")


def test_concurrent_ticket_creation_numbers_are_consecutive(app, server):
    with app.app_context(), db.connection_context():
        before = {seq for (seq,) in Ticket.select(Ticket.seq).tuples()}
    per_client = NEW_TICKETS // CLIENTS
    start = threading.Barrier(CLIENTS)

    def person(index: int):
        def job() -> list[tuple[int, str]]:
            browser = Browser(server.port)
            browser.login("bruno@acme.example")
            path, fields = _wizard_form(browser)
            start.wait(60)
            results = []
            for n in range(per_client):
                form = dict(fields, title=f"Parallel request {index}-{n}", description="Created at the same time",
                            type="question", priority="medium", severity="non_blocking")
                status, location, _ = browser.request("POST", path, form)
                results.append((status, location))
            return results
        return job

    results = [r for result in _run([person(i) for i in range(CLIENTS)], CLIENTS) for r in result]
    assert all(status == 302 and re.search(r"/tickets/\d+$", location) for status, location in results), \
        {status for status, _ in results}
    with app.app_context(), db.connection_context():
        created = [(seq, number) for seq, number in Ticket.select(Ticket.seq, Ticket.number)
                   .where(Ticket.title.startswith("Parallel request ")).tuples()]
    assert len(created) == NEW_TICKETS
    seqs = sorted(seq for seq, _ in created)
    first = max(before, default=0) + 1
    assert seqs == list(range(first, first + NEW_TICKETS))  # consecutive: no gap, no duplicate
    assert sorted(number for _, number in created) == sorted(f"TT{s}" for s in seqs)
