"""Webhook endpoints and their delivery log in the admin (administrators only): states, attempts,
last errors; an endpoint switched on or off; deliveries sent again. Secrets and bodies never shown."""
from __future__ import annotations

from typing import Any

from flask import flash
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..models import WebhookDelivery, WebhookEndpoint
from .views import AdminModelView

LABELS = {
    "integration": _l("Integration"),
    "url": _l("Address"),
    "events": _l("Events"),
    "active": _l("Active"),
    "disabled_reason": _l("Why it was switched off"),
    "failure_count": _l("Failures in a row"),
    "created_at": _l("Created"),
    "endpoint": _l("Endpoint"),
    "event_type": _l("Event"),
    "webhook_id": _l("Webhook id"),
    "status": _l("Status"),
    "attempts": _l("Attempts"),
    "next_attempt_at": _l("Next attempt"),
    "last_status": _l("Last HTTP status"),
    "last_error": _l("Last error"),
    "delivered_at": _l("Delivered"),
}
SECRET_COLUMNS = ("secret", "previous_secret", "previous_until")
#: The API's webhook changes, as the audit log names them.
AUDIT_LABELS = {
    "webhook.created": _l("Webhook created"),
    "webhook.updated": _l("Webhook changed"),
    "webhook.deleted": _l("Webhook deleted"),
    "webhook.secret_rotated": _l("Webhook secret replaced"),
    "webhook.redelivered": _l("Webhook delivery sent again"),
}


class WebhookEndpointView(AdminModelView):
    """Endpoints are created through the API (which shows the secret once); here they are read
    and switched on or off."""

    can_create = can_delete = False
    can_view_details = True
    audit_labels = AUDIT_LABELS
    column_list = ("integration", "url", "events", "active", "disabled_reason", "failure_count", "created_at")
    column_details_list = column_list
    column_export_list = column_list
    column_searchable_list = ["url", "events"]
    column_filters = ["active"]
    column_default_sort = ("id", True)
    form_columns = ("active",)
    field_labels = LABELS

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        super().on_model_change(form, model, is_created)
        if model.active:  # switched on again: a fresh start
            model.failure_count, model.disabled_reason = 0, None


class WebhookDeliveryView(AdminModelView):
    """The delivery log; *Redeliver* sends the selected deliveries again (same id and body)."""

    can_create = can_edit = can_delete = False
    can_view_details = True
    column_list = ("created_at", "endpoint", "event_type", "status", "attempts", "next_attempt_at", "last_status",
                   "last_error", "delivered_at")
    column_details_list = ("created_at", "endpoint", "event_type", "webhook_id", "status", "attempts",
                           "next_attempt_at", "last_status", "last_error", "delivered_at")
    column_export_list = column_details_list
    column_searchable_list = ["event_type", "webhook_id", "last_error"]
    column_filters = ["status", "event_type", "created_at"]
    column_default_sort = ("id", True)
    field_labels = LABELS
    choice_labels = {"status": {"delivered": _l("Delivered")}}

    @action("redeliver", _l("Redeliver"), _l("Send the selected deliveries again?"))
    def action_redeliver(self, ids: Any) -> None:
        from ..webhooks import redeliver

        # Runs inside handle_action's transaction: the worker is asked once it commits.
        count = 0
        query = (WebhookDelivery.select().join(WebhookEndpoint)
                 .where(WebhookDelivery.id.in_([int(i) for i in ids]) & (WebhookEndpoint.active == True)))  # noqa: E712
        for delivery in query:
            redeliver(delivery)
            count += 1
        flash(_("Deliveries queued again: %(count)d.", count=count), "success")
