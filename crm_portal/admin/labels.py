"""The names staff read in the admin: field labels, choice labels and audit actions, translated.

:class:`~crm_portal.admin.views.AdminModelView` labels every column, form field and filter of a
view from, in order: the view's ``column_labels``, its ``field_labels`` (a module's own names, in
the module's catalogue), a ``verbose_name`` given on the peewee field, then :data:`FIELD_LABELS`
(the names every model shares). A module's new view is translated as far as its field names are
shared ones; its own names go in its ``field_labels``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import peewee as pw
from flask_babel import lazy_gettext as _l

#: Field names shared by the core models and most modules.
FIELD_LABELS: dict[str, Any] = {
    "id": _l("Id"),
    "name": _l("Name"),
    "first_name": _l("First name"),
    "last_name": _l("Last name"),
    "email": _l("Email"),
    "phone": _l("Phone"),
    "mobile": _l("Mobile"),
    "office": _l("Office"),
    "role": _l("Role"),
    "company": _l("Company"),
    "contact": _l("Contact person"),
    "profile": _l("Profile"),
    "language": _l("Language"),
    "timezone": _l("Time zone"),
    "portal_access": _l("Portal access"),
    "must_change_password": _l("Must change password"),
    "notify_by_email": _l("Email notifications"),
    "last_login": _l("Last login"),
    "created_at": _l("Created"),
    "updated_at": _l("Last update"),
    "vat_number": _l("VAT number"),
    "address": _l("Address"),
    "city": _l("City"),
    "postal_code": _l("Postal code"),
    "province": _l("Province"),
    "country": _l("Country"),
    "website": _l("Website"),
    "email_domain": _l("Email domain"),
    "notes": _l("Notes"),
    "reserved_conditions": _l("Reserved conditions"),
    "label_en": _l("Label (English)"),
    "label_it": _l("Label (Italian)"),
    "description": _l("Description"),
    "description_en": _l("Description (English)"),
    "description_it": _l("Description (Italian)"),
    "assignable": _l("Assignable by customers"),
    "second_factor_required": _l("Second factor required"),
    "active": _l("Active"),
    "key": _l("Key"),
    "icon": _l("Icon"),
    "module": _l("Module"),
    "endpoint": _l("Page (endpoint)"),
    "args": _l("Page arguments"),
    "url": _l("Address (URL)"),
    "style": _l("Style"),
    "position": _l("Position"),
    "scope": _l("Visibility"),
    "actions": _l("Actions"),
    "button": _l("Button"),
    "actor_type": _l("Actor type"),
    "actor_id": _l("Actor id"),
    "actor_label": _l("Actor"),
    "action": _l("Action"),
    "object_type": _l("Record type"),
    "object_id": _l("Record id"),
    "details": _l("Details"),
    "ip_address": _l("IP address"),
    "template": _l("Template"),
    "to_address": _l("Recipient"),
    "subject": _l("Subject"),
    "body_text": _l("Text"),
    "body_html": _l("HTML text"),
    "status": _l("Status"),
    "attempts": _l("Attempts"),
    "next_attempt_at": _l("Next attempt"),
    "last_error": _l("Last error"),
    "sent_at": _l("Sent"),
    "title": _l("Title"),
    "number": _l("Number"),
    "date": _l("Date"),
    "category": _l("Category"),
    "public": _l("Public"),
    "quantity": _l("Quantity"),
}

#: Each language by its own name (not translated): "Italiano" reads the same on an English page.
LANGUAGE_NAMES = {"it": "Italiano", "en": "English"}

#: Labels of stored choice values, whatever the field (``it`` → "Italiano", ``admin`` → "Administrator").
CHOICE_LABELS: dict[str, Any] = {
    **LANGUAGE_NAMES,
    "admin": _l("Administrator"),
    "operator": _l("Operator"),
    "own": _l("Own records"),
    "company": _l("Company's records"),
    "pending": _l("Pending"),
    "sent": _l("Sent"),
    "failed": _l("Failed"),
    "contact": _l("Contact person"),
    "staff": _l("Staff"),
    "system": _l("System"),
    "anonymous": _l("Anonymous"),
    "integration": _l("Integration"),
    "invite": _l("Invitation"),
    "reset": _l("Password reset"),
}

#: Audit actions of the core, by readable name (modules add theirs with a view's ``audit_labels``).
AUDIT_LABELS: dict[str, Any] = {
    "admin-created": _l("Created in the admin"),
    "admin-updated": _l("Changed in the admin"),
    "admin-deleted": _l("Deleted in the admin"),
    "created": _l("Created"),
    "updated": _l("Changed"),
    "staff-login": _l("Staff login"),
    "staff-login-failed": _l("Failed staff login"),
    "login": _l("Login"),
    "login-failed": _l("Failed login"),
    "second-factor-failed": _l("Wrong second-factor code"),
    "second-factor-verified": _l("Second-factor code accepted"),
    "recovery-code-used": _l("Recovery code used"),
    "second-factor-enabled": _l("Second factor switched on"),
    "second-factor-disabled": _l("Second factor switched off"),
    "second-factor-reset": _l("Second factor reset by staff"),
    "second-factor-recovery-codes": _l("New recovery codes"),
    "logout": _l("Logout"),
    "registered": _l("Registered"),
    "account-updated": _l("Own data changed"),
    "change-requested": _l("Change of data requested"),
    "invitation-sent": _l("Invitation sent"),
    "invitation-accepted": _l("Invitation accepted"),
    "access-enabled-sent": _l("Portal access announced"),
    "portal-access-revoked": _l("Portal access revoked"),
    "password-reset-requested": _l("Password reset requested"),
    "password-reset": _l("Password reset"),
    "password-changed": _l("Password changed"),
    "login-email-changed": _l("Login email address changed"),
    "temporary-password-set": _l("Temporary password set"),
    "staff-password-reset-requested": _l("Staff password reset requested"),
    "staff-password-reset": _l("Staff password reset"),
    "staff-language-changed": _l("Admin language changed"),
    "staff-preferences-changed": _l("Admin preferences changed"),
    "notifications-updated": _l("Email notifications changed"),
    "view-as-started": _l("Portal viewed as the contact"),
    "view-as-ended": _l("View as the contact ended"),
    "session-ended": _l("One session logged out"),
    "sessions-ended": _l("Other sessions logged out"),
    "sessions-ended-by-staff": _l("All sessions logged out by staff"),
    # Written by the contacts module: a customer's administrator (the actor) acting on a colleague.
    "colleague-invited": _l("Invited by a colleague"),
    "colleague-access-revoked": _l("Portal access switched off by a colleague"),
    "colleague-access-enabled": _l("Portal access switched on by a colleague"),
    "colleague-profile-changed": _l("Profile changed by a colleague"),
}


def audit_action_labels(admin: Any) -> dict[str, Any]:
    """Every audit action with a readable name: the core's and the ``audit_labels`` of the views."""
    labels = dict(AUDIT_LABELS)
    for view in getattr(admin, "_views", ()):
        labels.update(getattr(view, "audit_labels", None) or {})
    return labels


def record_type_labels(admin: Any) -> dict[str, Any]:
    """The audit log's record types (table names) by the name of the admin view listing them."""
    labels: dict[str, Any] = {}
    for view in getattr(admin, "_views", ()):
        model = getattr(view, "model", None)
        if model is not None:
            labels.setdefault(model._meta.table_name, view.name)
    return labels


def _auto_verbose_name(name: str) -> str:
    """The ``verbose_name`` peewee makes up from a field name (not one a model gave)."""
    import re

    return re.sub("_+", " ", name).title()


def field_label(name: str, model: type[pw.Model] | None = None,
                own: Mapping[str, Any] | None = None) -> Any | None:
    """The translated label of field ``name``, or ``None`` if nothing names it."""
    if own and name in own:
        return own[name]
    field = model._meta.fields.get(name) if model is not None else None
    if field is not None and field.verbose_name and field.verbose_name != _auto_verbose_name(name):
        return field.verbose_name
    return FIELD_LABELS.get(name)


def choice_label(value: Any, own: Mapping[Any, Any] | None = None) -> Any:
    """A stored choice value by its translated label (the value itself when none is known)."""
    if own and value in own:
        return own[value]
    return CHOICE_LABELS.get(value, value) if isinstance(value, str) else value
