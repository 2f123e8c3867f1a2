"""``GET /api/v1/changes``: the change log written in each change's transaction, walked with
cursors while changes go on (nothing repeated, nothing lost), filtered by the key's read scopes,
with a 410 for a cursor older than what is kept, and a constant number of queries per page."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from api_helpers import bearer, make_key
from peewee import fn

from crm_portal import changes, signals
from crm_portal.db import db, is_postgres
from crm_portal.models import ChangeEntry, Contact
from crm_portal.testing import staff_login


def _touch(app, email: str = "bruno@acme.example", action: str = "updated") -> int:
    """Staff changed (or deleted) a contact: the admin's signal, in its own transaction."""
    with app.test_request_context(), db.connection_context(), db.atomic():
        contact = Contact.get(Contact.email == email)
        signals.admin_record_changed.send(Contact, record=contact, action=action, staff=None)
        return contact.id


def _new_ticket(app, title: str = "Printer broken") -> int:
    from test_tickets import new_ticket

    with app.test_request_context(), db.connection_context():
        return new_ticket(title=title).id


def _log(app) -> list[tuple[str, int, str]]:
    """Every row of the log, in the feed's order."""
    with app.app_context(), db.connection_context():
        return [(r.type, r.record_id, r.change) for r in
                ChangeEntry.select().order_by(ChangeEntry.txid, ChangeEntry.id)]


def _settle(app, timeout: float = 30.0) -> None:
    """On PostgreSQL the feed holds back what a transaction older than its newest entry may still
    add, anywhere in the cluster: with the suite in parallel processes, another process's test.
    Wait (a while at most) until no such transaction runs, so a walk sees what this test wrote."""
    with app.app_context(), db.connection_context():
        if not is_postgres():
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            newest = ChangeEntry.select(fn.MAX(ChangeEntry.txid)).scalar() or 0
            xmin = db.execute_sql("SELECT txid_snapshot_xmin(txid_current_snapshot())").fetchone()[0]
            if newest < xmin:
                return
            time.sleep(0.05)


def _walk(client, headers, since: str | None = None, limit: int = 3, between=None, settle: bool = True):
    seen, cursor, pages = [], since, 0
    while True:
        if settle:
            _settle(client.application)
        url = f"/api/v1/changes?limit={limit}" + (f"&since={cursor}" if cursor else "")
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.get_json()
        seen += [(i["type"], i["id"], i["change"]) for i in body["items"]]
        cursor = body["next_cursor"] or cursor
        pages += 1
        if between is not None:
            between(pages)
        if not body["has_more"]:
            return seen, cursor
        assert pages < 500


@pytest.fixture
def key(app, demo):
    return bearer(make_key(app).token)


def test_changes_are_logged_in_the_transaction_and_listed(app, key, client):
    start = _log(app)  # the demo data's own changes (tickets opened, moved …)
    bruno = _touch(app)
    ticket = _new_ticket(app)
    seen, cursor = _walk(client, key, limit=100)
    assert seen == start + [("contacts", bruno, "upsert"), ("tickets", ticket, "upsert")]
    body = client.get(f"/api/v1/changes?since={cursor}", headers=key).get_json()
    assert body == {"items": [], "next_cursor": body["next_cursor"], "has_more": False}
    assert body["next_cursor"]  # polling goes on from there
    item = client.get("/api/v1/changes?limit=100", headers=key).get_json()["items"][-1]
    assert item["type"] == "tickets" and item["at"].endswith("Z")


def test_admin_deletions_are_logged(app, key, client):
    staff_login(client)
    with app.app_context(), db.connection_context():
        fresh = Contact.create(first_name="Da", last_name="Cancellare", email="del@acme.example")
    _, cursor = _walk(client, key, limit=100)
    response = client.post("/admin/core_contact/delete/", data={"id": str(fresh.id), "url": "/admin/core_contact/"})
    assert response.status_code == 302
    seen, _ = _walk(client, key, since=cursor)
    assert seen == [("contacts", fresh.id, "delete")]


def test_a_walk_during_changes_repeats_and_loses_nothing(app, key, client):
    """Pages of 3 while other requests keep changing records between the pages: the walk returns
    the log exactly, each row once, in order, the latest changes included."""
    made = []

    def change_something(page: int) -> None:
        if page <= 6:
            made.append(("contacts", _touch(app), "upsert"))
            made.append(("tickets", _new_ticket(app, f"During page {page}"), "upsert"))

    seen, cursor = _walk(client, key, limit=3, between=change_something)
    log = _log(app)
    assert seen == log
    assert made and all(entry in seen for entry in made)
    more, _ = _walk(client, key, since=cursor)
    assert more == []


def test_rolled_back_changes_leave_no_row(app, key, client):
    before = _log(app)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), app.test_request_context(), db.connection_context(), db.atomic():
        signals.admin_record_changed.send(Contact, record=Contact.get(), action="updated", staff=None)
        raise Abort
    assert _log(app) == before


def test_the_key_sees_only_modules_it_may_read(app, demo, client):
    _touch(app)
    _new_ticket(app)
    tickets_only = bearer(make_key(app, ["tickets:read"], name="helpdesk").token)
    seen, _ = _walk(client, tickets_only, limit=100)
    assert seen and {kind for kind, _i, _c in seen} == {"tickets"}
    nothing = bearer(make_key(app, ["webhooks:manage"], name="hooks-only").token)
    body = client.get("/api/v1/changes", headers=nothing).get_json()
    assert body == {"items": [], "next_cursor": None, "has_more": False}
    assert client.get("/api/v1/changes").status_code == 401


def test_a_cursor_older_than_kept_is_410_and_old_rows_are_pruned(app, key, client, frozen_clock):
    _touch(app)
    _, cursor = _walk(client, key, limit=100)
    frozen_clock.advance(days=29)
    assert client.get(f"/api/v1/changes?since={cursor}", headers=key).status_code == 200
    frozen_clock.advance(days=2)
    response = client.get(f"/api/v1/changes?since={cursor}", headers=key)
    assert response.status_code == 410
    body = response.get_json()
    assert body["code"] == "gone" and "30 days" in body["message"] and "from the start" in body["message"]
    italian = client.get(f"/api/v1/changes?since={cursor}", headers={**key, "Accept-Language": "it"})
    assert italian.status_code == 410 and "giorni" in italian.get_json()["message"]
    # Reading from the start gives a fresh cursor; the daily job forgets what no cursor can reach.
    _, fresh = _walk(client, key, limit=100)
    with app.app_context(), db.connection_context():
        assert changes.prune(frozen_clock.advance(days=1)) > 0
        assert ChangeEntry.select().count() == 0
    assert client.get(f"/api/v1/changes?since={fresh}", headers=key).status_code == 200


def test_an_idle_reader_keeps_a_fresh_cursor(app, key, client, frozen_clock):
    _touch(app)
    _, cursor = _walk(client, key, limit=100)
    for _ in range(4):  # polls every 20 days with nothing new: never 410
        frozen_clock.advance(days=20)
        response = client.get(f"/api/v1/changes?since={cursor}", headers=key)
        assert response.status_code == 200
        cursor = response.get_json()["next_cursor"]


@pytest.mark.parametrize("since", ["nonsense", "W10", "WyJhIiwxLCJ4Il0", "WzEsMiwiMjAyNi0xMy00NVQwMDowMDowMCJd",
                                   "WzEsLTEsIjIwMjYtMDEtMDFUMDA6MDA6MDAiXQ", "x" * 201])
def test_a_cursor_not_handed_out_is_422(app, key, client, since):
    response = client.get(f"/api/v1/changes?since={since}", headers=key)
    assert response.status_code == 422
    assert response.get_json()["code"] == "invalid"


def test_queries_per_page_are_constant(app, key, client, queries):
    for i in range(12):
        _new_ticket(app, f"Load {i}")
    client.get("/api/v1/changes?limit=1", headers=key)  # the first request's one-off work
    counts = []
    for limit in (2, 50):
        with queries:
            assert client.get(f"/api/v1/changes?limit={limit}", headers=key).status_code == 200
        counts.append(queries.count)
    assert counts[0] == counts[1] and counts[1] <= 4, queries.queries


def test_a_transaction_still_running_holds_later_changes_back(app, key, client):
    """PostgreSQL: a change whose transaction began earlier but commits later must not be skipped
    by a reader who already read past later rows (SQLite commits one writer at a time)."""
    with app.app_context(), db.connection_context():
        if not is_postgres():
            pytest.skip("PostgreSQL only: SQLite writers commit one at a time")
    _, cursor = _walk(client, key, limit=100)
    started, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow_writer() -> None:
        with app.test_request_context(), db.connection_context(), db.atomic():
            changes.record("contacts", 1)  # takes its transaction id first ...
            started.set()
            release.wait(10)
        done.set()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert started.wait(10)
    ticket = _new_ticket(app)  # ... while this one commits first
    seen, cursor_after = _walk(client, key, since=cursor, settle=False)
    assert seen == []  # held back behind the running transaction
    release.set()
    thread.join(10)
    assert done.is_set()
    seen, _ = _walk(client, key, since=cursor_after)
    assert seen == [("contacts", 1, "upsert"), ("tickets", ticket, "upsert")]


def test_feed_time_is_utc(app, key, client, frozen_clock):
    _touch(app)
    item = client.get("/api/v1/changes?limit=100", headers=key).get_json()["items"][-1]
    assert dt.datetime.fromisoformat(item["at"].replace("Z", "+00:00")).tzinfo is not None


def test_ids_are_never_given_again_when_pruning_empties_the_log(app, key, client, frozen_clock):
    """A reader polling every 20 days keeps its cursor while pruning empties the log: the next
    change gets an id above every earlier one, so the cursor still sees it."""
    _touch(app)
    _, cursor = _walk(client, key, limit=100)
    with app.app_context(), db.connection_context():
        earlier = ChangeEntry.select(fn.MAX(ChangeEntry.id)).scalar()
    for _ in range(2):
        frozen_clock.advance(days=20)
        cursor = client.get(f"/api/v1/changes?since={cursor}", headers=key).get_json()["next_cursor"]
    with app.app_context(), db.connection_context():
        assert changes.prune() > 0
        assert ChangeEntry.select().count() == 0
    bruno = _touch(app)
    with app.app_context(), db.connection_context():
        assert ChangeEntry.get().id > earlier
    seen, _ = _walk(client, key, since=cursor)
    assert seen == [("contacts", bruno, "upsert")]


def test_a_cursor_past_the_last_id_ever_given_is_410(app, key, client):
    """A cursor of another database, or of this one before it was restored from an older copy:
    following it would skip the changes written under the ids it claims to have read."""
    _touch(app)
    _, cursor = _walk(client, key, limit=100)
    held = changes.Cursor.decode(cursor)
    assert client.get(f"/api/v1/changes?since={cursor}", headers=key).status_code == 200
    beyond = changes.Cursor(held.txid, held.id + 1, held.at).encode()
    response = client.get(f"/api/v1/changes?since={beyond}", headers=key)
    assert response.status_code == 410 and response.get_json()["code"] == "gone"
    assert "restored or replaced" in response.get_json()["message"]
    if held.txid:  # PostgreSQL: a transaction that has not started yet
        later = changes.Cursor(held.txid + 10**9, held.id, held.at).encode()
        assert client.get(f"/api/v1/changes?since={later}", headers=key).status_code == 410
