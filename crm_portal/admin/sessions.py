"""Staff's view of a contact's signed-in browsers (crm_portal.account.sessions):
``/admin/contact-sessions/<contact id>/`` lists them, read-only, and ends them all (audited as
``sessions-ended-by-staff``). Linked from the contact editor."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _

from ..account import sessions
from ..audit import audit
from ..auth import load_contact
from ..db import db
from ..forms import EmptyForm
from .views import StaffAccessMixin


class ContactSessionsView(StaffAccessMixin, BaseView):
    """A contact's sessions for the staff who manage contacts."""

    roles = ("admin", "operator")

    def is_visible(self) -> bool:
        return False  # reached from a contact, never from the menu

    @expose("/")
    def index(self) -> Any:
        return redirect(url_for("core_contact.index_view"))

    @expose("/<int:contact_id>/", methods=("GET", "POST"))
    def contact(self, contact_id: int) -> Any:
        contact = load_contact(contact_id)
        if contact is None:
            abort(404)
        form = EmptyForm()
        if request.method == "POST":
            if not form.validate_on_submit():
                abort(400)
            with db.atomic():
                ended = sessions.revoke_all(contact)
                audit("sessions-ended-by-staff", contact, details={"ended": ended})
            flash(_("Every session of %(name)s has been logged out.", name=contact.full_name), "success")
            return redirect(url_for(".contact", contact_id=contact.id))
        return self.render("admin/contact_sessions.html", contact=contact, form=form,
                           login_sessions=sessions.rows(sessions.live(contact)))
