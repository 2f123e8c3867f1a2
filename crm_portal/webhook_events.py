"""Which webhook events exist, and the receivers that turn signals into events and change-log rows.

Every module of the registry with records (partners' included) has ``<prefix>.created`` and
``<prefix>.updated``, where the prefix is the module's ``event_name`` (``quote``) or, without
one, its name; a few modules have more (:data:`EXTRA_EVENTS`). An event's ``data`` is the record
as ``GET /api/v1/<module>/{id}`` shows it to the receiving integration, and an integration needs
``<module>:read`` to subscribe to it and to receive it (checked again when each delivery is sent).

The receivers run inside the change's transaction and also log the change for
``GET /api/v1/changes`` (:mod:`crm_portal.changes`):

- ``record-created`` / ``record-updated`` (portal forms, the quotes' decisions, API writes) and
  ``admin-record-changed`` when the model is a module's record (staff in the admin; a deletion is
  logged, it sends no event);
- the tickets module's ``ticket-created``, ``status-changed`` (plus ``ticket.closed`` on a move
  into a final state), ``comment-added`` and ``ticket-updated``;
- ``change-requested`` (``contact.change_requested``), ``colleague-changed`` and
  ``account-registered`` (a contact invited or registered: ``contact.created``; else updated).

A path that sends two signals for one change (an API write sending ``record-updated`` and the
tickets' ``ticket-updated``) queues one event: :func:`crm_portal.webhooks.emit` keeps one event
per endpoint, type and record in a transaction, with the record's final state.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from . import changes as change_log
from . import signals

if TYPE_CHECKING:
    from .api import Module

#: Events a module's records have besides ``created`` and ``updated`` (by module name).
EXTRA_EVENTS: dict[str, tuple[str, ...]] = {
    "tickets": ("status_changed", "comment_added", "closed"),
    "contacts": ("change_requested",),
    "quotes": ("accepted", "rejected"),
}
#: A quote's decision (its new status) → the event it sends.
QUOTE_DECISIONS = {"accepted": "quote.accepted", "rejected": "quote.rejected"}


def prefix(module: Module) -> str:
    """What ``module``'s events are named after (``quote`` → ``quote.created``)."""
    return module.event_name or module.name


def catalogue(registry: Any = None) -> dict[str, str]:
    """Every event of the application's modules → the read scope receiving it takes."""
    modules = (registry or current_app.extensions["crm_portal"]).modules
    found: dict[str, str] = {}
    for name, module in modules.items():
        if module.record is None:
            continue
        for action in ("created", "updated", *EXTRA_EVENTS.get(name, ())):
            found[f"{prefix(module)}.{action}"] = f"{name}:read"
    return found


def _modules() -> dict[str, Module]:
    return current_app.extensions["crm_portal"].modules


def record_data(module: Module, row: Any, **extra: Any) -> Any:
    """``row`` as each integration's API requests read it (``GET /api/v1/<module>/{id}``), plus ``extra``."""
    from .rest.records import api_fields, as_dict, hidden_columns
    from .scoping import IntegrationPrincipal

    fields = api_fields(module)

    def build(integration: Any) -> dict[str, Any]:
        return {**as_dict(row, fields, hidden_columns(module, IntegrationPrincipal(integration))), **extra}
    return build


def emit_record_event(module: Module, action: str, row: Any, **extra: Any) -> None:
    """Queue ``<prefix>.<action>`` with ``row`` (one per endpoint and record in a transaction for
    ``created`` and ``updated``: see :func:`crm_portal.webhooks.emit`)."""
    from .webhooks import emit

    key = str(row.get_id()) if action in ("created", "updated") else None
    emit(f"{prefix(module)}.{action}", record_data(module, row, **extra), key=key)


def record_changed(module: Module, row: Any, action: str) -> None:
    """``row`` of ``module`` was ``created``, ``updated`` or ``deleted``: log it and, unless
    deleted, send the event."""
    change_log.record(module.name, row.get_id(), "delete" if action == "deleted" else "upsert")
    if action in ("created", "updated"):
        emit_record_event(module, action, row)


# --- host signals -------------------------------------------------------------------------------
def _sending_module(sender: Any, module: Module | None) -> Module | None:
    found = module if module is not None else _modules().get(sender) if isinstance(sender, str) else None
    return found if found is not None and found.record is not None else None


def on_record_created(sender: Any, *, record: Any, module: Module | None = None, **_extra: Any) -> None:
    """Receiver of ``record-created`` (a portal form, an API write)."""
    found = _sending_module(sender, module)
    if found is not None:
        record_changed(found, record, "created")


def on_record_updated(sender: Any, *, record: Any, module: Module | None = None,
                      changes: dict[str, Any] | None = None, **_extra: Any) -> None:
    """Receiver of ``record-updated``; a quote's decision also sends ``quote.accepted`` / ``.rejected``."""
    module = _sending_module(sender, module)
    if module is None:
        return
    record_changed(module, record, "updated")
    status = (changes or {}).get("status")
    if module.name == "quotes" and status is not None and status[1] in QUOTE_DECISIONS:
        emit_record_event(module, QUOTE_DECISIONS[status[1]].partition(".")[2], record)


def on_admin_record_changed(sender: Any, *, record: Any, action: str, **_extra: Any) -> None:
    """Receiver of ``admin-record-changed``: staff created, changed or deleted a module's record."""
    for module in _modules().values():
        if module.record is not None and module.record is sender:
            record_changed(module, record, action)
            return


def on_change_requested(sender: Any, *, contact: Any, field: str, message: str, **_extra: Any) -> None:
    """Receiver of ``change-requested``: ``contact.change_requested`` with the field and the message.
    Returns nothing: the request is still handled (a ticket, an email) as before."""
    module = _modules().get("contacts")
    if module is not None:
        emit_record_event(module, "change_requested", contact,
                          change_request={"field": field, "message": message})


def _contact_changed(contact: Any, action: str) -> None:
    module = _modules().get("contacts")
    if module is not None:
        record_changed(module, contact, action)


def on_colleague_changed(sender: Any, *, contact: Any, change: str, **_extra: Any) -> None:
    """Receiver of ``colleague-changed``: a customer's administrator invited or changed a colleague."""
    _contact_changed(contact, "created" if change == "invited" else "updated")


def on_account_registered(sender: Any, *, contact: Any, **_extra: Any) -> None:
    """Receiver of ``account-registered``: a self-registered contact."""
    _contact_changed(contact, "created")


# --- tickets ------------------------------------------------------------------------------------
def _tickets() -> Module | None:
    return _modules().get("tickets")


def on_ticket_created(sender: Any, *, ticket: Any, **_extra: Any) -> None:
    """Receiver of ``ticket-created``."""
    module = _tickets()
    if module is not None:
        record_changed(module, ticket, "created")


def on_ticket_updated(sender: Any, *, ticket: Any, **_extra: Any) -> None:
    """Receiver of ``ticket-updated``: fields changed without a workflow move."""
    module = _tickets()
    if module is not None:
        record_changed(module, ticket, "updated")


def on_status_changed(sender: Any, *, ticket: Any, old: str | None, new: str, **_extra: Any) -> None:
    """Receiver of ``status-changed``: the ticket plus ``previous_status``; a move from an open
    state into a final one (closed, discarded …) is also ``ticket.closed``."""
    from .modules.tickets import workflow

    module = _tickets()
    if module is None:
        return
    change_log.record(module.name, ticket.id)
    emit_record_event(module, "status_changed", ticket, previous_status=old)
    target, origin = workflow.state(new), workflow.state(old) if old else None
    if target is not None and target.final and not (origin is not None and origin.final):
        emit_record_event(module, "closed", ticket, previous_status=old)


def on_comment_added(sender: Any, *, ticket: Any, comment: Any, **_extra: Any) -> None:
    """Receiver of ``comment-added``: the ticket plus the comment (id, kind, body, author, time)."""
    module = _tickets()
    if module is None:
        return
    change_log.record(module.name, ticket.id)
    about = {"id": comment.id, "kind": comment.kind, "body": comment.body, "author_name": comment.author_name,
             "created_at": comment.created_at}
    emit_record_event(module, "comment_added", ticket, comment=about)


def init_app(app: Flask) -> None:
    """Connect the receivers (module-level functions: blinker connects each once, however many
    applications there are; each receiver looks at the current application's modules)."""
    signals.record_created.connect(on_record_created, weak=False)
    signals.record_updated.connect(on_record_updated, weak=False)
    signals.admin_record_changed.connect(on_admin_record_changed, weak=False)
    signals.change_requested.connect(on_change_requested, weak=False)
    signals.colleague_changed.connect(on_colleague_changed, weak=False)
    signals.account_registered.connect(on_account_registered, weak=False)
    if "tickets" in app.extensions["crm_portal"].modules:
        from .modules.tickets import signals as tickets

        tickets.ticket_created.connect(on_ticket_created, weak=False)
        tickets.ticket_updated.connect(on_ticket_updated, weak=False)
        tickets.status_changed.connect(on_status_changed, weak=False)
        tickets.comment_added.connect(on_comment_added, weak=False)
