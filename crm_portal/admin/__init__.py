"""Flask-Admin for staff at /admin/: the core CRM records, portal configuration and every module's views."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, flash, g
from flask_admin import Admin
from flask_admin.actions import action
from flask_admin.contrib.peewee.filters import FilterEqual
from flask_admin.model.template import EndpointLinkRowAction
from flask_admin.theme import Bootstrap4Theme
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, SelectField
from wtforms.validators import Optional

from ..account.forms import StrongPassword
from ..audit import audit
from ..auth import hash_password
from ..db import db
from ..models import (
    ApiKey,
    AuditEntry,
    Button,
    Company,
    Contact,
    Integration,
    OutboxMessage,
    Profile,
    StaffUser,
    WebhookDelivery,
    WebhookEndpoint,
    new_token,
)
from ..staff import current_staff
from .apikeys import ApiKeyView, IntegrationView
from .labels import CHOICE_LABELS, audit_action_labels, record_type_labels
from .mailin import views as mailin_views
from .preferences import timezone_choices
from .profiles import ProfileView, audit_details
from .sessions import ContactSessionsView
from .sync import CrmOwnedFieldsMixin
from .sync import add_views as add_sync_views
from .viewas import ViewAsView
from .views import AdminModelView, PortalAdminIndexView
from .webhooks import WebhookDeliveryView, WebhookEndpointView


class CompanyView(CrmOwnedFieldsMixin, AdminModelView):
    sync_type = "company"
    column_list = ("name", "vat_number", "city", "phone", "email", "created_at")
    column_searchable_list = ("name", "vat_number", "city", "email")
    column_filters = ("city", "province", "country", "created_at")
    column_default_sort = "name"
    form_excluded_columns = ("created_at",)
    column_descriptions = {"second_factor_required": _l("Second factor required for its portal users")}


class ContactView(CrmOwnedFieldsMixin, AdminModelView):
    sync_type = "contact"
    column_list = ("first_name", "last_name", "email", "company", "profile", "portal_access", "last_login")
    column_searchable_list = ("first_name", "last_name", "email", "role")
    column_filters = ("portal_access", "language", Company.name, Profile.name, "last_login")
    column_default_sort = "last_name"
    edit_template = "admin/contact_edit.html"  # adds the "view as this contact" link
    # A contact's tickets are the helpdesk's history: never deleted with the contact.
    protected_dependents = ("tickets",)

    def dependents_message(self, model, backref):
        return _("%(name)s has support tickets, which are never deleted: switch off their portal access "
                 "(deactivate the contact) instead.", name=model.full_name or model.email)
    form_excluded_columns = ("password_hash", "session_token", "last_login", "created_at")
    form_extra_fields = {
        "new_password": PasswordField(
            _l("Temporary password"), validators=[Optional(), StrongPassword("email")],
            description=_l("Set to give the contact a password they must change at first login.")),
    }

    def get_list_row_actions(self):
        actions = super().get_list_row_actions()
        staff = current_staff()
        if staff is not None and staff.may_view_as:
            actions.append(EndpointLinkRowAction("fa fa-user-secret", "view_as.start", title=_l("View as this contact"),
                                                 id_arg="contact_id"))
        return actions

    def render(self, template, **kwargs):
        staff = current_staff()
        kwargs.setdefault("may_view_as", bool(staff is not None and staff.may_view_as))
        return super().render(template, **kwargs)

    def on_model_change(self, form, model, is_created):
        from ..account import service

        model.email = (model.email or "").strip().lower()
        before = None if is_created else Contact.select(Contact.portal_access, Contact.email).where(
            Contact.id == model.id).first()
        was_enabled = bool(before and before.portal_access)
        if before is not None and before.email != model.email:
            service.login_email_changed(model, before.email)
        model._portal_access_granted = bool(model.portal_access) and not was_enabled
        if was_enabled and not model.portal_access:
            service.revoke_access(model)  # links, sessions, remember-me cookies and feed die with it
        if form.new_password.data:
            service.set_temporary_password(model, form.new_password.data)

    # Save, audit and the invitation email in one transaction: the email exists iff the change does.
    def create_model(self, form):
        with db.atomic() as txn:
            model = super().create_model(form)
            if not model:
                txn.rollback()
        return model

    def update_model(self, form, model):
        with db.atomic() as txn:
            ok = super().update_model(form, model)
            if not ok:
                txn.rollback()
        return ok

    def after_model_change(self, form, model, is_created):
        super().after_model_change(form, model, is_created)
        if getattr(model, "_portal_access_granted", False):
            from ..account.service import portal_access_granted

            if portal_access_granted(model) is not None:
                flash(_("An email has been queued for %(email)s.", email=model.email), "info")

    @action("invite", _l("Send invitation"), _l("Send a new link to set a password to the selected contacts?"))
    def action_invite(self, ids):
        from ..account.service import send_invitation

        with db.atomic():
            contacts = list(Contact.select().where(Contact.id.in_(ids)))
            # An invitation never grants access (its link refuses a contact without it).
            messages = [send_invitation(contact) for contact in contacts if contact.portal_access]
        flash(_("Invitations queued: %(count)d.", count=len(messages)), "success")
        skipped = len(contacts) - len(messages)
        if skipped:
            flash(_("Contacts without portal access were skipped: %(count)d. Switch their access on "
                    "first: they receive the invitation then.", count=skipped), "warning")

    @action("reset_second_factor", _l("Reset second factor"),
            _l("Switch off the second factor of the selected contacts?"))
    def action_reset_second_factor(self, ids):
        reset_second_factors(Contact, ids)


def reset_second_factors(model: type[Contact] | type[StaffUser], ids: Any) -> int:
    """Switch off the second factor of the selected accounts (a lost phone), audited: they log in
    with the password alone, or enrol again where a factor is required."""
    from ..second_factor import remove

    with db.atomic():
        reset = 0
        for account in model.select().where(model.id.in_(ids)):
            if remove(account):
                audit("second-factor-reset", account)
                reset += 1
    flash(_("Second factors reset: %(count)d.", count=reset), "success")
    return reset


class StaffUserView(AdminModelView):
    column_list = ("name", "email", "role", "active", "can_view_as", "last_login")
    column_labels = {"can_view_as": _l("May view as a contact")}
    column_descriptions = {"can_view_as": _l("Open the portal read-only as a contact sees it (admins always may).")}
    column_searchable_list = ("name", "email")
    column_filters = ("role", "active")
    form_excluded_columns = ("password_hash", "session_token", "last_login", "created_at")
    form_extra_fields = {
        "new_password": PasswordField(_l("New password"), validators=[Optional(), StrongPassword("email")]),
    }
    form_overrides = {"timezone": SelectField}
    form_args = {"timezone": {"label": _l("Time zone"), "choices": lambda: timezone_choices(),
                              "validate_choice": True}}

    def on_model_change(self, form, model, is_created):
        model.email = (model.email or "").strip().lower()
        model.timezone = model.timezone or None  # empty: the portal's DEFAULT_TIMEZONE
        if form.new_password.data:
            model.password_hash = hash_password(form.new_password.data)
            model.session_token = new_token()
        elif not is_created and not model.active:
            model.session_token = new_token()  # deactivating ends their sessions and remember-me cookies


    @action("reset_second_factor", _l("Reset second factor"),
            _l("Switch off the second factor of the selected staff members?"))
    def action_reset_second_factor(self, ids):
        reset_second_factors(StaffUser, ids)


class ButtonView(AdminModelView):
    column_list = ("key", "label_en", "label_it", "module", "endpoint", "url", "icon")
    column_searchable_list = ("key", "label_en", "label_it", "module")
    column_filters = ("module",)


def _audit_action(view, context, model, name):
    return view.action_label(model.action)


def _audit_record_type(view, context, model, name):
    return record_type_labels(view.admin).get(model.object_type, model.object_type) or ""


class AuditEntryView(AdminModelView):
    """The audit log: actions by readable name (the core's and every module's ``audit_labels``)."""

    can_create = can_edit = can_delete = False
    column_formatters = {"action": _audit_action, "object_type": _audit_record_type}
    column_formatters_export = {"action": _audit_action, "object_type": _audit_record_type}
    column_choices = {"actor_type": [(key, CHOICE_LABELS[key])
                                     for key in ("contact", "staff", "system", "anonymous", "integration")]}
    column_default_sort = ("id", True)
    column_list = ("created_at", "actor_type", "actor_label", "action", "object_type", "object_id", "ip_address")
    column_searchable_list = ("actor_label", "action", "object_type", "object_id")
    column_filters = ("actor_type", "action", "object_type", "created_at")
    # Profile changes read as sentences (what changed in modules, scopes, actions and buttons).
    column_formatters_detail = {"details": audit_details}

    def action_labels(self) -> dict[str, Any]:
        """Every audit action with a readable name: the core's and those of the registered views."""
        return audit_action_labels(self.admin)

    def action_label(self, action: str) -> Any:
        return self.action_labels().get(action, action)

    def get_filters(self) -> Any:
        # The action filter offers the actions by name; its text filters stay for unknown ones.
        filters = list(super().get_filters() or ())
        options = lambda: sorted(self.action_labels().items(), key=lambda item: str(item[1]))  # noqa: E731
        filters.insert(0, FilterEqual(AuditEntry.action, self.label_of("action"), options=options))
        return filters


class OutboxMessageView(AdminModelView):
    """Every email of the portal and its delivery state; failed ones can be sent again. Bodies are
    not shown: they may carry one-time links."""

    roles = ("admin", "operator")
    can_create = can_edit = False
    column_default_sort = ("id", True)
    column_list = ("created_at", "to_address", "subject", "template", "language", "status", "attempts",
                   "next_attempt_at", "sent_at", "last_error")
    column_searchable_list = ("to_address", "subject", "template")
    column_filters = ("status", "template", "language", "created_at")
    column_exclude_list = ("body_text", "body_html")
    column_details_exclude_list = ("body_text", "body_html")
    column_export_exclude_list = ("body_text", "body_html")

    @action("retry", _l("Retry"), _l("Send the selected messages again?"))
    def action_retry(self, ids):
        from ..mail import retry

        count = retry(int(i) for i in ids)
        flash(_("Messages queued again: %(count)d.", count=count), "success")


def init_app(app: Flask) -> Admin:
    # Created inside the factory: a module-level Admin would be shared between test applications.
    admin = Admin(
        app, name=app.config["PORTAL_NAME"], index_view=PortalAdminIndexView(url="/admin"),
        theme=Bootstrap4Theme(swatch="default"), csp_nonce_generator=lambda: g.get("csp_nonce", ""),
        # Flask-Admin's Italian messages that its compiled catalogue lacks (domain "admin").
        translations_path=str(Path(__file__).resolve().parent.parent / "translations"),
    )
    crm = _l("CRM")
    portal = _l("Portal")
    admin.add_view(CompanyView(Company, name=_l("Companies"), category=crm, endpoint="core_company"))
    admin.add_view(ContactView(Contact, name=_l("Contacts"), category=crm, endpoint="core_contact"))
    admin.add_view(ProfileView(Profile, name=_l("Profiles"), category=portal, endpoint="core_profile"))
    admin.add_view(ButtonView(Button, name=_l("Dashboard buttons"), category=portal, endpoint="core_button"))
    admin.add_view(StaffUserView(StaffUser, name=_l("Staff"), category=portal, endpoint="core_staff"))
    admin.add_view(AuditEntryView(AuditEntry, name=_l("Audit log"), category=portal, endpoint="core_audit"))
    admin.add_view(ViewAsView(name=_l("View as a contact"), endpoint="view_as", url="/admin/view-as"))
    admin.add_view(ContactSessionsView(name=_l("Sessions of a contact"), endpoint="contact_sessions",
                                       url="/admin/contact-sessions"))
    admin.add_view(OutboxMessageView(OutboxMessage, name=_l("Email outbox"), category=portal,
                                     endpoint="core_outbox"))
    api = _l("REST API")
    admin.add_view(IntegrationView(Integration, name=_l("Integrations"), category=api, endpoint="core_integration"))
    admin.add_view(ApiKeyView(ApiKey, name=_l("API keys"), category=api, endpoint="core_api_key"))
    admin.add_view(WebhookEndpointView(WebhookEndpoint, name=_l("Webhooks"), category=api,
                                       endpoint="core_webhook_endpoint"))
    admin.add_view(WebhookDeliveryView(WebhookDelivery, name=_l("Webhook deliveries"), category=api,
                                       endpoint="core_webhook_delivery"))
    add_sync_views(admin, crm)
    for view in mailin_views():
        admin.add_view(view)
    from .preferences import language_names

    app.jinja_env.globals["admin_language_names"] = language_names
    registry = app.extensions["crm_portal"]
    for module in list(registry.modules.values()):
        try:
            views = list(module.admin_views())
        except Exception as exc:  # named and skipped like any broken plugin
            registry.fail(module.name, exc, app.config["MODULES_STRICT"])
            continue
        for view in views:
            admin.add_view(view)
    return admin
