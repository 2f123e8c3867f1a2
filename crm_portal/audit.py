"""The audit log: who did what to which record, and when."""
from __future__ import annotations

import json
from typing import Any

from flask import has_request_context, request
from flask_login import current_user

from .models import AuditEntry


def _actor(user: Any) -> tuple[str, int | None, str | None]:
    from .scoping import IntegrationPrincipal

    if isinstance(user, IntegrationPrincipal):  # the REST API called with an integration's key
        return "integration", user.integration.id, user.integration.name
    if user is None or not getattr(user, "is_authenticated", False):
        return "anonymous", None, None
    if getattr(user, "is_staff", False) or getattr(user, "viewing_as", False):
        # Staff viewing the portal as a contact act as themselves (crm_portal.viewas).
        return "staff", user.staff.id, user.staff.email
    return "contact", user.contact.id, user.contact.email


def audit(action: str, record: Any = None, *, user: Any = None, object_type: str | None = None,
          object_id: Any = None, details: Any = None, system: bool = False) -> AuditEntry:
    """Write one audit entry. ``record`` (a model row) fills object type and id."""
    if system:
        actor_type, actor_id, actor_label = "system", None, None
    else:
        if user is None and has_request_context():
            user = current_user._get_current_object()
        actor_type, actor_id, actor_label = _actor(user)
    if record is not None:
        object_type = object_type or record._meta.table_name
        object_id = record.get_id() if object_id is None else object_id
    if details is not None and not isinstance(details, str):
        details = json.dumps(details, default=str, ensure_ascii=False)
    return AuditEntry.create(
        actor_type=actor_type, actor_id=actor_id, actor_label=actor_label, action=action,
        object_type=object_type, object_id=None if object_id is None else str(object_id),
        details=details, ip_address=request.remote_addr if has_request_context() else None,
    )
