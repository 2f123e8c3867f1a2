"""Property-based fuzzing of the REST API from its own OpenAPI document (schemathesis): every
operation the document lists, with valid and invalid inputs, on the demo data and a key holding
every scope. No answer may be a 5xx, and every answer must be one the document declares, with the
declared content type and body.

Bounded and deterministic (``derandomize``, a few examples per operation, no example database):
the same inputs every run, in well under a minute. Endpoints added later are covered without a
change here: the operations come from the document.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_helpers import bearer, make_key
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

#: Examples per operation and generation mode: enough to reach every parameter's edges, few
#: enough for the whole document to run in seconds.
EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

#: Raw emails for POST /api/v1/inbound-email: the email-in fixtures (replies, automatic mail,
#: bounces, broken MIME, a zip bomb …) and arbitrary bytes.
MAIL = sorted((Path(__file__).parent / "fixtures" / "mail").glob("*.eml"))
schemathesis.openapi.media_type(
    "message/rfc822", st.one_of(st.sampled_from([path.read_bytes() for path in MAIL]), st.binary(max_size=4096)))


@pytest.fixture
def offline_dns(monkeypatch):
    """Webhook addresses the fuzzer invents resolve nowhere, at once (no resolver is asked)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in str(host) else socket.AF_INET, str(host))
        except (OSError, ValueError, TypeError):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _operations(schema: Any) -> list[Any]:
    found = []
    for result in schema.get_all_operations():
        found.append(result.ok())  # an operation the loader cannot read fails the test here
    return found


def test_no_operation_answers_5xx_or_off_schema(app, demo, offline_dns):
    token = make_key(app).token
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=bearer(token))
    operations = _operations(schema)
    assert len(operations) >= 10
    failures: list[str] = []
    answered: dict[str, set[int]] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                response = case.call(headers=bearer(token))
                answered.setdefault(case.operation.label, set()).add(response.status_code)
                case.validate_response(response, checks=CHECKS, headers=bearer(token))

            try:
                check()
            except (Exception, FailureGroup) as exc:  # noqa: BLE001 - collect every operation's failures
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert not failures, "\n\n".join(failures)
    # Every operation was called, and the valid inputs reached past the gates at least somewhere.
    assert set(answered) == {operation.label for operation in operations}
    assert any(200 in statuses for statuses in answered.values())
    assert 201 in answered["POST /api/v1/webhooks"] or 422 in answered["POST /api/v1/webhooks"]


def test_every_record_of_the_demo_conforms_to_its_schema(app, demo):
    """Random ids rarely hit a record: every detail operation is also called with real ids (the
    first page of its list), and its answers checked against the document."""
    token = make_key(app).token
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=bearer(token))
    checked = 0
    for operation in _operations(schema):
        if operation.method.upper() != "GET" or not operation.path.endswith("/{record_id}"):
            continue
        listing = operation.path.removesuffix("/{record_id}")
        response = app.test_client().get(listing + "?limit=5", headers=bearer(token))
        assert response.status_code == 200, listing
        for item in response.get_json()["items"]:
            case = operation.Case(path_parameters={"record_id": item["id"]})
            answer = case.call(headers=bearer(token))
            assert answer.status_code == 200, (operation.label, item["id"])
            case.validate_response(answer, checks=CHECKS, headers=bearer(token))
            checked += 1
    assert checked >= 9

