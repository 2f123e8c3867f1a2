""""My data" change requests become support tickets (receiver of ``crm_portal.signals.change_requested``)."""
from __future__ import annotations

from typing import Any

from flask_babel import force_locale, gettext as _, lazy_gettext as _l

from crm_portal.api import Contact, PortalUser, db

from . import workflow

FIELD_LABELS = {
    "name": _l("Name"), "email": _l("Email"), "office": _l("Office"), "role": _l("Role"),
    "company": _l("Company"), "profile": _l("Profile"), "other": _l("Something else"),
}


def open_change_request(sender: Any, *, contact: Contact, field: str, message: str, **_extra: Any):
    """Open a "request" ticket for the contact, in their language, when their profile lets them
    open and follow tickets; otherwise return ``None`` so the host emails support instead."""
    user = PortalUser(contact)
    if not (user.can("tickets", "view") and user.can("tickets", "create")):
        return None
    with force_locale(contact.language or "it"):
        title = _("Change of my data: %(field)s", field=str(FIELD_LABELS.get(field, field)))
    with db.atomic():
        return workflow.create_ticket(workflow.Actor.customer(contact), contact, title=title[:200],
                                      description=message, type="request")
