"""The OpenAPI document: valid 3.1, every endpoint listed with its scope, the bearer scheme, and
the docs page served from the portal itself."""
from __future__ import annotations

import re

from api_helpers import bearer, make_key, openapi, record_modules
from openapi_spec_validator import validate


def test_document_is_valid_openapi_3_1(app, client):
    spec = openapi(app, client)
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "crmp_<key id>_<secret>"}


def test_every_endpoint_is_documented_with_its_scope(app, client):
    spec = openapi(app, client)
    operations = {path: {m: op for m, op in ops.items() if m != "parameters"} for path, ops in spec["paths"].items()}
    documented = {(path, method) for path, ops in operations.items() for method in ops}
    routes = {(rule.rule, method.lower()) for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith("api_v1.") for method in rule.methods - {"HEAD", "OPTIONS"}}
    as_openapi = {(re.sub(r"<(?:[^<>]*:)?(\w+)>", r"{\1}", path), m) for path, m in routes}
    assert as_openapi == documented
    expected_paths = {"/api/v1/webhooks", "/api/v1/webhooks/{endpoint_id}",
                      "/api/v1/webhooks/{endpoint_id}/rotate-secret",
                      "/api/v1/webhooks/{endpoint_id}/deliveries",
                      "/api/v1/webhooks/deliveries/{delivery_id}/redeliver", "/api/v1/inbound-email",
                      "/api/v1/changes"}
    for name in record_modules(app):
        expected_paths |= {f"/api/v1/{name}", f"/api/v1/{name}/{{record_id}}"}
    expected_paths |= {"/api/v1/contacts/{record_id}/invite"}
    kinds = ["company", "contact"] + [m.sync_type for m in app.extensions["crm_portal"].modules.values()
                                      if m.sync_type]
    assert {"product", "service", "deadline"} <= set(kinds)
    for kind in kinds:
        expected_paths |= {f"/api/v1/sync/{kind}/{{external_id}}", f"/api/v1/sync/{kind}/batch"}
    expected_paths |= {f"/api/v1/tickets/{{record_id}}/{tail}" for tail in
                       ("transitions", "comments", "attachments", "attachments/{attachment_id}")}
    assert {p for p, _ in documented} == expected_paths
    for path, ops in operations.items():
        for method, op in ops.items():
            module = path.split("/")[3]
            if module == "changes":  # any key: it sees the modules it may read
                assert op["security"] == [{"bearer": []}] and "<module>:read" in op["description"]
                continue
            fixed = {"webhooks": "webhooks:manage", "sync": "sync:write", "inbound-email": "email:ingest"}
            scope = fixed.get(module) or (f"{module}:read" if method == "get" else f"{module}:write")
            assert op["security"] == [{"bearer": [scope]}], path
            assert scope in op["description"]
            if method in ("post", "patch") and module != "webhooks":
                assert {"401", "403", "404", "422"} <= set(op["responses"]), (path, method)


def test_docs_page_is_local(app, client):
    response = client.get("/api/v1/docs", headers=bearer(make_key(app).token))
    assert response.status_code == 200
    page = response.text
    assert "/api/v1/tickets" in page and "tickets:read" in page
    assert "cdn" not in page.lower() and "<script" not in page


def test_errors_are_documented(app, client):
    spec = openapi(app, client)
    op = spec["paths"]["/api/v1/tickets"]["get"]
    assert {"200", "401", "403", "404", "422"} <= set(op["responses"])


def test_document_and_docs_page_need_a_key_unless_public(app, client):
    """They name every installed module: a key of any scope reads them; none, or a bad one, gets
    401; ``API_DOCS_PUBLIC`` opens them to anyone."""
    assert app.config["API_DOCS_PUBLIC"] is False  # the default
    weakest = make_key(app, ["webhooks:manage"], name="other").token
    for path in ("/api/v1/openapi.json", "/api/v1/docs"):
        for headers in ({}, bearer("crmp_000000000000_" + "x" * 43)):
            response = client.get(path, headers=headers)
            assert response.status_code == 401, path
            assert response.get_json()["code"] == "unauthorized"
            assert "tickets" not in response.text
        assert client.get(path, headers=bearer(weakest)).status_code == 200
    app.config["API_DOCS_PUBLIC"] = True
    assert client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "/api/v1/tickets" in client.get("/api/v1/docs").text
