"""Signals of the tickets module (extension points for other modules and integrations).

Connect with ``from crm_portal.modules.tickets import signals; signals.ticket_created.connect(receiver)``.
Every signal is sent inside the transaction that made the change: queue email or webhooks there
(through the outbox), keep slow work for a background job. Changes made inside
``workflow.quiet()`` (demo data, imports) send their signals too: receivers that notify people
check ``workflow.is_quiet()`` first. The module's own emails are receivers of these signals
(:mod:`crm_portal.modules.tickets.jobs`).
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()


def _signal(name: str, doc: str):
    sig = _signals.signal(name, doc)
    sig.__doc__ = doc
    return sig


ticket_created = _signal("ticket-created", """A customer opened a ticket.

Sender: the module name, "tickets". Keyword arguments: ``ticket`` (the saved Ticket, with its number),
``actor`` (crm_portal.modules.tickets.workflow.Actor), ``attachments`` (list of TicketAttachment).""")

comment_added = _signal("comment-added", """A comment was added to a ticket.

Sender: the module name, "tickets". Keyword arguments: ``ticket``, ``comment`` (TicketComment; its ``kind`` is
"public", "private" — a customer's note for support only — or "internal", staff only), ``actor``. Sent
before the state change the comment may cause (a customer's reply sends a ticket waiting for them back
to support: status-changed follows).""")

status_changed = _signal("status-changed", """A ticket moved to another workflow state.

Sender: the module name, "tickets". Keyword arguments: ``ticket``, ``old`` and ``new`` (state keys), ``actor``,
``history`` (the TicketHistory row). Creation sends ticket-created instead.""")

ticket_updated = _signal("ticket-updated", """Staff or an integration changed a ticket's fields (assignee, priority,
category, planned date …) without moving it through the workflow (``workflow.update_fields``: the REST
API's ``PATCH /api/v1/tickets/{id}``).

Sender: the module name, "tickets". Keyword arguments: ``ticket`` (the saved Ticket), ``changes`` (dict field
name → (old, new)), ``actor``. Sent inside the updating transaction.""")

ALL = [ticket_created, comment_added, status_changed, ticket_updated]
