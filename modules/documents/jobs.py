"""What happens after a change: support hears of every document a customer shares."""
from __future__ import annotations

from typing import Any

from flask import current_app

from crm_portal import signals
from crm_portal.api import PortalUser, external_url, queue_email

from .models import Document


def email_support(sender: Any, *, record: Document, user: Any, **_extra: Any) -> None:
    """Receiver of ``record-created`` from this module: for a customer's upload, the document's
    summary to ``SUPPORT_EMAIL``, queued in the upload's transaction. Documents a CRM pushes
    (``user`` an integration, which has no contact) are not customers' uploads."""
    if not record.uploaded_by_customer or not isinstance(user, PortalUser):
        return
    contact = user.contact
    queue_email(current_app.config["SUPPORT_EMAIL"], "documents_uploaded",
                language=current_app.config["BABEL_DEFAULT_LOCALE"], document=record, contact=contact,
                company=contact.company if contact.company_id else None,
                admin_url=external_url("documents_document.details_view", id=record.id))


def connect() -> None:
    """Connect the module's receivers (idempotent: blinker keeps one connection per receiver)."""
    signals.record_created.connect(email_support, sender="documents", weak=False)
