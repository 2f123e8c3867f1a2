"""Profiles in the admin: the list, and one editor page per profile (create and edit).

The editor shows every installed module as a row (switch, scope, one checkbox per declared action)
and the dashboard buttons to pick and order; the rules are in :mod:`.profile_editor`. A save is
checked whole against what the modules declare, written in one transaction with its audit entry
(a diff of fields, modules, scopes, actions and buttons), or refused with the reasons. A profile
that contacts have cannot be deleted.
"""
from __future__ import annotations

import json
from typing import Any

from flask import current_app, flash, redirect, request
from flask_admin import expose
from flask_admin.babel import gettext as admin_gettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from markupsafe import Markup, escape

from .. import signals
from ..audit import audit
from ..models import AuditEntry, Profile
from ..staff import current_staff
from . import profile_editor as editor
from .views import AdminModelView, WriteRefused, _Failed


class ProfileView(AdminModelView):
    """Portal profiles: admins only (operators never change what customers may do)."""

    # The description is free text in one language: it is read on the profile's own page.
    column_list = ("name", "label_en", "label_it", "assignable")
    column_labels = {"name": _l("Name"), "label_en": _l("English label"), "label_it": _l("Italian label"),
                     "assignable": _l("Assignable"), "description": _l("Description")}
    column_searchable_list = ("name", "label_en", "label_it")
    column_filters = ()
    editor_template = "admin/profiles/editor.html"

    # --- the editor ------------------------------------------------------------------------
    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        return self._editor(None)

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        return self._editor(self.get_one(request.args.get("id", "")))

    def _editor(self, profile: Profile | None):
        registry = current_app.extensions["crm_portal"]
        catalog = editor.Catalog.build(registry)
        stored = editor.load(profile, catalog) if profile is not None else None
        errors: list[str] = []
        status = 200
        if request.method == "POST":
            state, errors = editor.parse(request.form, catalog)
            if not errors and editor.name_taken(state.name, profile):
                errors.append(_("Name: another profile is already called “%(name)s”.", name=state.name))
            if profile is not None and state.name != profile.name and self._for_registration(profile):
                errors.append(_("Name: self-registered contacts get the profile “%(name)s” (setting "
                                "REGISTRATION_PROFILE), so it keeps its name.", name=profile.name))
            if not errors:
                saved = self._save(profile, state, catalog, request.form.get("fingerprint"))
                if saved is not None:
                    flash(_("Profile “%(profile)s” saved.", profile=saved.label), "success")
                    if "_continue_editing" in request.form:
                        return redirect(self.get_url(".edit_view", id=saved.id))
                    return redirect(self.get_url(".index_view"))
            status = 400
        else:
            state = stored.state if stored is not None else editor.ProfileState()
        module_rows, button_rows = editor.rows(state, catalog, stored if request.method == "GET" else None)
        contacts = editor.contacts_of(profile) if profile is not None else None
        staff = current_staff()
        return self.render(
            self.editor_template, profile=profile, state=state, errors=errors, module_rows=module_rows,
            button_rows=button_rows, scopes=[(s, editor.SCOPE_LABELS[s], editor.SCOPE_HELP[s]) for s in editor.SCOPES],
            kept_modules=stored.kept_modules if stored else [], contacts=contacts,
            delete_refusal=self._page_delete_refusal(profile, contacts),
            fingerprint=request.form.get("fingerprint", "") if request.method == "POST" else (
                editor.fingerprint(stored.state) if stored else ""),
            return_url=self.get_url(".index_view"),
            may_view_as=bool(staff is not None and staff.may_view_as),
        ), status

    def _save(self, profile: Profile | None, state: editor.ProfileState, catalog: editor.Catalog,
              expected: str | None) -> Profile | None:
        """Save in one transaction with the audit entry; ``None`` when it failed (message flashed).
        The profile is read again inside the transaction: when ``expected`` (the fingerprint of
        what the page showed) no longer matches, someone saved meanwhile and nothing is written."""
        failure = admin_gettext("Failed to update record. %(error)s" if profile else
                                "Failed to create record. %(error)s", error="%(error)s")
        try:
            with self._write(failure):
                stored = editor.load(profile, catalog) if profile is not None else None
                if stored is not None and expected and editor.fingerprint(stored.state) != expected:
                    raise WriteRefused(_("Someone else saved this profile while you were editing it, so nothing "
                                         "was saved. Open it again to see their changes, then make yours."))
                saved = editor.save(profile, stored, state, catalog)
                change = editor.diff(stored.state if stored else None, state)
                if profile is not None and not change:
                    return saved  # nothing changed: nothing to audit
                audit("admin-created" if profile is None else "admin-updated", saved,
                      details={"profile": saved.name, **change})
                signals.admin_record_changed.send(Profile, record=saved, staff=current_user,
                                                  action="created" if profile is None else "updated")
        except _Failed:
            return None
        return saved

    # --- deleting ----------------------------------------------------------------------------
    def delete_refusal(self, model: Profile) -> str | None:
        if self._for_registration(model):
            return _("Self-registered contacts get the profile “%(name)s” (setting REGISTRATION_PROFILE): "
                     "it cannot be deleted.", name=model.name)
        return self._in_use_message(model, model.contacts.count())

    @staticmethod
    def _for_registration(model: Profile) -> bool:
        return model.name == current_app.config.get("REGISTRATION_PROFILE")

    def _page_delete_refusal(self, profile: Profile | None, contacts: editor.ContactsPage | None) -> str | None:
        """:meth:`delete_refusal` from the contacts the page already counted (no further query)."""
        if profile is None or contacts is None:
            return None
        if self._for_registration(profile):
            return self.delete_refusal(profile)
        return self._in_use_message(profile, contacts.total)

    @staticmethod
    def _in_use_message(model: Profile, count: int) -> str | None:
        if count:
            return ngettext("“%(profile)s” is given to %(num)d contact: give them another profile before "
                            "deleting it.",
                            "“%(profile)s” is given to %(num)d contacts: give them another profile before "
                            "deleting it.", count, profile=model.label)
        return None

    def on_model_delete(self, model: Profile) -> None:
        catalog = editor.Catalog.build(current_app.extensions["crm_portal"])
        model._state_before_delete = editor.load(model, catalog).state

    def after_model_delete(self, model: Profile) -> None:
        change = editor.diff(getattr(model, "_state_before_delete", None), None)
        audit("admin-deleted", model, details={"profile": model.name, **change})
        signals.admin_record_changed.send(Profile, record=model, action="deleted", staff=current_user)


def audit_details(view: Any, context: Any, model: AuditEntry, name: str) -> Any:
    """The audit log's details column: a profile change as sentences in the reader's language,
    anything else as stored."""
    if model.object_type != Profile._meta.table_name or not model.details:
        return model.details
    try:
        details = json.loads(model.details)
    except ValueError:
        return model.details
    if not isinstance(details, dict):
        return model.details
    lines = editor.describe(details, current_app.extensions["crm_portal"])
    if not lines:
        return _("No change")
    return Markup("<ul class=\"mb-0 pl-3\">{}</ul>").format(
        Markup("").join(Markup("<li>{}</li>").format(escape(line)) for line in lines))
