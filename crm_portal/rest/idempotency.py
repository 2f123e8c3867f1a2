"""``Idempotency-Key`` on every POST under ``/api/v1``: a retried request is answered, not repeated.

The first POST with a key (per integration) records the request's fingerprint (method, path and
query, the contact it acts as, body) before its view runs, then the answer it got. A retry with
the same key and the same request gets that answer again (status, body, ``Location``/``ETag``),
with ``Idempotent-Replayed: true``, and writes nothing. The same key with another request is
refused (422); a retry arriving while the first request still runs is refused (409): the first
one's answer is not known yet.

Answers of 500 and above, and refusals of the key itself (401, 403, 429), are not kept (the row
is removed): the client may retry with the same key. Records are pruned 24 hours after the first
request (:func:`prune`, a periodic job).
Installed on the API blueprint (after authentication), so every POST route has it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from apispec import BasePlugin
from flask import Response, abort, g, request
from flask_babel import gettext as _
from flask_smorest import Blueprint
from peewee import IntegrityError

from ..db import db, utcnow
from ..models import IdempotencyRecord
from .auth import ACT_AS_HEADER

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY = 255
#: How long a key is remembered.
TTL = dt.timedelta(hours=24)
#: A request still "running" after this long died without an answer: a retry may take its key over.
STALE = dt.timedelta(minutes=10)
#: Headers of the first answer a replay gives again.
KEPT_HEADERS = ("Content-Type", "Location", "ETag")
#: Refusals that depend on the key or the moment, not on the request: a retry is judged afresh.
NOT_KEPT = (401, 403, 429)


def _fingerprint() -> str:
    """A digest of what the request asks and for whom: method, path and query, the contact it acts
    as (``X-Act-As-Contact``: the same request for another contact is another request, whose answer
    must never be the first contact's), and its body. A JSON body is compared by value (key order
    and spacing do not matter), a form or multipart body by its fields and files' names and
    contents (the multipart boundary changes on every send)."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}?{request.query_string.decode('latin-1')}\n".encode())
    acting = (request.headers.get(ACT_AS_HEADER) or "").strip().lower()
    digest.update(f"as {acting}\n".encode())
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        items = sorted((k, v) for k, values in request.form.lists() for v in values)
        digest.update(json.dumps(items).encode())
        for name, storage in sorted(request.files.items(multi=True), key=lambda item: item[0]):
            digest.update(f"\nfile {name} {storage.filename}\n".encode())
            stream = storage.stream
            while chunk := stream.read(65536):
                digest.update(chunk)
            stream.seek(0)
        return digest.hexdigest()
    raw = request.get_data(cache=True)
    if request.is_json:
        try:
            raw = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
        except ValueError:
            pass  # invalid JSON is compared as bytes; the view refuses it
    digest.update(raw)
    return digest.hexdigest()


def _replay(row: IdempotencyRecord) -> Response:
    headers = json.loads(row.response_headers or "{}")
    response = Response(bytes(row.response_body or b""), status=row.status, headers=headers)
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _claim(integration_id: int, key: str, fingerprint: str) -> IdempotencyRecord | None:
    """Record the key for this request; ``None`` when it is already recorded."""
    try:
        with db.atomic():
            return IdempotencyRecord.create(integration=integration_id, key=key, method=request.method,
                                            path=request.path[:2000], request_hash=fingerprint, created_at=utcnow())
    except IntegrityError:
        return None


def before_request() -> Response | None:
    """Replay, refuse, or let the request run with its key recorded (``g.idempotency_id``)."""
    if request.method != "POST":
        return None
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY or not (key.isascii() and key.isprintable()):
        abort(422, _("The %(header)s header must be 1 to %(max)s printable ASCII characters.",
                     header=HEADER, max=MAX_KEY))
    integration_id = g.api_key.integration_id
    fingerprint = _fingerprint()
    for _attempt in range(2):
        row = _claim(integration_id, key, fingerprint)
        if row is not None:
            g.idempotency_id = row.id
            return None
        found = IdempotencyRecord.get_or_none((IdempotencyRecord.integration == integration_id)
                                              & (IdempotencyRecord.key == key))
        if found is None:
            continue  # pruned between the two statements
        now = utcnow()
        if found.created_at < now - TTL:
            IdempotencyRecord.delete().where(IdempotencyRecord.id == found.id).execute()
            continue  # expired, not pruned yet: the key is free again
        if (found.method, found.path, found.request_hash) != (request.method, request.path[:2000], fingerprint):
            abort(422, _("This %(header)s was already used for a different request; use a new key for "
                         "a new request.", header=HEADER))
        if found.status is None:
            if found.created_at < now - STALE:  # its request died: take the key over, once
                taken = (IdempotencyRecord.update(created_at=now)
                         .where((IdempotencyRecord.id == found.id) & IdempotencyRecord.status.is_null()
                                & (IdempotencyRecord.created_at == found.created_at)).execute())
                if taken:
                    g.idempotency_id = found.id
                    return None
            abort(409, _("A request with this %(header)s is still being processed; retry later.", header=HEADER))
        return _replay(found)
    abort(409, _("A request with this %(header)s is still being processed; retry later.", header=HEADER))
    return None  # unreachable: abort raises


def after_request(response: Response) -> Response:
    """Keep the answer of a request that claimed a key (not a 5xx: that one may be retried)."""
    record_id = g.pop("idempotency_id", None)
    if record_id is None:
        return response
    if response.status_code >= 500 or response.status_code in NOT_KEPT or response.is_streamed:
        IdempotencyRecord.delete().where(IdempotencyRecord.id == record_id).execute()
        return response
    headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    with db.atomic():
        (IdempotencyRecord.update(status=response.status_code, response_body=response.get_data(),
                                  response_headers=json.dumps(headers))
         .where(IdempotencyRecord.id == record_id).execute())
    return response


def teardown_request(exc: BaseException | None) -> None:
    """A request that ended without an answer (an exception) frees its key for a retry."""
    record_id = g.pop("idempotency_id", None)
    if record_id is not None and not db.is_closed():
        try:
            IdempotencyRecord.delete().where(IdempotencyRecord.id == record_id).execute()
        except Exception:  # noqa: BLE001 - the row then expires with the others
            pass


def init_blueprint(bp: Blueprint) -> None:
    """Install on the API blueprint; call after the authentication hook is added."""
    bp.before_request(before_request)
    bp.after_request(after_request)
    bp.teardown_request(teardown_request)


def prune(now: dt.datetime | None = None) -> int:
    """Forget keys older than :data:`TTL` (the periodic job ``core.prune_idempotency``)."""
    cutoff = (now or utcnow()) - TTL
    with db.atomic():
        return IdempotencyRecord.delete().where(IdempotencyRecord.created_at < cutoff).execute()


class SpecPlugin(BasePlugin):
    """Documents the header on every POST operation of the OpenAPI document (as the hook serves
    every POST route, present and future)."""

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        operation = (operations or {}).get("post")
        if operation is None:
            return
        parameters = operation.setdefault("parameters", [])
        if not any(isinstance(p, dict) and p.get("name") == HEADER for p in parameters):
            parameters.append(describe())
        # What the header itself can answer, whatever the endpoint does.
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}
        responses = operation.setdefault("responses", {})
        responses.setdefault("409", {"description": "A request with this Idempotency-Key is still running.",
                                     "content": error})
        responses.setdefault("422", {"description": "This Idempotency-Key was used for a different request.",
                                     "content": error})


def describe() -> dict[str, Any]:
    """The OpenAPI parameter of the header."""
    return {"in": "header", "name": HEADER, "required": False, "schema": {"type": "string", "maxLength": MAX_KEY},
            "description": "Retry safely: the same key and request answer the first result (24 h)."}
