"""CRM sync in the admin: external references (read-only), sync conflicts staff resolve by choosing
the record, and the CRM-owned fields of linked companies and contacts kept read-only."""
from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from ..crm_records import RecordInvalid
from ..db import db
from ..forms import EmptyForm
from ..listing import fits_column
from ..models import ExternalRef, SyncConflict
from ..sync.ownership import locked_fields
from ..sync.types import sync_types
from ..sync.upsert import resolve_conflict
from .labels import field_label
from .views import AdminModelView

SYNC_FIELD_LABELS = {
    "integration": _l("Integration"),
    "type": _l("Record type"),
    "external_id": _l("External id"),
    "record_id": _l("Record id"),
    "deleted_at": _l("Deleted in the CRM"),
    "payload": _l("Data sent"),
    "candidates": _l("Matching records"),
    "resolved_at": _l("Resolved"),
}
SYNC_TYPE_LABELS = {"company": _l("Company"), "contact": _l("Contact person")}
SYNC_AUDIT_LABELS = {
    "sync-linked": _l("Linked to a CRM record"),
    "sync-conflict": _l("CRM record matching several records"),
    "sync-conflict-resolved": _l("CRM conflict resolved"),
    "sync-deleted": _l("Deleted in the CRM"),
    "sync-purged": _l("Deleted after its deletion in the CRM"),
    "sync-purge-kept": _l("Kept after its deletion in the CRM"),
    "api-invitation": _l("Invitation sent through the API"),
}
_ENDPOINTS = {"company": "core_company", "contact": "core_contact"}


class CrmOwnedFieldsMixin:
    """For a company or contact that a CRM holds (an external reference), the fields the CRM owns
    are read-only in the form and kept as stored whatever is posted: the CRM overwrites them."""

    sync_type = ""

    def edit_form(self, obj: Any = None) -> Any:
        form = super().edit_form(obj)  # type: ignore[misc]
        for name in sorted(locked_fields(self.sync_type, getattr(obj, "id", None))):
            field = getattr(form, name, None)
            if field is not None:
                field.render_kw = {**(field.render_kw or {}), "readonly": True}
                field.description = _l("Kept in the CRM: change it there (every sync overwrites it).")
        return form

    def _on_model_change(self, form: Any, model: Any, is_created: bool) -> Any:
        locked = frozenset() if is_created else locked_fields(self.sync_type, model.id)
        if locked:
            stored = type(model).get_by_id(model.id)
            kept = sorted(n for n in locked if model.__data__.get(n) != stored.__data__.get(n))
            for name in kept:
                model.__data__[name] = stored.__data__.get(name)
            if kept:
                flash(_("Not changed, because the CRM keeps them: %(fields)s.",
                        fields=", ".join(str(self.label_of(n)) for n in kept)), "warning")  # type: ignore[attr-defined]
        return super()._on_model_change(form, model, is_created)  # type: ignore[misc]


def _type_label(view: Any, context: Any, model: Any, name: str) -> Any:
    if model.type in SYNC_TYPE_LABELS:
        return SYNC_TYPE_LABELS[model.type]
    stype = sync_types().get(model.type)
    module = view.admin.app.extensions["crm_portal"].modules.get(stype.module) if stype else None
    return module.label if module is not None else model.type


def _record_link(view: Any, context: Any, model: Any, name: str) -> Any:
    record_id = getattr(model, name)
    if record_id is None or model.type not in _ENDPOINTS:
        return record_id if record_id is not None else ""
    return Markup('<a href="{}">{}</a>').format(url_for(f"{_ENDPOINTS[model.type]}.edit_view", id=record_id),
                                                record_id)


class ExternalRefView(AdminModelView):
    """Which of our companies and contacts each integration holds, under which id (read-only;
    deleting a reference lets the next push link the record again by its attributes)."""

    can_create = can_edit = False
    field_labels = SYNC_FIELD_LABELS
    audit_labels = SYNC_AUDIT_LABELS
    column_list = ("integration", "type", "external_id", "record_id", "created_at", "updated_at", "deleted_at")
    column_searchable_list = ("external_id",)
    column_filters = ("type", "deleted_at")
    column_default_sort = ("id", True)
    column_formatters = {"type": _type_label, "record_id": _record_link}


def _candidates(view: Any, context: Any, model: Any, name: str) -> Any:
    try:
        ids = json.loads(model.candidates or "[]")
    except ValueError:  # written by hand in the database: shown as it is
        return model.candidates
    return ", ".join(str(i) for i in ids) if isinstance(ids, list) else str(ids)


def _resolve_link(view: Any, context: Any, model: Any, name: str) -> Any:
    if model.resolved_at is not None:
        return _record_link(view, context, model, "record_id")
    return Markup('<a class="btn btn-sm btn-primary" href="{}">{}</a>').format(
        url_for(".resolve", id=model.id), _("Choose the record"))


def _payload_label(model: Any, key: str) -> Any:
    """A pushed field by its admin label (``company_external_id``: "Company (External id)")."""
    base = key.removesuffix("_external_id")
    label = field_label(base, model) or base
    if base != key:
        return f"{label} ({_('External id')})"
    return label


class SyncConflictView(AdminModelView):
    """Records a CRM pushed that matched several of ours: staff choose the right one."""

    roles = ("admin", "operator")
    can_create = can_edit = False
    field_labels = {**SYNC_FIELD_LABELS, "record_id": _l("Chosen record")}
    column_list = ("created_at", "integration", "type", "external_id", "candidates", "resolved_at", "record_id")
    column_filters = ("type", "resolved_at")
    column_default_sort = ("id", True)
    column_formatters = {"type": _type_label, "candidates": _candidates, "record_id": _resolve_link}
    column_choices = {"type": list(SYNC_TYPE_LABELS.items())}

    @expose("/resolve/", methods=("GET", "POST"))
    def resolve(self) -> Any:
        wanted = request.args.get("id", type=int)
        conflict = SyncConflict.get_or_none(SyncConflict.id == wanted) if fits_column(SyncConflict.id, wanted) else None
        if conflict is None or conflict.resolved_at is not None:
            abort(404)
        model = sync_types()[conflict.type].model
        ids = json.loads(conflict.candidates or "[]")
        records = list(model.select().where(model.id.in_(ids)).order_by(model.id))
        form = EmptyForm()
        error = None
        if request.method == "POST":
            if not form.validate_on_submit():
                abort(400)
            chosen = request.form.get("record_id", type=int)
            if chosen not in {r.id for r in records}:
                error = _("Choose one of the records listed.")
            else:
                try:
                    with db.atomic():
                        resolve_conflict(conflict, chosen)
                except RecordInvalid as exc:
                    error = _("The data sent cannot be applied to that record: %(errors)s", errors=str(exc))
                else:
                    flash(_("Linked: the data sent has been applied to the record."), "success")
                    return redirect(url_for(".index_view"))
        payload = sorted(((_payload_label(model, key), value) for key, value in
                          json.loads(conflict.payload or "{}").items()), key=lambda item: str(item[0]))
        status = 400 if request.method == "POST" else 200
        return self.render("admin/sync_conflict.html", conflict=conflict, records=records, payload=payload,
                           form=form, error=error, type_label=SYNC_TYPE_LABELS.get(conflict.type)), status



def add_views(admin: Any, category: Any) -> None:
    """The sync views, in ``category`` of the admin's menu."""
    admin.add_view(ExternalRefView(ExternalRef, name=_l("External references"), category=category,
                                   endpoint="core_external_ref"))
    admin.add_view(SyncConflictView(SyncConflict, name=_l("Sync conflicts"), category=category,
                                    endpoint="core_sync_conflict"))
