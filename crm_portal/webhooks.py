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
from .models import ApiKey, Integration, StaffUser, WebhookDelivery, WebhookEndpoint

log = logging.getLogger("crm_portal.webhooks")

#: The events of the portal's own modules (all installed); partners' modules add theirs. What an
#: application offers is :func:`crm_portal.webhook_events.catalogue` (its registry's modules).
EVENTS = ("ticket.created", "ticket.updated", "ticket.status_changed", "ticket.comment_added", "ticket.closed",
          "contact.created", "contact.updated", "contact.change_requested", "company.created", "company.updated",
          "quote.created", "quote.updated", "quote.accepted", "quote.rejected", "document.created",
          "document.updated", "service.created", "service.updated", "product.created", "product.updated",
          "deadline.created", "deadline.updated", "faq.created", "faq.updated")
#: Wait before the 2nd, 3rd … attempt; after the last one the delivery has failed (about a day).
RETRY_DELAYS = (dt.timedelta(seconds=5), dt.timedelta(minutes=5), dt.timedelta(minutes=30),
                dt.timedelta(hours=2), dt.timedelta(hours=5), dt.timedelta(hours=10))
#: How long a worker holds a delivery it is sending before another one may take it over.
CLAIM_FOR = dt.timedelta(minutes=2)
#: How long the replaced secret still signs after a rotation (receivers switch over meanwhile).
ROTATION_OVERLAP = dt.timedelta(hours=24)


#: The read scope an integration needs to receive an event's object (the same as to GET it), by
#: the prefix of the portal's own modules' events; partners' modules: ``<module>:read``.
EVENT_SCOPES = {"ticket": "tickets:read", "contact": "contacts:read", "company": "companies:read",
                "quote": "quotes:read", "document": "documents:read", "service": "services:read",
                "product": "products:read", "deadline": "deadlines:read", "faq": "faq:read"}


def available_events() -> dict[str, str]:
    """The events of the current application (its registry's modules) → the read scope of each."""
    from .webhook_events import catalogue

    return catalogue()


def read_scope(event: str) -> str:
    """The scope that reading ``event``'s object through the API takes (``ticket.created`` → ``tickets:read``)."""
    found = available_events().get(event)
    return found if found is not None else EVENT_SCOPES[event.partition(".")[0]]


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
#: Special-purpose ranges that some Python releases' ``is_global`` still counts as global (IANA's
#: registries: IETF protocol assignments, the 6to4 relay anycast, NAT64's local-use prefix).
NOT_GLOBAL = tuple(ipaddress.ip_network(net) for net in ("192.0.0.0/24", "192.88.99.0/24", "64:ff9b:1::/48"))
#: NAT64's well-known prefix: the last 32 bits are an IPv4 address the gateway connects to.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: mapped (``::ffff:a.b.c.d``), compatible
    (``::a.b.c.d``), NAT64, 6to4 (``2002::/16``) and both ends of a Teredo address."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _allowed_address(address: str) -> bool:
    """Whether a webhook may connect to ``address``: only globally routable addresses, IPv4
    addresses carried inside IPv6 ones included."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        candidates += _embedded_ipv4(ip)
    return all(c.is_global and not c.is_multicast and not any(c in net for net in NOT_GLOBAL
                                                              if net.version == c.version)
               for c in candidates)


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
    known = available_events()
    unknown = [e for e in found if e not in known]
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
        #: (endpoint id, event type, record key) → the delivery queued for it in this transaction.
        self.queued: dict[tuple[int, str, str], int] = {}

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


def emit(event_type: str, data: Any, key: str | None = None) -> list[WebhookDelivery]:
    """Queue ``event_type`` for every active endpoint subscribed to it (call inside the change's
    transaction). ``data`` is the event's object, or a callable of the endpoint's integration
    returning it (an object as that integration's API requests would see it).

    ``key`` names the record of a ``created`` / ``updated`` event: within one transaction an
    endpoint then gets one event per record, built from its final state (a second signal for the
    same change replaces the first event; an update after the creation refreshes the creation)."""
    assert event_type in available_events(), event_type
    created_type = event_type.removesuffix(".updated") + ".created" if event_type.endswith(".updated") else None
    endpoints = [e for e in WebhookEndpoint.select().where(WebhookEndpoint.active == True)  # noqa: E712
                 if event_type in e.event_set or (key is not None and created_type in e.event_set)]
    if not endpoints:
        return []
    request = _pending_request()
    fresh = request is None
    if request is None:
        request = _SendRequest(current_app._get_current_object())  # type: ignore[attr-defined]
    now = utcnow()
    created = []
    for endpoint in endpoints:
        kind = event_type
        if key is not None:
            if created_type is not None and (endpoint.id, created_type, key) in request.queued:
                kind = created_type
            earlier = request.queued.pop((endpoint.id, kind, key), None)
            if earlier is not None:
                WebhookDelivery.delete().where(WebhookDelivery.id == earlier).execute()
        if kind not in endpoint.event_set:
            continue
        payload = data(endpoint.integration) if callable(data) else data
        delivery = WebhookDelivery.create(
            endpoint=endpoint, event_type=kind, webhook_id=f"msg_{uuid.uuid4().hex}",
            payload=body_bytes(kind, payload, now), next_attempt_at=now)
        if key is not None:
            request.queued[(endpoint.id, kind, key)] = delivery.id
        created.append(delivery)
    request.ids.extend(d.id for d in created)
    if fresh:
        db.after_commit(request)  # at once when no transaction is open
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


def not_allowed(endpoint: WebhookEndpoint, event_type: str, now: dt.datetime) -> str | None:
    """Why ``endpoint``'s integration may no longer receive ``event_type`` (switched off, or no
    usable key holding the event's read scope), or ``None``: checked at every send, since keys are
    revoked and scopes change after an event is queued."""
    integration = Integration.get_by_id(endpoint.integration_id)
    if not integration.active:
        return "not sent: the integration is switched off"
    try:
        scope = read_scope(event_type)
    except KeyError:
        return "not sent: the event's module is no longer installed"
    keys = ApiKey.select(ApiKey.scopes).where(
        (ApiKey.integration == integration.id) & ApiKey.revoked_at.is_null()
        & (ApiKey.expires_at.is_null() | (ApiKey.expires_at > now)))
    if not any(scope in key.scope_set for key in keys):
        return f"not sent: no active API key of the integration holds the scope {scope}"
    return None


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
    refusal = "endpoint disabled" if not endpoint.active else not_allowed(endpoint, delivery.event_type, now)
    if refusal:
        WebhookDelivery.update(status="failed", last_error=refusal).where(
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
def init_app(app: Flask) -> None:
    """Connect the receivers turning signals into events (crm_portal.webhook_events)."""
    from . import webhook_events

    webhook_events.init_app(app)
