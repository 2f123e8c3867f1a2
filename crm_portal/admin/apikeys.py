"""The REST API's integrations and keys in the admin: listed (never a secret), a new key issued
with its token shown once on the page that creates it, keys revoked; all of it audited."""
from __future__ import annotations

from typing import Any

from flask import flash, request
from flask_admin import expose
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..audit import audit
from ..db import db
from ..models import ApiKey
from .views import AdminModelView

KEY_LABELS = {
    "integration": _l("Integration"),
    "key_id": _l("Key id"),
    "scopes": _l("Scopes"),
    "allowed_ips": _l("Allowed IP ranges"),
    "expires_at": _l("Expires"),
    "revoked_at": _l("Revoked"),
    "last_used_at": _l("Last used"),
    "secret_hash": _l("Secret (hash)"),
}


CORE_SCOPE_LABELS = {
    "sync:write": _l("Synchronise with the CRM (%(scope)s)"),
    "webhooks:manage": _l("Manage webhooks (%(scope)s)"),
    "email:ingest": _l("Receive email for tickets (%(scope)s)"),
}
CORE_MODULE_LABELS = {"companies": _l("Companies"), "contacts": _l("Contacts")}


def scope_label(scope: str) -> str:
    """A scope as staff read it: what it allows, with its code (the code is what the CLI takes)."""
    from flask import current_app

    if scope in CORE_SCOPE_LABELS:
        return str(CORE_SCOPE_LABELS[scope]) % {"scope": scope}
    name, _sep, access = scope.partition(":")
    module = current_app.extensions["crm_portal"].modules.get(name)
    label = module.label if module is not None else CORE_MODULE_LABELS.get(name, name)
    if access == "read":
        return _("Read %(module)s (%(scope)s)", module=label, scope=scope)
    return _("Write %(module)s (%(scope)s)", module=label, scope=scope)


class NewKeyForm(FlaskForm):
    integration = StringField(_l("Integration"), validators=[DataRequired(), Length(max=100)],
                              description=_l("The system using the key; a new name creates the integration."))
    scopes = SelectMultipleField(
        _l("Scopes"), validators=[DataRequired()], option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False),
        description=_l("Writing contacts (contacts:write) or synchronising with the CRM (sync:write) can change a "
                       "contact's email address, and so who receives their password resets: give these scopes only "
                       "to systems you trust as you trust your staff. The old address is told of every change."))
    expires_days = IntegerField(_l("Expires after (days)"), validators=[Optional(), NumberRange(min=1, max=3650)],
                                description=_l("Empty: the key does not expire."))
    allowed_ips = TextAreaField(_l("Allowed IP ranges"), validators=[Optional(), Length(max=2000)],
                                description=_l("One address or CIDR range per line; empty: any address."))

    def validate_integration(self, field: Any) -> None:
        if not (field.data or "").isprintable():
            raise ValidationError(_("Use printable characters only."))

    def validate_allowed_ips(self, field: Any) -> None:
        from ..rest.keys import KeyRefused, parse_networks

        try:
            parse_networks([field.data or ""])
        except KeyRefused as exc:
            raise ValidationError(_("Give addresses or CIDR ranges (10.0.0.0/8), one per line.")) from exc


class IntegrationView(AdminModelView):
    column_list = ("name", "active", "created_at")
    column_searchable_list = ("name",)
    column_filters = ("active",)
    form_excluded_columns = ("created_at", "api_keys")
    can_delete = False  # switch an integration off instead: its keys stop working at once
    field_labels = {"api_keys": _l("API keys")}


class ApiKeyView(AdminModelView):
    can_edit = False
    can_delete = False
    can_view_details = True
    column_list = ("integration", "key_id", "scopes", "allowed_ips", "expires_at", "revoked_at", "last_used_at",
                   "created_at")
    column_details_list = column_list
    column_export_list = column_list
    column_searchable_list = ("key_id", "scopes")
    column_filters = ("revoked_at", "expires_at", "last_used_at")
    column_default_sort = ("id", True)
    field_labels = KEY_LABELS
    audit_labels = {"api_key.create": _l("API key created"), "api_key.revoke": _l("API key revoked")}

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self) -> Any:
        """Issue a key: the token is on the answer to this request and nowhere else, ever."""
        from ..rest.keys import KeyRefused, all_scopes, create_key

        form = NewKeyForm()
        form.scopes.choices = [(s, scope_label(s)) for s in all_scopes()]
        if request.method == "POST" and form.validate_on_submit():
            try:
                with db.atomic():
                    new = create_key(form.integration.data, form.scopes.data, expires_days=form.expires_days.data,
                                     allowed_ips=[form.allowed_ips.data or ""])
                    audit("api_key.create", new.key, details={"integration": new.key.integration.name,
                                                               "key_id": new.key.key_id, "scopes": new.key.scopes})
            except KeyRefused as exc:
                flash(str(exc), "error")
            else:
                return self.render("admin/api_key_created.html", key=new.key, token=new.token)
        status = 400 if request.method == "POST" else 200
        return self.render("admin/api_key_new.html", form=form), status

    @action("revoke", _l("Revoke"), _l("Revoke the selected keys? They stop working at once."))
    def action_revoke(self, ids: Any) -> None:
        from ..rest.keys import revoke_key

        # Runs inside handle_action's transaction, with the audit entries.
        count = 0
        for key in ApiKey.select().where(ApiKey.id.in_(ids)):
            if revoke_key(key):
                audit("api_key.revoke", key, details={"key_id": key.key_id})
                count += 1
        flash(_("Keys revoked: %(count)d.", count=count), "success")
