"""Signed webhooks: endpoints of integrations, events queued in the change's transaction, delivery
by the worker with retries (Standard Webhooks signatures).

An event writes one :class:`~crm_portal.models.WebhookDelivery` per active endpoint subscribed to
it, inside the transaction of the change: a rolled-back change sends nothing. After the commit the
worker is asked to send them (the periodic job sends whatever a lost request left behind). A
delivery is a POST of the exact stored bytes with the headers ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">``, keyed with the base64 part of the endpoint's ``whsec_`` secret).

Targets are checked at creation and again at every send against the addresses the host name
resolves to; the connection goes to the checked address, so a name cannot resolve to a public
address for the check and to a private one for the send. Redirects are not followed.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app
from flask_babel import gettext as _

from .db import db, utcnow
from .models import Integration, StaffUser, WebhookDelivery, WebhookEndpoint

log = logging.getLogger("crm_portal.webhooks")

#: Every event type an endpoint may subscribe to.
EVENTS = ("ticket.created", "ticket.status_changed", "ticket.comment_added", "contact.created", "contact.updated",
          "company.updated")
#: Wait before the 2nd, 3rd … attempt; after the last one the delivery has failed (about a day).
RETRY_DELAYS = (dt.timedelta(seconds=5), dt.timedelta(minutes=5), dt.timedelta(minutes=30),
                dt.timedelta(hours=2), dt.timedelta(hours=5), dt.timedelta(hours=10))
#: How long a worker holds a delivery it is sending before another one may take it over.
CLAIM_FOR = dt.timedelta(minutes=2)
#: How long the replaced secret still signs after a rotation (receivers switch over meanwhile).
ROTATION_OVERLAP = dt.timedelta(hours=24)


#: The read scope an integration needs to receive an event's object (the same as to GET it).
EVENT_SCOPES = {"ticket": "tickets:read", "contact": "contacts:read", "company": "companies:read"}


def read_scope(event: str) -> str:
    """The scope that reading ``event``'s object through the API takes (``ticket.created`` → ``tickets:read``)."""
    return EVENT_SCOPES[event.partition(".")[0]]


class WebhookRefused(ValueError):
    """An endpoint cannot be created or reached as asked; the message says why."""


# --- secrets and signatures ---------------------------------------------------------------------
def new_secret() -> str:
    """A signing secret, ``whsec_<base64 of 32 random bytes>``."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<signature>`` of ``body`` under ``secret`` (Standard Webhooks)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signing_secrets(endpoint: WebhookEndpoint, now: dt.datetime) -> list[str]:
    """The current secret and, within the overlap after a rotation, the one it replaced."""
    found = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_until and endpoint.previous_until > now:
        found.append(endpoint.previous_secret)
    return found


# --- targets ------------------------------------------------------------------------------------
def _allowed_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
                                 or ip.is_multicast or ip.is_unspecified)


def check_url(url: str) -> None:
    """Raise :class:`WebhookRefused` unless ``url`` is an http(s) address without credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(_("Use an http:// or https:// address with a host name."))
    if parts.username or parts.password:
        raise WebhookRefused(_("The address may not carry a user name or password."))
    if len(url) > 2000 or not url.isprintable() or " " in url:
        raise WebhookRefused(_("The address is not valid."))
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise WebhookRefused(_("The port is not valid.")) from exc


def resolve(url: str) -> list[str]:
    """The addresses the host of ``url`` resolves to, every one checked: loopback, private,
    link-local, reserved and multicast ones are refused unless ``WEBHOOK_ALLOW_PRIVATE_NETWORKS``."""
    check_url(url)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookRefused(_("The host name does not resolve.")) from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not current_app.config.get("WEBHOOK_ALLOW_PRIVATE_NETWORKS"):
        refused = [a for a in addresses if not _allowed_address(a)]
        if refused or not addresses:
            raise WebhookRefused(_("The address resolves to a private, loopback or reserved network."))
    return addresses


# --- endpoints ----------------------------------------------------------------------------------
def parse_events(events: Iterable[str]) -> list[str]:
    """The event types, checked; an unknown one raises :class:`WebhookRefused` naming it."""
    found = list(dict.fromkeys(e for e in events if e))
    if not found:
        raise WebhookRefused(_("Give at least one event."))
    unknown = [e for e in found if e not in EVENTS]
    if unknown:
        raise WebhookRefused(_("Unknown events: %(events)s.", events=", ".join(sorted(unknown))))
    return found


def create_endpoint(integration: Integration, url: str, events: Iterable[str]) -> WebhookEndpoint:
    """A new active endpoint of ``integration``; its ``secret`` is to be shown once."""
    chosen = parse_events(events)
    resolve(url)
    return WebhookEndpoint.create(integration=integration, url=url, events=" ".join(chosen),
                                  secret=new_secret())


def rotate_secret(endpoint: WebhookEndpoint, now: dt.datetime | None = None) -> str:
    """Give ``endpoint`` a new secret; the old one keeps signing (besides) for :data:`ROTATION_OVERLAP`."""
    now = now or utcnow()
    endpoint.previous_secret, endpoint.previous_until = endpoint.secret, now + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    endpoint.save()
    return endpoint.secret


# --- events -------------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat() + "Z" if value.tzinfo is None else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def body_bytes(event_type: str, data: dict[str, Any], now: dt.datetime) -> bytes:
    """The JSON body of an event: ``{"type", "timestamp", "data"}``."""
    document = {"type": event_type, "timestamp": now.replace(microsecond=0).isoformat() + "Z", "data": data}
    return json.dumps(document, default=_json_default, separators=(",", ":"), ensure_ascii=False).encode()


class _SendRequest:
    """After the commit, ask the worker to send the deliveries the transaction queued."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.ids: list[int] = []

    def __call__(self) -> None:
        if not self.ids:
            return
        try:
            self.app.extensions["crm_portal_jobs"]["deliver_webhooks"](list(self.ids))
        except Exception:  # noqa: BLE001 - the queue is down: the periodic job catches up
            log.exception("could not enqueue webhook deliveries %s", self.ids)


def _pending_request() -> _SendRequest | None:
    if not db.in_transaction():
        return None
    callbacks = getattr(getattr(db.obj, "_state", None), "commit_callbacks", None) or []
    return next((cb for cb in callbacks if isinstance(cb, _SendRequest)), None)


def emit(event_type: str, data: Any) -> list[WebhookDelivery]:
    """Queue ``event_type`` for every active endpoint subscribed to it (call inside the change's
    transaction). ``data`` is the event's object, or a callable of the endpoint's integration
    returning it (an object as that integration's API requests would see it)."""
    assert event_type in EVENTS, event_type
    endpoints = [e for e in WebhookEndpoint.select().where(WebhookEndpoint.active == True)  # noqa: E712
                 if event_type in e.event_set]
    if not endpoints:
        return []
    now = utcnow()
    created = []
    for endpoint in endpoints:
        payload = data(endpoint.integration) if callable(data) else data
        created.append(WebhookDelivery.create(
            endpoint=endpoint, event_type=event_type, webhook_id=f"msg_{uuid.uuid4().hex}",
            payload=body_bytes(event_type, payload, now), next_attempt_at=now))
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    request = _pending_request()
    if request is None:
        request = _SendRequest(app)
        request.ids.extend(d.id for d in created)
        db.after_commit(request)  # at once when no transaction is open
    else:
        request.ids.extend(d.id for d in created)
    return created


# --- delivery -----------------------------------------------------------------------------------
class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address, whatever the host name resolves to by now."""

    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body`` to ``url`` (after :func:`resolve`) and return the HTTP status; redirects are
    answers like any other, never followed."""
    address = resolve(url)[0]
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    kind = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    conn = kind(address, parts.hostname or "", port, timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("POST", path, body=body, headers={
            **headers, "Content-Type": "application/json", "User-Agent": "CRM-Portal-Webhooks/1"})
        response = conn.getresponse()
        response.read(65536)  # the answer does not matter beyond its status
        return response.status
    finally:
        conn.close()


def _claim(delivery_id: int, now: dt.datetime) -> bool:
    """Take the delivery for this worker (another one skips it until the claim expires)."""
    return bool(WebhookDelivery.update(next_attempt_at=now + CLAIM_FOR)
                .where((WebhookDelivery.id == delivery_id) & (WebhookDelivery.status == "pending")
                       & (WebhookDelivery.next_attempt_at <= now)).execute())


def deliver(delivery_id: int, now: dt.datetime | None = None) -> str | None:
    """Attempt one due delivery; its new status, or ``None`` when it was not due (or taken)."""
    now = now or utcnow()
    with db.atomic():
        if not _claim(delivery_id, now):
            return None
    delivery = WebhookDelivery.get_by_id(delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.active:
        WebhookDelivery.update(status="failed", last_error="endpoint disabled").where(
            WebhookDelivery.id == delivery_id).execute()
        return "failed"
    timestamp = int(now.replace(tzinfo=dt.UTC).timestamp())
    body = bytes(delivery.payload)
    headers = {"webhook-id": delivery.webhook_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": " ".join(sign(s, delivery.webhook_id, timestamp, body)
                                             for s in signing_secrets(endpoint, now))}
    status: int | None = None
    error: str | None = None
    try:
        status = post(endpoint.url, body, headers, float(current_app.config["WEBHOOK_TIMEOUT"]))
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except WebhookRefused as exc:
        error = str(exc)
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    return _record(delivery, endpoint, status, error, now)


def _record(delivery: WebhookDelivery, endpoint: WebhookEndpoint, status: int | None, error: str | None,
            now: dt.datetime) -> str:
    attempts = delivery.attempts + 1
    with db.atomic():
        if error is None:
            WebhookDelivery.update(status="delivered", attempts=attempts, last_status=status, last_error=None,
                                   delivered_at=now).where(WebhookDelivery.id == delivery.id).execute()
            WebhookEndpoint.update(failure_count=0).where(WebhookEndpoint.id == endpoint.id).execute()
            return "delivered"
        gone = status == 410
        final = gone or attempts > len(RETRY_DELAYS)
        next_at = now if final else now + RETRY_DELAYS[attempts - 1]
        WebhookDelivery.update(status="failed" if final else "pending", attempts=attempts, last_status=status,
                               last_error=error, next_attempt_at=next_at).where(
            WebhookDelivery.id == delivery.id).execute()
        failures = endpoint.failure_count + 1
        WebhookEndpoint.update(failure_count=WebhookEndpoint.failure_count + 1).where(
            WebhookEndpoint.id == endpoint.id).execute()
        if gone:
            disable(endpoint, "gone")
        elif failures >= int(current_app.config["WEBHOOK_DISABLE_AFTER_FAILURES"]):
            disable(endpoint, "failures", failures)
        return "failed" if final else "pending"


def disable(endpoint: WebhookEndpoint, cause: str, failures: int = 0) -> None:
    """Switch ``endpoint`` off and email the active administrators (once: only when it was on).
    ``cause``: ``gone`` (the receiver answered 410) or ``failures`` (``failures`` in a row)."""
    from .outbox import queue_email

    reason = "410 Gone" if cause == "gone" else f"{failures} consecutive failed attempts"
    switched = (WebhookEndpoint.update(active=False, disabled_reason=reason)
                .where((WebhookEndpoint.id == endpoint.id) & (WebhookEndpoint.active == True))  # noqa: E712
                .execute())
    if not switched:
        return
    log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
    admins = StaffUser.select().where((StaffUser.role == "admin") & (StaffUser.active == True))  # noqa: E712
    for admin in admins:
        if admin.email:
            queue_email(admin.email, "webhook-disabled", language=admin.language, url=endpoint.url,
                        integration=endpoint.integration.name, cause=cause, failures=failures)


def deliver_ids(delivery_ids: list[int], now: dt.datetime | None = None) -> None:
    """Attempt the given deliveries that are due (the worker's task after a commit)."""
    for delivery_id in delivery_ids:
        deliver(delivery_id, now)


def deliver_due(now: dt.datetime | None = None, limit: int = 100) -> int:
    """Attempt every due delivery (the periodic job); how many were attempted."""
    now = now or utcnow()
    due = [d.id for d in WebhookDelivery.select(WebhookDelivery.id)
           .where((WebhookDelivery.status == "pending") & (WebhookDelivery.next_attempt_at <= now))
           .order_by(WebhookDelivery.next_attempt_at).limit(limit)]
    return sum(deliver(i, now) is not None for i in due)


def redeliver(delivery: WebhookDelivery, now: dt.datetime | None = None) -> None:
    """Send ``delivery`` again, same id and body (receivers may drop it as a duplicate), as soon
    as the transaction commits; attempts start over."""
    WebhookDelivery.update(status="pending", attempts=0, next_attempt_at=now or utcnow(), delivered_at=None).where(
        WebhookDelivery.id == delivery.id).execute()
    request = _SendRequest(current_app._get_current_object())  # type: ignore[attr-defined]
    request.ids.append(delivery.id)
    db.after_commit(request)


# --- events of the core and modules -------------------------------------------------------------
def _record_data(module_name: str, row: Any) -> Any:
    """``row`` as the integration's API requests read it (``GET /api/v1/<module>/{id}``)."""
    from .rest.records import api_fields, as_dict, hidden_columns
    from .scoping import IntegrationPrincipal

    module = current_app.extensions["crm_portal"].modules[module_name]

    def build(integration: Integration) -> dict[str, Any]:
        return as_dict(row, api_fields(module), hidden_columns(module, IntegrationPrincipal(integration)))
    return build


def _ticket_data(ticket: Any) -> Any:
    return _record_data("tickets", ticket)


def on_ticket_created(sender: Any, *, ticket: Any, **_extra: Any) -> None:
    """Receiver of the tickets module's ``ticket-created``."""
    emit("ticket.created", _ticket_data(ticket))


def on_status_changed(sender: Any, *, ticket: Any, old: str | None, new: str, **_extra: Any) -> None:
    """Receiver of ``status-changed``: the ticket, plus ``previous_status``."""
    build = _ticket_data(ticket)
    emit("ticket.status_changed", lambda integration: {**build(integration), "previous_status": old})


def on_comment_added(sender: Any, *, ticket: Any, comment: Any, **_extra: Any) -> None:
    """Receiver of ``comment-added``: the ticket, plus the comment (id, kind, body, author, time)."""
    build = _ticket_data(ticket)
    about = {"id": comment.id, "kind": comment.kind, "body": comment.body, "author_name": comment.author_name,
             "created_at": comment.created_at}
    emit("ticket.comment_added", lambda integration: {**build(integration), "comment": about})


def on_admin_record_changed(sender: Any, *, record: Any, action: str, **_extra: Any) -> None:
    """Receiver of ``admin-record-changed`` (inside the admin's transaction): staff creating or
    changing a contact, changing a company."""
    from .models import Company, Contact

    modules = current_app.extensions["crm_portal"].modules
    if sender is Contact and action in ("created", "updated") and "contacts" in modules:
        emit(f"contact.{action}", _record_data("contacts", record))
    elif sender is Company and action == "updated" and "companies" in modules:
        emit("company.updated", _record_data("companies", record))


def init_app(app: Flask) -> None:
    """Connect the receivers of the events whose module is enabled in this application."""
    from . import signals

    signals.admin_record_changed.connect(on_admin_record_changed, weak=False)
    if "tickets" in app.extensions["crm_portal"].modules:
        from .modules.tickets import signals as tickets

        # Module-level functions: blinker connects each once, however many applications there are.
        tickets.ticket_created.connect(on_ticket_created, weak=False)
        tickets.status_changed.connect(on_status_changed, weak=False)
        tickets.comment_added.connect(on_comment_added, weak=False)
