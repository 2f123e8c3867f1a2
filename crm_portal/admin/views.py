"""Base Flask-Admin views for staff: access by role, 404 for unknown ids, audit of every change."""
from __future__ import annotations

from typing import Any

import peewee as pw
from flask import abort, redirect, request, url_for
from flask_admin import AdminIndexView, expose
from flask_admin.contrib.peewee import ModelView
from flask_login import current_user

from .. import signals


def staff_allowed(roles: tuple[str, ...]) -> bool:
    user = current_user
    return bool(user and user.is_authenticated and getattr(user, "is_staff", False)
                and user.staff.role in roles)


class StaffAccessMixin:
    """Visible and usable only by logged-in staff with one of ``roles``; anyone else is sent to
    the staff login (anonymous) or gets 404 (a portal contact never learns what is behind it)."""

    roles: tuple[str, ...] = ("admin",)

    def is_accessible(self) -> bool:
        return staff_allowed(self.roles)

    def inaccessible_callback(self, name: str, **kwargs: Any):
        if not current_user.is_authenticated:
            return redirect(url_for("admin.login", next=request.full_path))
        abort(404 if not getattr(current_user, "is_staff", False) else 403)


class AdminModelView(StaffAccessMixin, ModelView):
    """Base of every model view in Flask-Admin (extension point for modules).

    Set ``roles = ("admin", "operator")`` to let operators in. Changes are audited and announced
    with :data:`crm_portal.signals.admin_record_changed`.
    """

    page_size = 50
    can_set_page_size = True
    can_export = True
    can_view_details = True
    form_excluded_columns = ("password_hash", "session_token")
    column_exclude_list = ("password_hash", "session_token")
    column_details_exclude_list = ("password_hash", "session_token")
    column_export_exclude_list = ("password_hash", "session_token")

    def __init__(self, model: type[pw.Model], *args: Any, **kwargs: Any) -> None:
        if self.column_searchable_list is None:
            text_fields = [f.name for f in model._meta.sorted_fields
                           if isinstance(f, (pw.CharField, pw.TextField)) and f.name not in self.form_excluded_columns]
            self.column_searchable_list = text_fields[:6]
        if self.column_filters is None:
            self.column_filters = [f.name for f in model._meta.sorted_fields
                                   if isinstance(f, (pw.BooleanField, pw.DateField, pw.DateTimeField, pw.CharField))
                                   and f.name not in self.form_excluded_columns
                                   and (f.index or f.unique or f.choices or isinstance(f, pw.BooleanField))][:8]
        super().__init__(model, *args, **kwargs)

    def get_one(self, id: Any) -> Any:
        # Flask-Admin answers an unknown id with a redirect and a flash; we want a plain 404.
        try:
            found = super().get_one(id)
        except (ValueError, TypeError, pw.DataError):
            found = None
        if found is None:
            abort(404)
        return found

    def after_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        from ..audit import audit

        audit("admin-created" if is_created else "admin-updated", model)
        signals.admin_record_changed.send(type(model), record=model,
                                          action="created" if is_created else "updated", staff=current_user)

    def after_model_delete(self, model: Any) -> None:
        from ..audit import audit

        audit("admin-deleted", model)
        signals.admin_record_changed.send(type(model), record=model, action="deleted", staff=current_user)


class PortalAdminIndexView(AdminIndexView):
    """The admin home plus staff login/logout (``/admin/login``)."""

    def is_accessible(self) -> bool:
        return staff_allowed(("admin", "operator"))

    def inaccessible_callback(self, name: str, **kwargs: Any):
        if name in ("login", "logout"):
            return None
        return StaffAccessMixin.inaccessible_callback(self, name, **kwargs)

    def _handle_view(self, name: str, **kwargs: Any):
        if name in ("login", "logout"):
            return None
        return super()._handle_view(name, **kwargs)

    @expose("/")
    def index(self):
        from ..models import AuditEntry, Company, Contact

        stats = {
            "companies": Company.select().count(),
            "contacts": Contact.select().count(),
            "portal_users": Contact.select().where(Contact.portal_access == True).count(),  # noqa: E712
        }
        recent = AuditEntry.select().order_by(AuditEntry.id.desc()).limit(10)
        return self.render("admin/portal_index.html", stats=stats, recent=recent)

    @expose("/login", methods=("GET", "POST"))
    def login(self):
        from .login import staff_login

        return staff_login(self)

    @expose("/logout", methods=("POST",))
    def logout(self):
        from .login import staff_logout

        return staff_logout()
