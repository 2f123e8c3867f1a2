"""Email-in: requests and replies sent by email land on the right ticket, safely.

Three transports feed one pipeline (:mod:`.pipeline`): IMAP mailboxes staff connect in the admin,
polled by the worker (:mod:`.imap`); ``POST /api/v1/inbound-email`` (crm_portal/rest/inbound.py);
and ``crm-portal mailgate`` for an MTA pipe (:mod:`.mailgate`). See docs/email.md, "Email-in".
"""
from __future__ import annotations
