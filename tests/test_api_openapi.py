"""The OpenAPI document: valid 3.1, every endpoint listed with its scope, the bearer scheme, and
the docs page served from the portal itself."""
from __future__ import annotations

import re

from api_helpers import record_modules
from openapi_spec_validator import validate


def test_document_is_valid_openapi_3_1(app, client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "crmp_<key id>_<secret>"}


def test_every_endpoint_is_documented_with_its_scope(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    operations = {path: {m: op for m, op in ops.items() if m != "parameters"} for path, ops in spec["paths"].items()}
    documented = {(path, method) for path, ops in operations.items() for method in ops}
    routes = {(rule.rule, method.lower()) for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith("api_v1.") for method in rule.methods - {"HEAD", "OPTIONS"}}
    as_openapi = {(re.sub(r"<int(\(signed=True\))?:(\w+)>", r"{\2}", path), m) for path, m in routes}
    assert as_openapi == documented
    expected_paths = {"/api/v1/webhooks", "/api/v1/webhooks/{endpoint_id}",
                      "/api/v1/webhooks/{endpoint_id}/rotate-secret",
                      "/api/v1/webhooks/{endpoint_id}/deliveries",
                      "/api/v1/webhooks/deliveries/{delivery_id}/redeliver"}
    for name in record_modules(app):
        expected_paths |= {f"/api/v1/{name}", f"/api/v1/{name}/{{record_id}}"}
    expected_paths |= {f"/api/v1/tickets/{{record_id}}/{tail}" for tail in
                       ("transitions", "comments", "attachments", "attachments/{attachment_id}")}
    assert {p for p, _ in documented} == expected_paths
    for path, ops in operations.items():
        for method, op in ops.items():
            module = path.split("/")[3]
            access = "read" if method == "get" else "write"
            scope = "webhooks:manage" if module == "webhooks" else f"{module}:{access}"
            assert op["security"] == [{"bearer": [scope]}], path
            assert scope in op["description"]
            if method in ("post", "patch") and module != "webhooks":
                assert {"401", "403", "404", "422"} <= set(op["responses"]), (path, method)


def test_docs_page_is_local(app, client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    page = response.text
    assert "/api/v1/tickets" in page and "tickets:read" in page
    assert "cdn" not in page.lower() and "<script" not in page


def test_errors_are_documented(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    op = spec["paths"]["/api/v1/tickets"]["get"]
    assert {"200", "401", "403", "404", "422"} <= set(op["responses"])
