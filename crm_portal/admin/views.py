"""Base Flask-Admin views for staff: access by role, 404 for unknown ids, audit of every change.

Every write of a model view (create, edit, delete, bulk actions) runs in one transaction with its
audit entry and every row it touches: a failure rolls all of it back and shows Flask-Admin's usual
error message. Exports are plain text with spreadsheet formulas neutralised. Numbers no column can
hold answer 404 (an id) or 400 (a list parameter), never a database error.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import peewee as pw
from flask import abort, flash, g, redirect, request, session, url_for
from flask_admin import AdminIndexView, expose
from flask_admin.actions import action
from flask_admin.babel import gettext as admin_gettext
from flask_admin.babel import lazy_gettext as admin_lazy_gettext
from flask_admin.babel import ngettext as admin_ngettext
from flask_admin.contrib.peewee import ModelView
from flask_admin.contrib.peewee.form import save_inline
from flask_admin.model import typefmt
from flask_babel import LazyString, format_datetime, get_timezone
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup

from .. import signals
from ..db import db, is_lock_contention
from ..listing import MAX_PAGE, csv_safe, display, fits_column
from ..models import Localized
from ..uploads import delete_stored, delete_with_files
from .labels import choice_label, field_label

log = logging.getLogger("crm_portal.admin")


class WriteRefused(Exception):
    """A write the view refuses on purpose; its message (translated) is shown to staff as is."""


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
        if current_user.is_authenticated:
            if not getattr(current_user, "is_staff", False):
                abort(404)
            # Staff without the role: the admin's own page, in the admin's layout and language.
            return self.render("admin/forbidden.html"), 403  # type: ignore[attr-defined]
        return redirect(url_for("admin.login", next=request.full_path))


# --- how values read in the admin: the staff member's zone and language ---------------------

def _list_datetime(view: Any, value: dt.datetime, name: str) -> str:
    # Stored as naive UTC: shown in the staff member's zone, formatted as the portal's lists are.
    return display(value)


def _detail_datetime(view: Any, value: dt.datetime, name: str) -> str:
    return format_datetime(value, "medium")


def _list_date(view: Any, value: dt.date, name: str) -> str:
    return display(value)


def _export_datetime(view: Any, value: dt.datetime, name: str) -> str:
    """ISO 8601 in the staff member's zone, to the second, with the zone's offset."""
    aware = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    return aware.astimezone(get_timezone()).replace(microsecond=0).isoformat()


def _export_date(view: Any, value: dt.date, name: str) -> str:
    return value.isoformat()


def _list_bool(view: Any, value: bool, name: str) -> Markup:
    text = _("Yes") if value else _("No")
    icon = "fa-check-circle glyphicon-ok-circle" if value else "fa-minus-circle glyphicon-minus-sign"
    return Markup('<span class="fa glyphicon {}" title="{}: {}"></span>').format(
        icon, view.get_column_name(name), text)


def _export_bool(view: Any, value: bool, name: str) -> str:
    return _("Yes") if value else _("No")


def _localized(view: Any, value: Localized, name: str) -> str:
    return value.label  # a profile, a folder … in the staff member's language


def _lazy(text: Any) -> Any:
    """A label that is translated when shown, from a callable or a (lazy) string."""
    return LazyString(text) if callable(text) else text


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

    #: Backrefs (``Contact.tickets`` → ``"tickets"``) whose rows must never be deleted with a
    #: record: deleting a record that has any is refused with :meth:`dependents_message`.
    protected_dependents: tuple[str, ...] = ()

    #: Labels of this view's own field names (``{"service_id": _l("Service")}``), on top of the
    #: shared ones of :mod:`crm_portal.admin.labels`; used for columns, forms, filters and inline forms.
    field_labels: Mapping[str, Any] = {}
    #: Labels of stored choice values per field (``{"actor": {"customer": _l("Customer")}}``),
    #: on top of :data:`crm_portal.admin.labels.CHOICE_LABELS`.
    choice_labels: Mapping[str, Mapping[Any, Any]] = {}
    #: Readable names of the audit actions this view's module writes (shown in the audit log).
    audit_labels: Mapping[str, Any] = {}

    column_type_formatters = {**typefmt.BASE_FORMATTERS, bool: _list_bool, dt.datetime: _list_datetime,
                              dt.date: _list_date, Localized: _localized}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, bool: _export_bool,
                                     dt.datetime: _detail_datetime, dt.date: _list_date, Localized: _localized}
    column_type_formatters_export = {**typefmt.EXPORT_FORMATTERS, bool: _export_bool,
                                     dt.datetime: _export_datetime, dt.date: _export_date, Localized: _localized}

    def __init__(self, model: type[pw.Model], *args: Any, **kwargs: Any) -> None:
        self._label_everything(model)
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

    # --- labels: every column, form field, filter and choice in the staff member's language ---
    def label_of(self, name: str, model: type[pw.Model] | None = None) -> Any:
        """The translated label of field ``name`` of ``model`` (this view's by default)."""
        model = model or self.model
        explicit = self.column_labels or {}
        if name in explicit:
            return explicit[name]
        found = field_label(name, model, self.field_labels)
        if found is not None:
            return found
        return self._prettify_name(name)  # untranslated: the admin's translation test names it

    def _label_everything(self, model: type[pw.Model]) -> None:
        """Fill ``column_labels``, ``column_choices`` and ``form_args`` (labels, choices, the
        names of related rows) from the labels of :mod:`crm_portal.admin.labels`."""
        self.model = model
        names = [f.name for f in model._meta.sorted_fields]
        names += [n for n in (self.column_list or ()) if isinstance(n, str) and n not in names]
        names += [n for n in (self.column_details_list or ()) if isinstance(n, str) and n not in names]
        names += [n for n in (self.column_export_list or ()) if isinstance(n, str) and n not in names]
        backrefs = [getattr(info, "model", info) for info in (self.inline_models or ())]
        for related in backrefs:
            for fk in related._meta.refs:
                if fk.rel_model is model and fk.backref:
                    names.append(fk.backref)
        labels = {name: self.label_of(name, model) for name in names}
        labels.update(dict(self.column_labels or {}))
        self.column_labels = labels
        choices = dict(self.column_choices or {})
        for field in model._meta.sorted_fields:
            if field.choices and field.name not in choices:
                choices[field.name] = self._choices(field)
        self.column_choices = choices
        self.form_args = self._form_args(model, dict(self.form_args or {}))
        for info in self.inline_models or ():
            if hasattr(info, "form_args") and hasattr(info, "model"):
                info.form_args = self._form_args(info.model, dict(info.form_args or {}))

    def _choices(self, field: pw.Field) -> list[tuple[Any, Any]]:
        own = self.choice_labels.get(field.name)
        return [(value, choice_label(value, own)) for value, _label in field.choices]

    def _form_args(self, model: type[pw.Model], args: dict[str, Any]) -> dict[str, Any]:
        for field in model._meta.sorted_fields:
            entry = dict(args.get(field.name) or {})
            entry.setdefault("label", self.label_of(field.name, model))
            if field.choices and not isinstance(field, pw.ForeignKeyField):
                entry.setdefault("choices", self._choices(field))
            if isinstance(field, pw.ForeignKeyField) and issubclass(field.rel_model, Localized):
                entry.setdefault("get_label", lambda row: row.label)
            args[field.name] = entry
        return args

    def scaffold_filters(self, name: Any) -> Any:
        """Filters named like their columns, translated when shown; a filter on a related
        model's field is named after the foreign key ("Company", "Profile / Label")."""
        attr = getattr(self.model, name, None) if isinstance(name, str) else name
        owner = getattr(attr, "model", None)
        if attr is None or owner is None or owner is self.model or not isinstance(attr, pw.Field):
            return super().scaffold_filters(name)
        keys = [f for f in self.model._meta.sorted_fields
                if isinstance(f, pw.ForeignKeyField) and f.rel_model is owner]
        base = self.label_of(keys[0].name) if keys else self._prettify_name(owner.__name__)
        if attr.name in ("name", "label_en", "label_it", "title"):
            visible: Any = base
        else:
            inner = self.label_of(attr.name, owner)
            visible = _lazy(lambda: f"{base} / {inner}")
        return self.filter_converter.convert(type(attr).__name__, attr, visible)

    def search_placeholder(self) -> str | None:
        """"Search by name, email…": the labels of the searchable columns."""
        fields = [self.label_of(f.name, f.model) if f.model is not self.model else self.label_of(f.name)
                  for f in getattr(self, "_search_fields", ()) or ()]
        if not fields:
            return None
        shown = ", ".join(str(label) for label in fields[:4]) + ("…" if len(fields) > 4 else "")
        return _("Search by %(fields)s", fields=shown)

    def get_export_columns(self) -> Any:
        """Times are exported in the staff member's zone: their columns name it."""
        columns = []
        for name, label in super().get_export_columns():
            field = self.model._meta.fields.get(name) if isinstance(name, str) else None
            if isinstance(field, pw.DateTimeField):
                label = _lazy(lambda text=label: f"{text} ({get_timezone()})")
            columns.append((name, label))
        return columns

    # --- reading: related rows of the list in the same query ------------------------------
    def get_query(self) -> Any:
        return self.with_related(self.model.select())

    def with_related(self, query: Any) -> Any:
        """``query`` with the rows that the list's foreign-key columns show, joined: a page of
        the list costs the same number of queries whatever its number of rows."""
        shown = {name for name, _label in (self.get_list_columns() or ())}
        for field in self.model._meta.sorted_fields:
            if isinstance(field, pw.ForeignKeyField) and field.name in shown:
                target = field.rel_model.alias()
                query = (query.select_extend(target)
                         .join_from(self.model, target, pw.JOIN.LEFT_OUTER,
                                    on=(field == getattr(target, field.rel_field.name)), attr=field.name))
        return query.switch(self.model)

    def _get_list_value(self, context: Any, model: Any, name: str, column_formatters: Any,
                        column_type_formatters: Any) -> Any:
        # Flask-Admin returns an empty value of a column with choices (a language left to the
        # portal's default) as it is, which reads "None": shown empty, like any other empty value.
        value = super()._get_list_value(context, model, name, column_formatters, column_type_formatters)
        return "" if value is None else value

    # --- reading: unknown ids are 404, parameters no column can hold are 400 -----------------
    def get_one(self, id: Any) -> Any:
        # Flask-Admin answers an unknown id with a redirect and a flash; we want a plain 404.
        found = None
        pk = self.model._meta.primary_key
        try:
            value = pk.adapt(id)
        except (ValueError, TypeError):
            abort(404)
        if fits_column(pk, value):  # a larger number is no row's id (and the database refuses it)
            try:
                found = super().get_one(value)
            except (ValueError, TypeError, pw.DataError):
                found = None
        if found is None:
            abort(404)
        return found

    def _get_list_extra_args(self) -> Any:
        args = super()._get_list_extra_args()
        if not 0 <= (args.page or 0) <= MAX_PAGE:
            abort(400)
        return args

    def _get_list_filter_args(self) -> Any:
        filters = super()._get_list_filter_args()
        for idx, _name, value in filters or ():
            flt = self._filters[idx]  # type: ignore[index]
            if not _filter_value_fits(flt, value):
                abort(400)
        return filters

    # --- exports: text, never markup; formulas neutralised ---------------------------------
    def get_export_value(self, model: Any, name: Any) -> Any:
        value = super().get_export_value(model, name)
        if isinstance(value, Markup):
            value = value.striptags()  # a column formatter's HTML: keep its text only
        return csv_safe(value)

    # --- writing: one transaction with the audit entry and every row touched ---------------
    @contextlib.contextmanager
    def _write(self, failure: str) -> Iterator[None]:
        """Run a write in one transaction; on any error roll it back, flash ``failure`` (a
        Flask-Admin message with ``%(error)s``, already translated) and raise :class:`_Failed`."""
        flashes = list(session.get("_flashes", []))
        g._admin_new_files = []
        try:
            with db.atomic():
                yield
        except Exception as exc:
            for name, area in g.pop("_admin_new_files", []):
                delete_stored(name, area)  # written for a save that did not happen
            if is_lock_contention(exc):
                raise  # the request is run again from the start
            session["_flashes"] = flashes  # no "saved" message for what was rolled back
            if isinstance(exc, WriteRefused):
                flash(str(exc), "error")
            elif not self.handle_view_exception(exc):
                flash(failure % {"error": str(exc)}, "error")
                log.error("admin write failed in %s", self.endpoint, exc_info=exc)
            raise _Failed from exc
        g.pop("_admin_new_files", None)

    def discard_if_rolled_back(self, stored_name: str, area: str) -> None:
        """Remove a file stored for the current write should that write roll back."""
        g.setdefault("_admin_new_files", []).append((stored_name, area))

    def create_model(self, form: Any) -> Any:
        try:
            with self._write(admin_gettext("Failed to create record. %(error)s", error="%(error)s")):
                model = self.model()
                form.populate_obj(model)
                self._on_model_change(form, model, True)
                model.save(force_insert=True)
                save_inline(form, model)  # inline rows (quote lines …) in the same transaction
                self.after_model_change(form, model, True)
        except _Failed:
            return False
        return model

    def update_model(self, form: Any, model: Any) -> bool:
        try:
            with self._write(admin_gettext("Failed to update record. %(error)s", error="%(error)s")):
                self.check_editable(model)
                form.populate_obj(model)
                self._on_model_change(form, model, False)
                model.save()
                save_inline(form, model)
                self.after_model_change(form, model, False)
        except _Failed:
            return False
        return True

    def delete_model(self, model: Any) -> bool:
        try:
            with self._write(admin_gettext("Failed to delete record. %(error)s", error="%(error)s")):
                self._delete_one(model)
        except _Failed:
            return False
        return True

    def _delete_one(self, model: Any) -> None:
        """Refuse, or delete ``model`` with what its foreign keys cascade to, audit it and remove
        the files of every deleted row after the commit."""
        message = self.delete_refusal(model)
        if message:
            raise WriteRefused(message)
        self.on_model_delete(model)
        # Not peewee's recursive delete: it would delete (or un-assign) dependents whatever
        # their foreign key says. The database applies each key's ON DELETE rule instead.
        delete_with_files(model)
        self.after_model_delete(model)

    def check_editable(self, model: Any) -> None:
        """Raise :class:`WriteRefused` to refuse editing ``model`` (its state forbids it)."""

    def delete_refusal(self, model: Any) -> str | None:
        """Why ``model`` cannot be deleted (translated), or ``None``: by default, while any row of
        :attr:`protected_dependents` refers to it."""
        for backref in self.protected_dependents:
            related = getattr(model, backref, None)
            if related is None or not db.table_exists(related.model._meta.table_name):
                continue  # the module holding them is not installed
            if related.exists():
                return self.dependents_message(model, backref)
        return None

    def dependents_message(self, model: Any, backref: str) -> str:
        return _("%(record)s cannot be deleted: other records depend on it.", record=str(model))

    @action("delete", admin_lazy_gettext("Delete"),
            admin_lazy_gettext("Are you sure you want to delete selected records?"))
    def action_delete(self, ids: Any) -> None:
        # Runs inside handle_action's transaction: one refusal or failure keeps every record.
        pk = self.model._meta.primary_key
        count = 0
        for model in self.model.select().where(pk.in_(ids)):
            self._delete_one(model)
            count += 1
        flash(admin_ngettext("Record was successfully deleted.", "%(count)s records were successfully deleted.",
                             count, count=count), "success")

    def handle_action(self, return_view: str | None = None) -> Any:
        """Every bulk action ("with selected") runs in one transaction: a failure in any record
        rolls back all of them and shows Flask-Admin's error message."""
        pk = self.model._meta.primary_key
        for raw in request.form.getlist("rowid"):
            try:
                value = pk.adapt(raw)
            except (TypeError, ValueError):
                abort(400)
            if not fits_column(pk, value):
                abort(400)
        try:
            with self._write(admin_gettext("Failed to perform action. %(error)s", error="%(error)s")):
                response = super().handle_action(return_view)
        except _Failed:
            return redirect(self._action_return_url(return_view))
        return response

    def _action_return_url(self, return_view: str | None) -> str:
        from flask_admin.helpers import get_redirect_target

        if return_view:
            return self.get_url("." + return_view)
        return get_redirect_target() or self.get_url(".index_view")

    def after_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        from ..audit import audit

        audit("admin-created" if is_created else "admin-updated", model)
        signals.admin_record_changed.send(type(model), record=model,
                                          action="created" if is_created else "updated", staff=current_user)

    def after_model_delete(self, model: Any) -> None:
        from ..audit import audit

        audit("admin-deleted", model)
        signals.admin_record_changed.send(type(model), record=model, action="deleted", staff=current_user)


class _Failed(Exception):
    """A write was rolled back and its message flashed."""


def _filter_value_fits(flt: Any, value: Any) -> bool:
    """Whether a list filter's value can be compared with its column: a number beyond the
    column's range (an id of 20 digits) makes the database fail, so it is a bad request."""
    column = getattr(flt, "column", None)
    if not isinstance(column, pw.Field):
        return True
    try:
        cleaned = flt.clean(value)
    except (TypeError, ValueError):
        return True  # Flask-Admin already refused it as an invalid value
    values = cleaned if isinstance(cleaned, (list, tuple)) else [cleaned]
    for item in values:
        if isinstance(item, str) and item.strip().lstrip("+-").isdigit():
            item = int(item)
        if not fits_column(column, item):
            return False
    return True


class PortalAdminIndexView(AdminIndexView):
    """The admin home plus staff login/logout (``/admin/login``)."""

    def is_accessible(self) -> bool:
        return staff_allowed(("admin", "operator"))

    #: Pages of the index view that need no login.
    OPEN_PAGES = ("login", "logout", "set_language", "forgot_password", "reset_password")

    def inaccessible_callback(self, name: str, **kwargs: Any):
        if name in self.OPEN_PAGES:
            return None
        return StaffAccessMixin.inaccessible_callback(self, name, **kwargs)

    def _handle_view(self, name: str, **kwargs: Any):
        if name in self.OPEN_PAGES:
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
        from .labels import CHOICE_LABELS, audit_action_labels, record_type_labels

        recent = AuditEntry.select().order_by(AuditEntry.id.desc()).limit(10)
        return self.render("admin/portal_index.html", stats=stats, recent=recent,
                           actions=audit_action_labels(self.admin), record_types=record_type_labels(self.admin),
                           actors=CHOICE_LABELS)

    @expose("/login", methods=("GET", "POST"))
    def login(self):
        from .login import staff_login

        return staff_login(self)

    @expose("/logout", methods=("POST",))
    def logout(self):
        from .login import staff_logout

        return staff_logout()

    @expose("/language", methods=("POST",))
    def set_language(self):
        from .preferences import set_language

        return set_language()

    @expose("/preferences", methods=("GET", "POST"))
    def preferences(self):
        from .preferences import preferences

        return preferences(self)

    @expose("/second-factor", methods=("GET", "POST"))
    def second_factor(self):
        from flask import url_for
        from flask_login import current_user

        from ..views.second_factor import manage

        return manage(current_user._get_current_object(), lambda **ctx: self.render("admin/second_factor.html", **ctx),
                      url_for("admin.second_factor"))

    @expose("/forgot-password", methods=("GET", "POST"))
    def forgot_password(self):
        from .password import forgot_password

        return forgot_password(self)

    @expose("/reset-password/<token>", methods=("GET", "POST"))
    def reset_password(self, token: str):
        from .password import reset_password

        return reset_password(self, token)
