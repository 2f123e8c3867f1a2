"""Idempotency-Key on the API's POSTs: a retry answers the first result without writing again, the
same key with another request is refused, a duplicate arriving while the first still runs is
refused (409, in-process and against a real server with threads), keys expire after 24 hours."""
from __future__ import annotations

import datetime as dt
import http.client
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_helpers import bearer, make_key, openapi
from live_server import serve, serve_in_thread

from crm_portal.db import db, utcnow
from crm_portal.models import IdempotencyRecord
from crm_portal.modules.tickets.models import Ticket, TicketAttachment
from crm_portal.rest import idempotency

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _count(app, model=Ticket) -> int:
    with app.app_context(), db.connection_context():
        return model.select().count()


def _body(app, demo) -> dict:
    from test_api_tickets_write import _body as ticket_body

    anna = demo["contacts"]["anna"]
    return ticket_body(app, anna.email, contact_id=anna.id)


@pytest.fixture
def headers(app):
    return bearer(make_key(app, ["tickets:read", "tickets:write"]).token)


def test_a_retry_answers_the_first_result_without_writing(app, demo, client, headers):
    body = _body(app, demo)
    before = _count(app)
    first = client.post("/api/v1/tickets", json=body, headers={**headers, "Idempotency-Key": "order-1"})
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    # The same request again, its JSON keys in another order: the same request.
    reordered = dict(reversed(list(body.items())))
    again = client.post("/api/v1/tickets", json=reordered, headers={**headers, "Idempotency-Key": "order-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"] and again.headers["ETag"] == first.headers["ETag"]
    assert _count(app) == before + 1
    # Without a key, or with another one, a POST is a new request.
    other_key = {**headers, "Idempotency-Key": "order-2"}
    assert client.post("/api/v1/tickets", json=body, headers=other_key).status_code == 201
    assert client.post("/api/v1/tickets", json=body, headers=headers).status_code == 201
    assert _count(app) == before + 3


def test_the_same_key_with_another_request_is_refused(app, demo, client, headers):
    body = _body(app, demo)
    key = {**headers, "Idempotency-Key": "k-1"}
    first = client.post("/api/v1/tickets", json=body, headers=key)
    ticket_id = first.get_json()["id"]
    before = _count(app)
    other = client.post("/api/v1/tickets", json={**body, "title": "Another"}, headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["message"]
    elsewhere = client.post(f"/api/v1/tickets/{ticket_id}/comments", json={"body": "x"}, headers=key)
    assert elsewhere.status_code == 422
    assert _count(app) == before


def test_errors_are_replayed_but_refusals_of_the_key_are_not(app, demo, client, headers):
    body = _body(app, demo)
    invalid = client.post("/api/v1/tickets", json={**body, "title": ""}, headers={**headers, "Idempotency-Key": "bad"})
    assert invalid.status_code == 422
    replay = client.post("/api/v1/tickets", json={**body, "title": ""}, headers={**headers, "Idempotency-Key": "bad"})
    assert replay.status_code == 422 and replay.headers["Idempotent-Replayed"] == "true"
    read_only = bearer(make_key(app, ["tickets:read"]).token)  # same integration "crm"
    refused = client.post("/api/v1/tickets", json=body, headers={**read_only, "Idempotency-Key": "scope"})
    assert refused.status_code == 403
    done = client.post("/api/v1/tickets", json=body, headers={**headers, "Idempotency-Key": "scope"})
    assert done.status_code == 201 and "Idempotent-Replayed" not in done.headers


def test_keys_belong_to_their_integration(app, demo, client, headers):
    body = _body(app, demo)
    other = bearer(make_key(app, ["tickets:write"], name="helpdesk").token)
    a = client.post("/api/v1/tickets", json=body, headers={**headers, "Idempotency-Key": "shared"})
    b = client.post("/api/v1/tickets", json=body, headers={**other, "Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 201 and a.get_json()["id"] != b.get_json()["id"]


def test_invalid_keys_are_refused(app, demo, client, headers):
    body = _body(app, demo)
    before = _count(app)
    for key in ("x" * 256, "   ", "caffè"):
        response = client.post("/api/v1/tickets", json=body, headers={**headers, "Idempotency-Key": key})
        assert response.status_code == 422, key
    assert _count(app) == before


def test_a_multipart_retry_with_another_boundary_is_the_same_request(app, demo, client, headers):
    from test_api_tickets_write import _ticket_of

    ticket = _ticket_of(app, demo["contacts"]["anna"])
    before = _count(app, TicketAttachment)
    url = f"/api/v1/tickets/{ticket.id}/attachments"
    key = {**headers, "Idempotency-Key": "upload-1"}
    answers = [client.post(url, data={"file": (io.BytesIO(PNG), "a.png")}, content_type="multipart/form-data",
                           headers=key) for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201] and answers[0].get_json() == answers[1].get_json()
    other = client.post(url, data={"file": (io.BytesIO(PNG + b"!"), "a.png")}, content_type="multipart/form-data",
                        headers=key)
    assert other.status_code == 422
    assert _count(app, TicketAttachment) == before + 1


def test_a_duplicate_while_the_first_runs_is_409(app, demo, headers, monkeypatch):
    """The first request is held inside the view (after its key was recorded); the duplicate sent
    meanwhile is refused with 409 and writes nothing; once the first answered, a retry replays it."""
    from crm_portal.modules.tickets import opening

    body = json.dumps(_body(app, demo))
    entered, release = threading.Event(), threading.Event()
    store = opening.store_files

    def slow_store(files):
        entered.set()
        assert release.wait(30)
        return store(files)

    monkeypatch.setattr(opening, "store_files", slow_store)
    before = _count(app)
    with serve_in_thread(app) as server:
        def post() -> tuple[int, dict, dict]:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            conn.request("POST", "/api/v1/tickets", body=body,
                         headers={**headers, "Idempotency-Key": "slow", "Content-Type": "application/json"})
            try:
                answer = conn.getresponse()
                return answer.status, json.loads(answer.read()), dict(answer.getheaders())
            finally:
                conn.close()

        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(post)
            assert entered.wait(30)
            status, duplicate, _headers = post()
            assert status == 409 and duplicate["code"] == "conflict", duplicate
            release.set()
            first_status, first_body, _ = first.result(60)
        assert first_status == 201
        status, replay, replay_headers = post()
        assert (status, replay) == (201, first_body) and replay_headers["Idempotent-Replayed"] == "true"
    assert _count(app) == before + 1


def test_concurrent_retries_against_a_real_server_write_once(app, demo, headers, tmp_path):
    """Many clients send the same request with the same key at the same moment to gunicorn (two
    processes with threads): one ticket; each answer is that ticket (201) or 409 (still running)."""
    body = json.dumps(_body(app, demo))
    before = _count(app)
    clients = 16
    start = threading.Barrier(clients)
    with serve(app, workers=2, threads=8, tmp_path=tmp_path) as server:
        def post(_index: int) -> tuple[int, dict]:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            start.wait(30)
            conn.request("POST", "/api/v1/tickets", body=body,
                         headers={**headers, "Idempotency-Key": "burst", "Content-Type": "application/json"})
            try:
                answer = conn.getresponse()
                return answer.status, json.loads(answer.read())
            finally:
                conn.close()

        with ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(post, range(clients)))
    assert {status for status, _ in answers} <= {201, 409}, answers
    created = {a["id"] for status, a in answers if status == 201}
    assert len(created) == 1
    assert _count(app) == before + 1


def test_keys_expire_after_a_day(app, demo, client, headers):
    body = _body(app, demo)
    key = {**headers, "Idempotency-Key": "daily"}
    assert client.post("/api/v1/tickets", json=body, headers=key).status_code == 201
    with app.app_context(), db.connection_context():
        IdempotencyRecord.update(created_at=utcnow() - dt.timedelta(hours=25)).execute()
    # Expired but not pruned yet: the key is free again.
    again = client.post("/api/v1/tickets", json={**body, "title": "Next day"}, headers=key)
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    with app.app_context(), db.connection_context():
        assert idempotency.prune() == 0  # the fresh one stays
        assert idempotency.prune(utcnow() + dt.timedelta(hours=25)) == 1
        assert IdempotencyRecord.select().count() == 0
    assert "core.prune_idempotency" in app.extensions["crm_portal_jobs"]["periodic"]


def test_a_request_that_died_frees_its_key_after_a_while(app, demo, client, headers):
    body = _body(app, demo)
    key = {**headers, "Idempotency-Key": "crashed"}
    assert client.post("/api/v1/tickets", json=body, headers=key).status_code == 201
    with app.app_context(), db.connection_context():
        IdempotencyRecord.update(status=None, response_body=None).execute()  # as if it never answered
    assert client.post("/api/v1/tickets", json=body, headers=key).status_code == 409
    with app.app_context(), db.connection_context():
        IdempotencyRecord.update(created_at=utcnow() - idempotency.STALE - dt.timedelta(minutes=1)).execute()
    assert client.post("/api/v1/tickets", json=body, headers=key).status_code == 201


def test_every_post_documents_the_header(app, client):
    spec = openapi(app, client)
    posts = [(path, ops["post"]) for path, ops in spec["paths"].items() if "post" in ops]
    assert len(posts) >= 5  # tickets' and webhooks' POSTs
    for path, op in posts:
        names = [p.get("name") for p in op.get("parameters", [])]
        assert names.count("Idempotency-Key") == 1, path
    assert all("Idempotency-Key" not in [p.get("name") for p in ops["get"].get("parameters", [])]
               for ops in spec["paths"].values() if "get" in ops)


def test_the_same_key_acting_as_another_contact_is_another_request(app, demo, client, headers):
    """Contact A's answer is never replayed to a request acting as contact B: the acting contact is
    part of what the key stands for."""
    from crm_portal.models import Contact

    with app.app_context(), db.connection_context():
        anna = Contact.get(Contact.email == "anna@acme.example")
        ticket = Ticket.select().where(Ticket.contact == anna).first()
        comments = ticket.comments.count()
    url = f"/api/v1/tickets/{ticket.id}/comments"
    key = {**headers, "Idempotency-Key": "comment-1"}
    first = client.post(url, json={"body": "Grazie"}, headers={**key, "X-Act-As-Contact": "anna@acme.example"})
    assert first.status_code == 201
    same = client.post(url, json={"body": "Grazie"}, headers={**key, "X-Act-As-Contact": " Anna@Acme.example"})
    assert same.status_code == 201 and same.headers["Idempotent-Replayed"] == "true"
    other = client.post(url, json={"body": "Grazie"}, headers={**key, "X-Act-As-Contact": "carla@globex.example"})
    assert other.status_code == 422 and "Idempotent-Replayed" not in other.headers
    assert "Idempotency-Key" in other.get_json()["message"]
    with app.app_context(), db.connection_context():
        assert ticket.comments.count() == comments + 1


def test_a_server_error_is_never_kept_or_replayed(app, demo, client, headers, monkeypatch):
    """A 5xx may be retried with the same key: the retry runs the request again."""
    from crm_portal.rest import tickets as rest_tickets

    app.config["PROPAGATE_EXCEPTIONS"] = False
    body = _body(app, demo)
    real, calls = rest_tickets._create, []

    def broken_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the disk went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(rest_tickets, "_create", broken_once)
    before = _count(app)
    key = {**headers, "Idempotency-Key": "after-500"}
    assert client.post("/api/v1/tickets", json=body, headers=key).status_code == 500
    retry = client.post("/api/v1/tickets", json=body, headers=key)
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers and len(calls) == 2
    assert _count(app) == before + 1
