"""The staff side of "view as this contact": the confirmation page that starts the read-only view
(``/admin/view-as/<contact id>/``, linked from the contacts list and editor, and linkable from
anywhere in the admin) and the exit (``/admin/view-as/stop``). See crm_portal.viewas."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _

from .. import viewas
from ..auth import load_contact
from ..db import db
from ..forms import EmptyForm
from ..staff import current_staff
from .views import StaffAccessMixin


class ViewAsView(StaffAccessMixin, BaseView):
    """Start and leave the read-only view; staff without the permission get 403."""

    roles = ("admin", "operator")

    def is_visible(self) -> bool:
        return False  # reached from a contact, never from the menu

    def _allowed_staff(self) -> Any:
        staff = current_staff()
        if staff is None or not staff.may_view_as:
            abort(403)
        return staff

    @expose("/")
    def index(self) -> Any:
        return redirect(url_for("core_contact.index_view"))  # a contact is chosen from the contacts list

    @expose("/<int:contact_id>/", methods=("GET", "POST"))
    def start(self, contact_id: int) -> Any:
        staff = self._allowed_staff()
        contact = load_contact(contact_id)
        if contact is None:
            abort(404)
        problem = viewas.refusal(contact)
        form = EmptyForm()
        if request.method == "POST" and problem is None:
            if not form.validate_on_submit():
                abort(400)
            with db.atomic():
                viewas.start(staff, contact)
            return redirect(url_for("portal.dashboard"))
        status = 400 if request.method == "POST" else 200
        return self.render("admin/view_as.html", contact=contact, problem=problem, form=form,
                           minutes=self.admin.app.config["VIEW_AS_MINUTES"]), status

    @expose("/stop", methods=("POST",))
    def stop(self) -> Any:
        form = EmptyForm()
        if not form.validate_on_submit():
            abort(400)
        with db.atomic():
            contact_id = viewas.end("left")
        if contact_id is not None:
            flash(_("You have left the view as a contact."), "info")
        return redirect(viewas.admin_page(current_staff(), contact_id))
