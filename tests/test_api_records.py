"""REST API reads: the scope matrix over every module of the registry, the integration's view and
a contact's (X-Act-As-Contact) through the visibility gate, cursor pages, a constant number of
queries, and JSON errors for bad input."""
from __future__ import annotations

import datetime as dt

import pytest
from api_helpers import bearer, make_key, openapi, record_modules

from crm_portal.db import db, utcnow
from crm_portal.models import Company, Contact
from crm_portal.testing import login


def _modules(app) -> list[str]:
    return record_modules(app)


def _all_ids(app, name: str) -> set[int]:
    module = app.extensions["crm_portal"].modules[name]
    with app.app_context(), db.connection_context():
        return {row.get_id() for row in module.record.select(module.record._meta.primary_key)}


def _walk(client, url: str, headers: dict[str, str], limit: int = 100) -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(1000):
        sep = "&" if "?" in url else "?"
        response = client.get(f"{url}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""), headers=headers)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        items += body["items"]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return items
        cursor = body["next_cursor"]
    raise AssertionError("the walk never ended")


def test_scope_matrix_over_every_module(app, demo, client):
    """No scope → 403 on list and detail; the module's read scope → 200; another module's read
    scope does not open it. Generated from the registry: a new module is covered."""
    names = _modules(app)
    assert {"tickets", "companies", "contacts"} <= set(names)
    for name in names:
        ids = sorted(_all_ids(app, name))
        assert ids, f"the demo data has no {name}"
        other = next(n for n in names if n != name)
        for scopes, expected in [(f"{other}:read", 403), (f"{name}:write", 403), (f"{name}:read", 200)]:
            headers = bearer(make_key(app, scopes).token)
            listed = client.get(f"/api/v1/{name}", headers=headers)
            detail = client.get(f"/api/v1/{name}/{ids[0]}", headers=headers)
            assert (listed.status_code, detail.status_code) == (expected, expected), (name, scopes)
            if expected == 403:
                assert f"{name}:read" in listed.get_json()["message"]
            else:
                assert detail.get_json()["id"] == ids[0]


def test_integration_reads_every_record(app, demo, client):
    headers = bearer(make_key(app).token)
    for name in _modules(app):
        items = _walk(client, f"/api/v1/{name}", headers, limit=5)
        assert [i["id"] for i in items] and {i["id"] for i in items} == _all_ids(app, name), name
        assert len(items) == len({i["id"] for i in items})


def test_secrets_never_serialised(app, demo, client):
    headers = bearer(make_key(app).token)
    anna = demo["contacts"]["anna"]
    body = client.get(f"/api/v1/contacts/{anna.id}", headers=headers).get_json()
    assert body["email"] == "anna@acme.example"
    forbidden = ("password", "token", "session", "hash", "secret")
    for name in _modules(app):
        for item in client.get(f"/api/v1/{name}", headers=headers).get_json()["items"]:
            assert not [k for k in item if any(word in k for word in forbidden)], (name, item.keys())


def _portal_ids(app, client, name: str) -> set[int] | None:
    """The ids of ``name`` the logged-in contact can open in the portal; ``None``: module hidden."""
    if client.get(f"/{name}/").status_code == 404:
        return None
    return {i for i in _all_ids(app, name) if client.get(f"/{name}/{i}").status_code == 200}


@pytest.mark.parametrize("who", ["anna", "bruno", "carla"])
def test_act_as_contact_equals_the_portal(app, demo, client, who):
    email = demo["contacts"][who].email
    token = make_key(app).token
    portal = app.test_client()
    login(portal, email)
    seen_any = False
    for name in _modules(app):
        expected = _portal_ids(app, portal, name)
        by_email = client.get(f"/api/v1/{name}", headers=bearer(token, **{"X-Act-As-Contact": email}))
        if expected is None:
            assert by_email.status_code == 404, name
            continue
        items = _walk(client, f"/api/v1/{name}", bearer(token, **{"X-Act-As-Contact": str(demo["contacts"][who].id)}),
                      limit=3)
        assert {i["id"] for i in items} == expected, name
        assert {i["id"] for i in by_email.get_json()["items"]} == expected, name
        seen_any = seen_any or bool(expected)
        for record_id in _all_ids(app, name) - expected:  # outside their scope: as if it did not exist
            response = client.get(f"/api/v1/{name}/{record_id}", headers=bearer(token, **{"X-Act-As-Contact": email}))
            assert response.status_code == 404, (name, record_id)
    assert seen_any


def test_act_as_refuses_contacts_without_portal_access(app, demo, client):
    token = make_key(app, "tickets:read").token
    with app.app_context(), db.connection_context():
        no_access = Contact.create(first_name="No", last_name="Access", email="none@acme.example",
                                   company=demo["companies"]["acme"], portal_access=False)
    for value in ("nobody@example.com", "999999", str(no_access.id), no_access.email, "x" * 300):
        response = client.get("/api/v1/tickets", headers=bearer(token, **{"X-Act-As-Contact": value}))
        assert response.status_code == 403, value
        assert "X-Act-As-Contact" in response.get_json()["message"]


def test_act_as_refuses_a_contact_whose_access_was_revoked(app, demo, client):
    """Anna keeps her profile and her records after staff revoke her access: acting as her is refused
    all the same, for reads and writes."""
    from crm_portal.account.service import revoke_access
    from crm_portal.modules.tickets.models import Ticket

    token = make_key(app, "tickets:read tickets:write").token
    as_anna = bearer(token, **{"X-Act-As-Contact": "anna@acme.example"})
    with app.app_context(), db.connection_context():
        anna = Contact.get(Contact.email == "anna@acme.example")
        ticket = Ticket.select().where(Ticket.contact == anna).first()
    assert client.get("/api/v1/tickets", headers=as_anna).status_code == 200
    with app.test_request_context(), db.connection_context(), db.atomic():
        revoke_access(anna)
    assert anna.profile_id is not None
    assert client.get("/api/v1/tickets", headers=as_anna).status_code == 403
    assert client.get(f"/api/v1/tickets/{ticket.id}", headers=as_anna).status_code == 403
    assert client.post(f"/api/v1/tickets/{ticket.id}/comments", json={"body": "x"}, headers=as_anna).status_code == 403


def test_cursor_walk_loses_and_repeats_nothing_under_concurrent_writes(app, demo, client, frozen_clock):
    """Pages in (updated_at, id) order: a record changed during the walk moves past the cursor
    and is read again in its new state; nothing else repeats and nothing is missed."""
    from crm_portal.modules.tickets.models import Ticket

    headers = bearer(make_key(app, "tickets:read").token)
    start = set(_all_ids(app, "tickets"))
    seen: list[tuple[int, str]] = []
    cursor = None
    touched: set[int] = set()
    added: set[int] = set()
    for step in range(100):
        url = "/api/v1/tickets?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=headers).get_json()
        seen += [(i["id"], i["updated_at"]) for i in body["items"]]
        if not body["has_more"]:
            break
        cursor = body["next_cursor"]
        frozen_clock.advance(dt.timedelta(seconds=1))
        with app.app_context(), db.connection_context():
            if step < 3:
                # One record already read and one not yet read change; one record is added.
                read_id = seen[0][0] if step == 0 else seen[-1][0]
                unread = Ticket.select().where(Ticket.id.not_in([s[0] for s in seen])).first()
                for tid in (read_id, unread.id):
                    Ticket.update(updated_at=utcnow()).where(Ticket.id == tid).execute()
                    touched.add(tid)
                template = Ticket.get_by_id(read_id)
                data = {k: v for k, v in template.__data__.items() if k != "id"}
                data.update(seq=10_000 + step, number=f"TX{step}", updated_at=utcnow(), created_at=utcnow())
                added.add(Ticket.create(**data).id)
            # A record with the very timestamp of the cursor's row must not be skipped.
    else:
        raise AssertionError("the walk never ended")
    ids = [i for i, _ in seen]
    assert set(ids) == start | added
    assert len(seen) == len(set(seen))  # no (record, version) twice
    repeated = {i for i in ids if ids.count(i) > 1}
    assert repeated <= touched
    with app.app_context(), db.connection_context():
        latest = {t.id: t.updated_at.isoformat() + "Z" for t in Ticket.select()}
    last_version = {}
    for record_id, stamp in seen:
        last_version[record_id] = stamp
    assert last_version == latest


def test_cursor_ties_on_the_timestamp_are_broken_by_id(app, demo, client):
    from crm_portal.modules.tickets.models import Ticket

    with app.app_context(), db.connection_context():
        same = utcnow()
        Ticket.update(updated_at=same).execute()
    items = _walk(client, "/api/v1/tickets", bearer(make_key(app, "tickets:read").token), limit=2)
    ids = [i["id"] for i in items]
    assert ids == sorted(ids) and set(ids) == _all_ids(app, "tickets")


def test_updated_since(app, demo, client):
    from crm_portal.modules.tickets.models import Ticket

    headers = bearer(make_key(app, "tickets:read").token)
    with app.app_context(), db.connection_context():
        stamps = sorted(t.updated_at for t in Ticket.select())
        middle = stamps[len(stamps) // 2]
        expected = {t.id for t in Ticket.select().where(Ticket.updated_at >= middle)}
    items = _walk(client, f"/api/v1/tickets?updated_since={middle.isoformat()}", headers)
    assert {i["id"] for i in items} == expected
    with_offset = _walk(client, f"/api/v1/tickets?updated_since={middle.isoformat()}%2B01:00", headers)
    assert len(with_offset) >= len(items)


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"),
    ("updated_since=yesterday", "updated_since"),
])
def test_bad_parameters_are_422_with_field_errors(app, demo, client, query, field):
    response = client.get(f"/api/v1/tickets?{query}", headers=bearer(make_key(app, "tickets:read").token))
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "invalid" and field in body["errors"]


@pytest.mark.parametrize("cursor", ["garbage", "W10", "WyJ4IiwgMV0", "WzEsICJ4Il0", "bnVsbA", "%00",
                                    "WyIyMDI2LTAxLTAxIiwgOTk5OTk5OTk5OTk5XQ"])
def test_bad_cursor_is_a_clear_422(app, demo, client, cursor):
    response = client.get(f"/api/v1/tickets?cursor={cursor}", headers=bearer(make_key(app, "tickets:read").token))
    assert response.status_code == 422
    assert "cursor" in response.get_json()["message"]


def test_errors_are_json(app, demo, client):
    headers = bearer(make_key(app).token)
    for url in ("/api/v1/tickets/999999", "/api/v1/tickets/99999999999999", "/api/v1/tickets/-1",
                "/api/v1/nothing", "/api/v1/tickets/abc"):
        response = client.get(url, headers=headers)
        assert response.status_code == 404, url
        assert response.get_json()["code"] == "not_found"
    response = client.delete("/api/v1/tickets", headers=headers)
    assert response.status_code == 405 and response.get_json()["code"] == "method_not_allowed"
    response = client.post("/api/v1/tickets", headers=headers, data="{bad json", content_type="application/json")
    assert response.status_code == 422 and response.get_json()["code"] == "invalid"
    # The portal's own pages keep their HTML errors.
    assert client.get("/no-such-page").content_type.startswith("text/html")


def test_constant_queries_per_page(app, demo, client, queries):
    token = make_key(app).token
    anna = demo["contacts"]["anna"]

    def count(url: str, **extra: str) -> int:
        with queries:
            response = client.get(url, headers=bearer(token, **extra))
            assert response.status_code == 200
        return queries.count

    client.get("/api/v1/companies", headers=bearer(token))  # last_used_at is written once a minute at most
    client.get("/api/v1/contacts", headers=bearer(token, **{"X-Act-As-Contact": anna.email}))  # fills the caches
    counts = {}
    for name in ("companies", "contacts"):
        counts[name] = (count(f"/api/v1/{name}?limit=100"),
                        count(f"/api/v1/{name}?limit=100", **{"X-Act-As-Contact": anna.email}))
    with app.app_context(), db.connection_context():
        for i in range(60):
            company = Company.create(name=f"Bulk {i}")
            Contact.create(first_name="Bulk", last_name=str(i), email=f"bulk{i}@acme.example",
                           company=demo["companies"]["acme"] if i % 2 else company)
    for name in ("companies", "contacts"):
        after = (count(f"/api/v1/{name}?limit=100"),
                 count(f"/api/v1/{name}?limit=100", **{"X-Act-As-Contact": anna.email}))
        assert after == counts[name], name
        assert max(after) <= 5, queries.queries


def test_declared_secret_columns_are_never_serialised(app, demo, client):
    """A module declaring a credential as a column still never hands it out."""
    from crm_portal.api import Column, Field, Module, Section
    from crm_portal.rest.records import api_fields

    class Careless(Module):
        name = "careless"
        label = "Careless"
        record = Contact
        contact_field = Contact.id
        columns = [Column(Contact.email), Column(Contact.password_hash), Column(Contact.session_token)]
        detail = [Section("x", [Field("session_token"), Field("last_name")])]

    names = [f.name for f in api_fields(Careless())]
    assert names == ["id", "email", "last_name", "created_at"]


def test_act_as_hides_the_columns_the_portal_hides(app, demo, client):
    """Contacts' last login is for their administrators (``manage``): acting as anyone else, it is
    left out, as on their portal list; the integration itself reads it."""
    from crm_portal.auth import PortalUser, load_contact

    token = make_key(app, "contacts:read").token
    assert "last_login" in client.get("/api/v1/contacts", headers=bearer(token)).get_json()["items"][0]
    checked = 0
    for who in ("anna", "bruno", "carla"):
        with app.app_context(), db.connection_context():
            user = PortalUser(load_contact(demo["contacts"][who].id))
            visible, manager = user.can("contacts"), user.can("contacts", "manage")
        if not visible:
            continue
        items = client.get("/api/v1/contacts", headers=bearer(token, **{"X-Act-As-Contact": str(user.contact_id)}))
        assert items.get_json()["items"]
        for item in items.get_json()["items"]:
            assert ("last_login" in item) == manager, who
        checked += not manager
    assert checked


def test_every_module_list_runs_few_queries(app, demo, client, queries):
    """One query for the page whatever the module (the key's lookup aside): no query per row."""
    token = make_key(app).token
    client.get("/api/v1/companies", headers=bearer(token))  # last_used_at written: later requests only read
    for name in _modules(app):
        with queries:
            response = client.get(f"/api/v1/{name}?limit=100", headers=bearer(token))
        assert response.status_code == 200 and response.get_json()["items"], name
        assert queries.count <= 2, (name, queries.queries)


HOSTILE = ["", "-1", "0", "99999999999999999999", "1e9", "null", "%00", "%ff%fe", "' OR 1=1 --", "x" * 500,
           "2026-13-45T99:99:99", "[]", "{}", "true"]


def test_hostile_parameters_never_cause_a_server_error(app, demo, client):
    """Every documented query parameter of every endpoint, fed garbage: a 4xx with a JSON body, never a 5xx."""
    token = make_key(app).token
    spec = openapi(app, client)
    for path, operations in spec["paths"].items():
        if "get" not in operations:
            continue
        url = path.replace("{record_id}", "1").replace("{endpoint_id}", "1")
        params = [p["name"] for p in operations["get"].get("parameters", []) if p["in"] == "query"]
        for param in params:
            for value in HOSTILE:
                response = client.get(f"{url}?{param}={value}", headers=bearer(token))
                assert response.status_code < 500, (url, param, value)
                assert response.is_json, (url, param, value)
        if "{record_id}" in path:
            for value in ("abc", "1.5", "99999999999999999999", "-99999999999"):
                response = client.get(path.replace("{record_id}", value), headers=bearer(token))
                assert response.status_code == 404, (path, value)
        for header in ("0", "-1", "anna@acme.example\x00", "x" * 1000, "99999999999999999999"):
            response = client.get(url, headers=bearer(token, **{"X-Act-As-Contact": header}))
            assert response.status_code < 500, (url, header)


@pytest.mark.parametrize("query", ["f_status=waiting_support&f_status=open", "state=closed", "q=stampa",
                                   "show=mine", "state=open&q=cedolino", "f_status=no-such-state"])
def test_list_filters_are_the_portals(app, demo, client, query):
    """The module's list filters (``q``, ``s_``/``f_`` columns, its own parameters) pick the same
    records as the portal's list with the same parameters, for the same contact."""
    import re

    anna = demo["contacts"]["anna"]
    portal = app.test_client()
    login(portal, anna.email)
    page = portal.get(f"/tickets/?{query}&per_page=100")
    assert page.status_code == 200
    expected = {int(i) for i in re.findall(r'data-href="/tickets/(\d+)"', page.text)}
    token = make_key(app).token
    items = _walk(client, f"/api/v1/tickets?{query}", bearer(token, **{"X-Act-As-Contact": anna.email}), limit=2)
    assert {i["id"] for i in items} == expected
    if query.startswith("f_status=waiting"):
        assert expected and {i["status"] for i in items} <= {"waiting_support", "open"}
    unfiltered = _walk(client, "/api/v1/tickets", bearer(token, **{"X-Act-As-Contact": anna.email}))
    assert expected < {i["id"] for i in unfiltered} or query == "show=mine"


def test_list_filters_are_documented(app, client):
    params = {p["name"] for p in openapi(app, client)["paths"]["/api/v1/tickets"]["get"]["parameters"]}
    assert {"limit", "cursor", "updated_since", "q", "f_status", "state", "show"} <= params


@pytest.mark.parametrize(("url", "body", "where"), [
    ("/api/v1/sync/company/batch", {"items": [{"external_id": "A\x00", "data": {"name": "Nul"}}]},
     "items.0.external_id"),
    ("/api/v1/sync/company/C-1", {"name": "Acme\x00"}, "name"),
    ("/api/v1/companies", {"name": "ok", "notes": ["x", "y\x00"]}, "notes.1"),
    ("/api/v1/tickets", {"contact_email\x00": "x"}, "contact_email\x00"),
])
def test_text_with_a_nul_character_is_refused_before_any_write(app, demo, client, url, body, where):
    """PostgreSQL cannot store NUL in text: every JSON body is checked before an endpoint reads it."""
    token = make_key(app).token
    method = client.put if "/C-1" in url else client.post
    with app.app_context(), db.connection_context():
        before = (Company.select().count(), Contact.select().count())
    response = method(url, json=body, headers=bearer(token))
    assert response.status_code == 422, response.get_json()
    assert where in response.get_json()["errors"]
    with app.app_context(), db.connection_context():
        assert (Company.select().count(), Contact.select().count()) == before


@pytest.mark.parametrize(("depth", "where"), [(100_000, "body"), (900, ".".join(["0"] * 32)),
                                              (33, "a." * 31 + "a")])
def test_a_deeply_nested_body_is_refused_for_any_key(app, demo, client, depth, where):
    """Deeper than the parser's stack (100,000 levels) or than any payload needs: 422, in the key's
    language, before the endpoint or its scope check reads it — for a read-only key too."""
    token = make_key(app, "tickets:read").token
    if depth == 33:
        body = "1"
        for _ in range(depth):
            body = '{"a": ' + body + "}"
    else:
        body = "[" * depth + "]" * depth
    for url in ("/api/v1/tickets", "/api/v1/companies"):
        response = client.post(url, data=body, content_type="application/json",
                               headers=bearer(token, **{"Accept-Language": "it"}))
        assert response.status_code == 422, response.get_data(as_text=True)[:300]
        errors = response.get_json()["errors"]
        assert list(errors) == [where] and "annidamento" in errors[where][0]


def test_a_body_nested_as_deep_as_allowed_reaches_the_endpoint(app, demo, client):
    token = make_key(app, "companies:write").token
    notes: object = "deep"
    for _ in range(30):
        notes = [notes]
    response = client.post("/api/v1/companies", json={"name": "Nested", "notes": notes}, headers=bearer(token))
    assert response.status_code == 422 and "notes" in response.get_json()["errors"]  # the form's own refusal
