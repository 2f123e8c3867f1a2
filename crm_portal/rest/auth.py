"""Who calls the API: a bearer API key, never a session cookie or a token in the URL.

Every refusal of a key (unknown, malformed, revoked, expired, inactive integration, address not
allowed) answers the same 401, so a caller learns nothing about which keys exist.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn

from apispec import BasePlugin
from flask import abort, g, request
from flask_babel import gettext as _
from peewee import fn

from ..audit import audit
from ..auth import PortalUser, load_contact
from ..models import ApiKey, Contact
from ..scoping import IntegrationPrincipal
from .keys import verify

ACT_AS_HEADER = "X-Act-As-Contact"
#: Query parameters a token might be put in by mistake: refused, since URLs end up in logs.
TOKEN_PARAMS = ("access_token", "token", "api_key", "apikey", "key")


def _unauthorized() -> NoReturn:
    abort(401, description=None)  # the one body for every kind of failure (see errors.body)


def authenticate() -> None:
    """Before every API view: find the key of ``Authorization: Bearer`` and the principal to read as."""
    if any(name in request.args for name in TOKEN_PARAMS):
        abort(400, _("API keys are accepted only in the Authorization header, never in the address."))
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        _unauthorized()
    key = verify(token.strip(), request.remote_addr)
    if key is None:
        _unauthorized()
    g.api_key = key
    g.api_principal = IntegrationPrincipal(key.integration)


def current_key() -> ApiKey:
    """The API key of the current request."""
    return g.api_key


def require_scope(scope: str) -> None:
    """403 naming ``scope`` unless the current key holds it."""
    if scope not in current_key().scope_set:
        abort(403, _("This API key lacks the scope %(scope)s.", scope=scope))


def acting_user() -> Any:
    """Whom the gate reads as: the contact of ``X-Act-As-Contact`` (exactly as their portal
    requests would), else the integration itself (every record of the modules its scopes allow)."""
    value = request.headers.get(ACT_AS_HEADER, "").strip()
    if not value:
        return g.api_principal
    contact_id = None
    if value.isdigit() and len(value) < 10:
        contact_id = int(value)
    elif len(value) <= 254 and value.isprintable():  # no NUL or control characters reach the database
        found = Contact.select(Contact.id).where(fn.LOWER(Contact.email) == value.lower()).first()
        contact_id = found.id if found else None
    contact = load_contact(contact_id) if contact_id is not None else None
    if contact is None or not contact.portal_access or contact.profile_id is None:
        abort(403, _("%(header)s names no contact with portal access and a profile.", header=ACT_AS_HEADER))
    return PortalUser(contact)


def scoped(scope: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A view needing ``scope``; the scope is checked before the view reads anything."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            require_scope(scope)
            return view(*args, **kwargs)
        wrapper.required_scope = scope  # type: ignore[attr-defined]
        return wrapper
    return decorate


def audit_integration(action: str, record: Any = None, **kwargs: Any) -> Any:
    """An audit entry whose actor is the calling integration (for the API's writes)."""
    return audit(action, record, user=g.api_principal, **kwargs)


# --- the header in the OpenAPI document ----------------------------------------------------------
ACT_AS_PARAMETER = {
    "in": "header", "name": ACT_AS_HEADER, "required": False, "schema": {"type": "string"},
    "description": "Act as this contact (id or email) would in the portal: their profile, grants and scope.",
}


#: Marks an operation that takes X-Act-As-Contact (see :class:`ActAsPlugin`); remove it from an
#: operation's doc where acting as a contact means nothing.
ACT_AS_MARK = "x-act-as-contact"


class ActAsPlugin(BasePlugin):
    """Adds the X-Act-As-Contact header to the operations marked with :data:`ACT_AS_MARK`. (A
    ``parameters`` list given to ``Blueprint.doc`` would replace the query parameters flask-smorest
    documents from the arguments' schema, not add to them.)"""

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        for operation in (operations or {}).values():
            if isinstance(operation, dict) and operation.pop(ACT_AS_MARK, False):
                operation.setdefault("parameters", []).append(dict(ACT_AS_PARAMETER))
