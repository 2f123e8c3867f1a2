"""Staff "view as this contact": the portal exactly as a contact sees it, read-only and audited.

A staff member allowed to (:attr:`StaffUser.may_view_as`: admins, and operators given the
permission) starts it from the admin (``/admin/view-as/<contact id>/``). The staff session then
carries who is being viewed and until when; on every portal request (not /admin, which keeps the
staff member's own session) the logged-in user becomes a :class:`ViewAsUser`: the contact, with
their profile, grants and scope, so the scoping gate decides what is shown exactly as for them.

Nothing of the contact's account changes: no login, no session token, no ``last_login``. Every
request other than GET, HEAD and OPTIONS to the portal is refused with 403 while the view is
active. The view ends when the staff member leaves it (``/admin/view-as/stop``), after
``VIEW_AS_MINUTES``, when their permission is withdrawn, or when the contact loses portal access
or profile; its start and end are in the audit log (``view-as-started`` / ``view-as-ended``).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask, current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from .audit import audit
from .auth import PortalUser, StaffPrincipal, load_contact
from .db import utcnow
from .models import Contact, StaffUser

SESSION_KEY = "view_as"
#: Methods that never change anything; every other one is refused while viewing as a contact.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ViewAsUser(PortalUser):
    """The contact being viewed, as the portal's current user, with the staff member behind it."""

    viewing_as = True

    def __init__(self, contact: Contact, staff: StaffUser, expires_at: dt.datetime) -> None:
        super().__init__(contact)
        self.staff = staff
        self.expires_at = expires_at

    def get_id(self) -> str:  # the session stays the staff member's
        return f"s:{self.staff.id}:{self.staff.session_token}"


def refusal(contact: Contact | None) -> str | None:
    """Why ``contact`` cannot be viewed as (translated), or ``None`` when they can."""
    if contact is None:
        return _("This contact does not exist.")
    if not contact.portal_access:
        return _("%(name)s has no portal access: there is no portal to show.", name=contact.full_name)
    if contact.profile_id is None:
        return _("%(name)s has no portal profile: there is no portal to show.", name=contact.full_name)
    return None


def current() -> ViewAsUser | None:
    """The view-as user of this request, or ``None`` when nobody is viewing as a contact."""
    user = current_user._get_current_object() if current_user else None
    return user if isinstance(user, ViewAsUser) else None


def is_active() -> bool:
    """Whether this request is a staff member's read-only view of a contact's portal."""
    return current() is not None


def start(staff: StaffUser, contact: Contact) -> dt.datetime:
    """Record in ``staff``'s session that they view the portal as ``contact`` (audited); the end."""
    started = utcnow()
    expires = started + dt.timedelta(minutes=float(current_app.config["VIEW_AS_MINUTES"]))
    previous = session.get(SESSION_KEY)
    if previous:
        end("replaced")
    audit("view-as-started", contact, user=StaffPrincipal(staff),
          details={"staff": staff.email, "contact": contact.email, "expires_at": expires.isoformat()})
    session[SESSION_KEY] = {"staff": staff.id, "contact": contact.id, "started_at": started.isoformat(),
                            "expires_at": expires.isoformat()}
    return expires


def end(reason: str = "left") -> int | None:
    """End the view of this session (audited with ``reason``); the contact's id, or ``None``."""
    data = session.pop(SESSION_KEY, None)
    if not data:
        return None
    staff = StaffUser.get_or_none(StaffUser.id == data.get("staff"))
    audit("view-as-ended", object_type=Contact._meta.table_name, object_id=data.get("contact"),
          user=StaffPrincipal(staff) if staff is not None else None,
          details={"staff": staff.email if staff else None, "reason": reason,
                   "started_at": data.get("started_at")})
    return data.get("contact")


def admin_page(staff: StaffUser | None, contact_id: Any) -> str:
    """Where a view that ended sends the staff member: the contact's page when their role opens the
    contacts editor (admins), else the admin home."""
    if staff is None or staff.role != "admin" or contact_id is None:
        return url_for("admin.index")
    return url_for("core_contact.edit_view", id=contact_id)


def _apply() -> Any:
    """Before every request: on portal pages of a view-as session, the contact becomes the current
    user and anything but a read is refused."""
    data = session.get(SESSION_KEY)
    if not data or request.path.startswith("/admin") or (request.endpoint or "").endswith("static"):
        return None
    principal = current_user._get_current_object()
    staff = principal.staff if isinstance(principal, StaffPrincipal) else None
    if staff is None or staff.id != data.get("staff"):
        session.pop(SESSION_KEY, None)  # another account (or nobody) is logged in now: not theirs
        return None
    from .db import db

    contact = load_contact(int(data.get("contact") or 0))
    try:
        expires = dt.datetime.fromisoformat(data["expires_at"])
    except (KeyError, TypeError, ValueError):
        expires = utcnow()
    reason: str | None = None
    message = refusal(contact)
    if not staff.may_view_as:
        reason, message = "permission", _("You are no longer allowed to view the portal as a contact.")
    elif message is not None:
        reason = "contact"
    elif utcnow() >= expires:
        reason, message = "expired", _("The view as a contact has ended: it lasts %(minutes)s minutes at most.",
                                       minutes=current_app.config["VIEW_AS_MINUTES"])
    if reason is not None:
        with db.atomic():
            contact_id = end(reason)
        flash(message or "", "warning")
        return redirect(admin_page(staff, contact_id))
    assert contact is not None
    user = ViewAsUser(contact, staff, expires)
    g._login_user = user  # Flask-Login's current user for the rest of this request
    if request.method not in SAFE_METHODS:
        from .views.errors import render_error

        return render_error(403, _("Read-only view"), _(
            "You are viewing the portal as %(name)s: nothing can be changed from here. "
            "Leave the view to go back to the admin.", name=contact.full_name))
    return None


def init_app(app: Flask) -> None:
    """Install the view-as switch before every other portal hook reads the current user."""
    app.before_request(_apply)

    @app.context_processor
    def _view_as_context() -> dict[str, Any]:
        return {"view_as": current()}
