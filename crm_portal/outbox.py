"""Queueing email: render it in the recipient's language and store it in the outbox.

Call :func:`queue_email` inside the transaction that makes the change the email is about: the
message exists if and only if the change does. Once that transaction commits, the worker is asked
to send what it queued (one request per transaction); a rolled back transaction sends nothing.
Should that request be lost, the worker's periodic job sends the message within a minute.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, render_template
from flask_babel import force_locale
from jinja2 import TemplateNotFound

from .db import db
from .models import OutboxMessage


def _language(language: str | None) -> str:
    languages = current_app.config["LANGUAGES"]
    return language if language in languages else current_app.config["BABEL_DEFAULT_LOCALE"]


def render_email(template: str, language: str | None, **context: Any) -> tuple[str, str, str | None]:
    """Subject, plain text and HTML (or ``None``) of ``email/<template>.*`` in ``language``.

    Themes override these templates like any other. Every template is autoescaped except the
    ``.txt`` ones, which are plain text by nature.
    """
    with force_locale(_language(language)):
        subject = render_template(f"email/{template}.subject.txt", **context).strip()
        text = render_template(f"email/{template}.txt", **context)
        try:
            html = render_template(f"email/{template}.html", **context)
        except TemplateNotFound:
            html = None
    return " ".join(subject.split())[:300], text, html


Merge = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def _union(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    return {**earlier, **later}


_answering_mail: contextvars.ContextVar[bool] = contextvars.ContextVar("answering_mail", default=False)


@contextlib.contextmanager
def answering_mail() -> Iterator[None]:
    """Email queued inside this block answers an incoming email (crm_portal.mailin): it is marked
    ``Auto-Submitted: auto-replied`` (RFC 3834), so that the sender's auto-responder stays silent."""
    token = _answering_mail.set(True)
    try:
        yield
    finally:
        _answering_mail.reset(token)


def is_answering_mail() -> bool:
    """Whether email queued now answers an incoming email (inside :func:`answering_mail`)."""
    return _answering_mail.get()


def queue_email(to: str, template: str, *, language: str | None = None, coalesce: str | None = None,
                merge: Merge | None = None, thread: str | None = None, **context: Any) -> OutboxMessage:
    """Render ``template`` for ``to`` in ``language`` and store it in the outbox (extension point).

    With ``coalesce`` (a key naming what the email is about, e.g. ``"tickets:42"``), a second
    email to the same address with the same key in the same transaction is not a second message:
    the first one is rendered again, with ``template`` and the two contexts combined by ``merge``
    (default: the later values win), so a reply that also changes a state is one email.

    With ``thread`` (what the email is about, ``"tickets:42"``), the message threads with the other
    emails of that thread in the recipient's mail client, and a reply to it comes back to the same
    record (see :func:`crm_portal.mail.build_message` and :mod:`crm_portal.mailin`).
    """
    pending = _pending_request() if coalesce else None
    if pending is not None and coalesce:
        earlier = pending.coalesced.get((to, coalesce))
        if earlier is not None:
            message_id, earlier_context = earlier
            context = (merge or _union)(earlier_context, context)
            subject, text, html = render_email(template, language, **context)
            updated = (OutboxMessage.update(template=template, language=_language(language), subject=subject,
                                            body_text=text, body_html=html)
                       .where(OutboxMessage.id == message_id).execute())
            if updated:
                pending.coalesced[(to, coalesce)] = (message_id, context)
                return OutboxMessage.get_by_id(message_id)
            # The earlier message went with a savepoint that rolled back: queue this one afresh.
    subject, text, html = render_email(template, language, **context)
    message = OutboxMessage.create(to_address=to, template=template, language=_language(language),
                                   subject=subject, body_text=text, body_html=html, thread=thread,
                                   auto_submitted="auto-replied" if _answering_mail.get() else None)
    request = _deliver_after_commit(message.id)
    if coalesce and request is not None:
        request.coalesced[(to, coalesce)] = (message.id, context)
    return message


class _DeliveryRequest:
    """The after-commit callback of one transaction: asks the worker to send the messages the
    transaction queued. Registered once per transaction; a rollback discards it with them. It also
    remembers the transaction's messages queued with a ``coalesce`` key."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.ids: list[int] = []
        self.coalesced: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}

    def __call__(self) -> None:
        from .jobs import kick_delivery

        kick_delivery(self.ids, app=self.app)


def _pending_request() -> _DeliveryRequest | None:
    """The delivery request of the open transaction, if it queued anything yet."""
    if not db.in_transaction():
        return None
    # peewee keeps the open transaction's callbacks per connection: find ours.
    callbacks = getattr(getattr(db.obj, "_state", None), "commit_callbacks", None) or []
    return next((cb for cb in callbacks if isinstance(cb, _DeliveryRequest)), None)


def _deliver_after_commit(message_id: int) -> _DeliveryRequest | None:
    """Add the message to the open transaction's delivery request (registering one if needed);
    the request, or ``None`` when no transaction is open (then the worker is asked at once)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    request = _pending_request()
    if request is None:
        request = _DeliveryRequest(app)
        request.ids.append(message_id)
        db.after_commit(request)  # runs at once when no transaction is open
        return request if db.in_transaction() else None
    request.ids.append(message_id)
    return request


#: Where links point in development when neither ``EXTERNAL_URL`` nor ``SERVER_NAME`` is set.
DEVELOPMENT_URL = "http://127.0.0.1:5000"


def external_base(app: Flask) -> str:
    """The base URL every absolute link starts with: ``EXTERNAL_URL``, else (development)
    ``SERVER_NAME`` with ``PREFERRED_URL_SCHEME`` and ``APPLICATION_ROOT``, else
    :data:`DEVELOPMENT_URL`. Never the request's ``Host`` or ``X-Forwarded-Host``: anyone can
    forge those, and a forged one would send the recipient of a reset link to another site."""
    configured = app.config.get("EXTERNAL_URL")
    if configured:
        return str(configured).rstrip("/")
    server_name = app.config.get("SERVER_NAME")
    if server_name:
        scheme = app.config.get("PREFERRED_URL_SCHEME") or "http"
        root = (app.config.get("APPLICATION_ROOT") or "/").rstrip("/")
        return f"{scheme}://{server_name}{root}"
    return DEVELOPMENT_URL


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute link for an email or another site (a calendar feed), built from
    :func:`external_base` with the application's URL map: the current request, if any, is never
    consulted."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    base = urlsplit(external_base(app))
    adapter = app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)
    app.inject_url_defaults(endpoint, values)
    return adapter.build(endpoint, values, force_external=True)
