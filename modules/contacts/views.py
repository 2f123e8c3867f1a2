"""A company's own administrator at work (the ``manage`` action): invite a colleague, switch a
colleague's portal access off and on, give them one of the profiles staff made assignable. The
list and detail pages are the host's generic views with this module's templates and data.

Every colleague is reached through the scoping gate (``get_or_404(…, action="manage")``): another
company's contact answers 404, a profile without ``manage`` 403 (the portal's answer to a missing
action). Nobody manages themselves: their own access and profile answer 403 with a message.
"""
from __future__ import annotations

from typing import Any

import peewee as pw
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.exceptions import TooManyRequests

from crm_portal.api import (
    Contact,
    ModuleBlueprint,
    PortalUser,
    Profile,
    current_module,
    current_portal_user,
    db,
    get_or_404,
    require,
    reserve_mail_request,
)

from . import colleagues
from .forms import ColleagueProfileForm, ConfirmForm, InviteForm

bp = ModuleBlueprint("contacts", __name__)

MANAGE = "manage"


# --- template data -------------------------------------------------------------------------------

def list_context(page: Any, user: PortalUser) -> dict[str, Any]:
    """The latest activity of each listed colleague, for administrators only (one query)."""
    if not user.can("contacts", MANAGE):
        return {"can_manage": False, "activity": {}}
    return {"can_manage": True, "activity": colleagues.last_activity(page.rows, user.company_id)}


def detail_context(contact: Contact, user: PortalUser, profile_form: ColleagueProfileForm | None = None,
                   ) -> dict[str, Any]:
    """The manage section: forms, the profiles on offer and the colleague's recent activity."""
    if not user.can("contacts", MANAGE):
        return {"can_manage": False}
    profiles = colleagues.assignable_profiles()
    if profile_form is None:
        profile_form = ColleagueProfileForm(formdata=None, profile=contact.profile_id)
    profile_form.profile.offer(profiles)
    return {"can_manage": True, "is_self": contact.id == user.contact_id, "profile_form": profile_form,
            "activity": colleagues.recent_activity(contact),
            "current_profile": contact.profile.label if contact.profile_id else None}


# --- helpers -------------------------------------------------------------------------------------

def _user() -> PortalUser:
    user = current_portal_user()
    if user is None:
        abort(404)
    return user


def _mail_flood_guard() -> None:
    """The account pages' limit on email-sending requests per address: 429 with ``Retry-After``."""
    wait = reserve_mail_request(request.remote_addr)
    if wait:
        raise TooManyRequests(retry_after=wait)


def _colleague(record_id: int) -> Contact:
    """The colleague ``record_id`` in the user's scope (404) with ``manage`` granted (403)."""
    return get_or_404(current_module(), record_id, action=MANAGE)


def _detail_page(contact: Contact, status: int, error: str,
                 profile_form: ColleagueProfileForm | None = None) -> tuple[str, int]:
    """The colleague's page again with ``error`` and an error status; nothing was changed."""
    module = current_module()
    user = _user()
    return render_template(module.detail_template, module=module, record=contact,
                           grant=require(module, "view"), manage_error=error,
                           **detail_context(contact, user, profile_form)), status


def _refuse_self(contact: Contact) -> tuple[str, int] | None:
    if contact.id == _user().contact_id:
        return _detail_page(contact, 403, _("You cannot change your own portal access or profile: ask a "
                                            "colleague who administers the portal, or our staff."))
    return None


def _chosen(profiles: list[Profile], profile_id: int | None) -> Profile:
    """The offered profile the (validated) form names."""
    return next(p for p in profiles if p.id == profile_id)


def _back(contact: Contact):
    return redirect(url_for("contacts.detail", record_id=contact.id) + "#manage")


# --- invitation ----------------------------------------------------------------------------------

@bp.route("/invite", methods=["GET", "POST"])
def invite():
    """Create a colleague in the user's company and send them the invitation email."""
    module = current_module()
    grant = require(module, MANAGE)
    user = _user()
    if user.company_id is None:
        abort(404)  # no company to add colleagues to
    form = InviteForm()
    profiles = colleagues.assignable_profiles()
    form.profile.offer(profiles)
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        if Contact.select().where(Contact.email == email).exists():
            form.email.errors.append(_("This email address is already used by a contact: nobody was added."))
        else:
            _mail_flood_guard()
            try:
                with db.atomic():
                    contact = colleagues.invite(user.contact, first_name=form.first_name.data.strip(),
                                                last_name=form.last_name.data.strip(), email=email,
                                                profile=_chosen(profiles, form.profile.data))
            except pw.IntegrityError:  # the same address added at the same moment
                form.email.errors.append(_("This email address is already used by a contact: nobody was added."))
            else:
                flash(_("%(name)s has been added; the invitation has been sent to %(email)s.",
                        name=contact.full_name, email=contact.email), "success")
                # With the own scope (a profile unlikely but possible) the new colleague is not visible.
                target = url_for("contacts.detail", record_id=contact.id) if grant.scope == "company" \
                    else url_for("contacts.list")
                return redirect(target)
    status = 400 if request.method == "POST" else 200
    return render_template("contacts/invite.html", module=module, grant=grant, form=form), status


# --- portal access -------------------------------------------------------------------------------

@bp.post("/<int:record_id>/revoke")
def revoke(record_id: int):
    """Switch a colleague's portal access off: their sessions and emailed links end."""
    contact = _colleague(record_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    refused = _refuse_self(contact)
    if refused:
        return refused
    with db.atomic():
        done = colleagues.revoke(_user().contact, contact)
    if done:
        flash(_("The portal access of %(name)s has been switched off.", name=contact.full_name), "success")
    else:
        flash(_("%(name)s had no portal access already.", name=contact.full_name), "info")
    return _back(contact)


@bp.post("/<int:record_id>/enable")
def enable(record_id: int):
    """Switch a colleague's portal access on and send the usual invitation or access email."""
    contact = _colleague(record_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    # Also the answer for oneself: a logged-in contact always has access, so nothing to refuse.
    if contact.portal_access:
        flash(_("%(name)s has portal access already.", name=contact.full_name), "info")
        return _back(contact)
    _mail_flood_guard()
    with db.atomic():
        emailed = colleagues.enable(_user().contact, contact)
    if emailed:
        flash(_("The portal access of %(name)s has been switched on; they have been told by email.",
                name=contact.full_name), "success")
    elif emailed is not None:
        flash(_("The portal access of %(name)s has been switched on.", name=contact.full_name), "success")
    return _back(contact)


# --- profile -------------------------------------------------------------------------------------

@bp.post("/<int:record_id>/profile")
def profile(record_id: int):
    """Give a colleague one of the profiles staff made assignable (never another)."""
    contact = _colleague(record_id)
    form = ColleagueProfileForm()
    profiles = colleagues.assignable_profiles()
    form.profile.offer(profiles)
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _detail_page(contact, 400, "; ".join(form.profile.errors), form)
    refused = _refuse_self(contact)
    if refused:
        return refused
    chosen = _chosen(profiles, form.profile.data)
    with db.atomic():
        done = colleagues.change_profile(_user().contact, contact, chosen)
    if done:
        flash(_("%(name)s now has the profile %(profile)s.", name=contact.full_name, profile=chosen.label),
              "success")
    return _back(contact)
