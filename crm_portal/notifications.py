"""Which notification emails a contact receives.

Modules declare the events they email contacts about (``Module.notifications``, a list of
:class:`~crm_portal.api.NotificationEvent`); each contact chooses in "My data" which of them they
want. A contact's choices are stored as JSON in ``Contact.notification_events``, only for the
events they changed: an event they never touched follows its declared default, so a module added
later starts with its own defaults. ``Contact.notify_by_email`` stays the master switch: off, no
notification at all. Account emails (invitation, password reset …) are not notifications: they
always go out. See docs/email.md.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flask import current_app

from .models import Contact

if TYPE_CHECKING:  # pragma: no cover
    from .api import NotificationEvent
    from .models import OutboxMessage

log = logging.getLogger("crm_portal.notifications")


def events(user: Any = None) -> list[NotificationEvent]:
    """The notification events of the application's enabled modules, in menu order; with
    ``user`` (a portal user), only those of the modules their profile lets them see."""
    registry = current_app.extensions["crm_portal"]
    modules = sorted(registry.modules.values(), key=lambda m: (m.position, m.name))
    if user is not None:
        modules = [m for m in modules if user.can(m.name, "view")]
    return [event for module in modules for event in module.notifications]


def event(key: str) -> NotificationEvent:
    """The declared event ``key``; ``LookupError`` when no enabled module declares it (a typo must
    not silently stop or start emails)."""
    for found in events():
        if found.key == key:
            return found
    raise LookupError(f"notification event {key!r} is not declared by any enabled module")


def stored_choices(contact: Contact) -> dict[str, bool]:
    """The choices the contact made (event key → on/off); damaged data counts as no choice."""
    raw = contact.notification_events
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        log.warning("contact %s: unreadable notification choices ignored", contact.id)
        return {}
    return {str(k): bool(v) for k, v in data.items()} if isinstance(data, dict) else {}


def preferences(contact: Contact) -> dict[str, bool]:
    """Every declared event with the contact's choice, or its default where they made none."""
    chosen = stored_choices(contact)
    return {found.key: chosen.get(found.key, found.default) for found in events()}


def encode_choices(contact: Contact, wanted: Mapping[str, bool]) -> str | None:
    """The JSON to store for a contact who now wants ``wanted`` (declared events only): the choices
    that differ from the defaults, plus the earlier choices on events no longer declared (a module
    turned off and on again keeps them)."""
    declared = {found.key: found.default for found in events()}
    kept = {k: v for k, v in stored_choices(contact).items() if k not in declared}
    kept.update({k: bool(v) for k, v in wanted.items() if k in declared and bool(v) != declared[k]})
    return json.dumps(kept, sort_keys=True) if kept else None


def wants_notification(contact: Contact, key: str) -> bool:
    """Whether ``contact`` is to be emailed about event ``key``: notifications on and this event
    chosen (or on by default)."""
    found = event(key)
    if contact.notify_by_email is False or not contact.email:
        return False
    return stored_choices(contact).get(key, found.default)


def notify_contact(contact: Contact, key: str, template: str, *, coalesce: str | None = None,
                   merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
                   thread: str | None = None, **context: Any) -> OutboxMessage | None:
    """Queue ``template`` to ``contact`` in their language if they want event ``key``; ``None``
    when they do not. ``coalesce``, ``merge`` and ``thread`` are those of :func:`~crm_portal.api.queue_email`:
    several news of the same thing in one transaction make one email. ``contact`` and ``name``
    (their first name, for the greeting) are added to the template's context."""
    if not wants_notification(contact, key):
        return None
    from .outbox import queue_email

    context.setdefault("name", contact.first_name)
    return queue_email(contact.email, template, language=contact.language, coalesce=coalesce, merge=merge,
                       thread=thread, contact=contact, **context)
