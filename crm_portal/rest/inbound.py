"""``POST /api/v1/inbound-email``: a mail server or an inbound-mail service hands over one raw
RFC 822 message (``Content-Type: message/rfc822``, scope ``email:ingest``); it goes through the
email-in pipeline (crm_portal.mailin) like mail fetched by IMAP.

Every message that was dealt with, accepted or refused for good (automatic, unknown sender, too
large …), answers 200 with its status: the server must not retry it. 503 means "try again later".
"""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import abort, current_app, request
from flask_babel import gettext as _
from flask_smorest import Blueprint

from ..mailin.models import STATUSES
from ..mailin.pipeline import TemporaryFailure, ingest
from .auth import ACT_AS_MARK, scoped

SCOPE = "email:ingest"
CONTENT_TYPES = ("message/rfc822", "application/octet-stream")
CHUNK = 64 * 1024


class InboundResultSchema(ma.Schema):
    id = ma.fields.Integer(metadata={"description": "the stored message (admin: Inbound email)"})
    message_id = ma.fields.String(metadata={"description": "its Message-ID (or <sha256-…@hash>)"})
    status = ma.fields.String(metadata={"description": "one of " + ", ".join(STATUSES)})
    reason = ma.fields.String(allow_none=True, metadata={"description": "why it was ignored or rejected"})
    ticket_id = ma.fields.Integer(allow_none=True)
    duplicate = ma.fields.Boolean(metadata={"description": "the message had been received before"})


def _read_body(limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the body: enough to know a message is too large without
    reading all of it."""
    chunks, size = [], 0
    stream = request.stream
    while size <= limit:
        chunk = stream.read(min(CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def add_routes(bp: Blueprint, doc: Any, errors: Any) -> None:
    """The inbound email endpoint on the API's blueprint (``doc`` and ``errors`` as for the records)."""
    described = doc(SCOPE, "Hand over one raw email (RFC 822) to the email-in pipeline")
    described.pop(ACT_AS_MARK, None)  # X-Act-As-Contact means nothing here
    described["requestBody"] = {"required": True, "content": {
        "message/rfc822": {"schema": {"type": "string", "format": "binary"}}}}

    @bp.route("/inbound-email", endpoint="inbound_email", methods=["POST"])
    @bp.response(200, InboundResultSchema)
    @bp.alt_response(415, description="The body is not message/rfc822.")
    @bp.alt_response(503, description="Not processed now: deliver it again later.")
    @errors(bp)
    @bp.doc(**described, tags=["email"])
    @scoped(SCOPE)
    def inbound_email() -> dict[str, Any]:
        if (request.mimetype or "").lower() not in CONTENT_TYPES:
            abort(415, _("Send the raw email with Content-Type: message/rfc822."))
        raw = _read_body(int(current_app.config["MAILIN_MAX_BYTES"]))
        if not raw.strip():
            abort(400, _("The request carries no email."))
        try:
            row = ingest(raw, "api")
        except TemporaryFailure:
            abort(503, _("The email could not be processed now; deliver it again later."))
        return {"id": row.id, "message_id": row.message_id, "status": row.status, "reason": row.reason,
                "ticket_id": row.ticket_id, "duplicate": bool(getattr(row, "duplicate", False))}
