"""The public plugin API of CRM Portal.

A module is a subclass of :class:`Module` found through the ``crm_portal.modules`` entry-point group or
in a configured modules folder. Everything a module needs from the host is importable from here (and
from :mod:`crm_portal.signals`); built-in modules use nothing else. See ``docs/plugins.md``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import peewee as pw
from flask import Blueprint, current_app, request
from flask_babel import lazy_gettext as _l

from .actions import ActionLabel, describe_action
from .db import BaseModel, db, is_postgres, utcnow
from .i18n import format_money, human_size
from .mailin.records import comments_by_email, email_that_opened
from .models import ACTIONS, SCOPES, AuditEntry, Company, Contact, Localized, Profile

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask
    from flask_admin.base import BaseView
    from playhouse.migrate import SchemaMigrator

__all__ = [
    "API_VERSION", "Module", "Column", "date_badge", "Field", "Section", "Button", "Migration", "DemoContext",
    "ActionLabel",
    "BaseModel", "Company", "Contact", "AuditEntry", "db", "utcnow", "_l", "SCOPES", "ACTIONS",
    "AdminModelView", "visible", "get_or_404", "require", "current_portal_user", "audit",
    "queue_email", "external_url", "PortalUser", "UploadRejected", "StoredFile", "save_upload",
    "send_stored", "delete_stored", "remove_after_commit", "delete_with_files", "WriteRefused",
    "WorkingHours", "add_working_hours", "StaffUser", "staff_members", "current_staff",
    "ModuleBlueprint", "current_module", "Localized", "human_size", "content_disposition", "is_postgres",
    "Profile", "send_invitation", "portal_access_granted", "revoke_access", "reserve_mail_request",
    "DueItem",
    "NotificationEvent", "notify_contact", "wants_notification", "format_money",
    "email_that_opened", "comments_by_email", "is_answering_mail", "SyncFile", "ProcessCache",
]

#: Version of this API. A module states the version it was written for in ``Module.api_version``;
#: it loads when the major numbers match and its minor is not newer than the host's.
API_VERSION = "1.4"


Formatter = Callable[[Any, Any], Any]


Choices = Mapping[Any, Any] | Callable[[], Mapping[Any, Any]]
Badge = Mapping[Any, str] | Callable[[Any, Any], str | None]


@dataclasses.dataclass(frozen=True)
class Column:
    """A column of a module's list page.

    ``field`` is a field of the module's record. For a foreign key, ``display`` names the attribute of
    the related row to show, search and sort on (the related table is joined, never queried per row).
    ``choices`` maps stored values to (translatable) labels: a mapping, or a function returning one
    (for choices kept in a table; it is called once per request). ``badge`` gives the Bootstrap
    colour of a value's badge: a mapping, or a function ``(value, row) -> colour or None`` (see
    :func:`date_badge`). ``sort_by`` is what a sortable column sorts on instead of its own value:
    an SQL expression (``fn.LOWER(Model.title)`` for a case-insensitive sort) or a function
    returning one, called once per request (an order kept in a table, e.g. workflow states).
    """

    field: pw.Field
    label: Any = None
    search: bool = False
    sort: bool = False
    filter: bool = False
    display: str | None = None
    link: bool = False
    choices: Choices | None = None
    badge: Badge | None = None
    format: Formatter | None = None
    sort_by: Any = dataclasses.field(default=None, compare=False)  # expressions are not comparable

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def title(self) -> Any:
        return self.label if self.label is not None else self.field.verbose_name or self.name.replace("_", " ").title()

    @property
    def is_relation(self) -> bool:
        return isinstance(self.field, pw.ForeignKeyField)

    def choice_map(self) -> Mapping[Any, Any]:
        if callable(self.choices):
            from flask import g, has_request_context

            if not has_request_context():
                return self.choices()
            cache = g.setdefault("_crm_column_choices", {})
            if id(self) not in cache:
                cache[id(self)] = self.choices()
            return cache[id(self)]
        if self.choices is not None:
            return self.choices
        return dict(self.field.choices or ())

    def badge_for(self, value: Any, row: Any = None) -> str | None:
        """The badge colour for ``value`` (of ``row``), or ``None`` to show it plain."""
        if self.badge is None or value is None:
            return None
        if callable(self.badge):
            return self.badge(value, row)
        return self.badge.get(value)


def date_badge(soon_days: int, *, past: str | None = "danger",
               soon: str | None = "warning") -> Callable[[Any, Any], str | None]:
    """A ``Column.badge`` for dates: ``past`` colour before today, ``soon`` within ``soon_days``."""
    import datetime as dt

    def colour(value: Any, row: Any = None) -> str | None:
        if not isinstance(value, dt.date):
            return None
        if isinstance(value, dt.datetime):
            value = value.date()
        today = dt.date.today()
        if value < today:
            return past
        if value <= today + dt.timedelta(days=soon_days):
            return soon
        return None

    return colour


@dataclasses.dataclass(frozen=True)
class Field:
    """One value on a detail page: an attribute name (dotted paths follow relations) and its label."""

    name: str
    label: Any = None
    format: Formatter | None = None
    choices: Mapping[Any, Any] | None = None
    wide: bool = False


@dataclasses.dataclass(frozen=True)
class Section:
    """A titled group of :class:`Field` on a detail page."""

    title: Any
    fields: Sequence[Field]


@dataclasses.dataclass(frozen=True)
class Button:
    """A dashboard button a module offers; admins place it on profiles.

    Give either ``endpoint`` (with optional ``args``) or ``url``. ``label`` and ``description`` are
    lazily translated strings; their Italian and English text is stored when the button is installed.
    """

    key: str
    label: Any
    endpoint: str | None = None
    args: Mapping[str, Any] | None = None
    url: str | None = None
    icon: str = "grid"
    description: Any = None
    style: str = "primary"


@dataclasses.dataclass(frozen=True)
class NotificationEvent:
    """Something a module emails contacts about; each contact chooses in "My data" which events
    they are told about (account emails, such as password resets, always go out).

    ``key`` is ``"<module>.<event>"``, unique in the portal; ``label`` (and the optional
    ``description``) are lazily translated strings shown on the "My data" page; ``default`` is the
    choice of a contact who never changed it. Declare them in ``Module.notifications`` and send with
    :func:`notify_contact`.
    """

    key: str
    label: Any
    description: Any = None
    default: bool = True


@dataclasses.dataclass(frozen=True)
class Migration:
    """A schema step of a module, applied once by ``crm-portal migrate`` and recorded in history.

    ``apply`` receives a ``playhouse.migrate`` migrator for the active database and returns the list
    of operations to run (``migrator.add_column(...)`` …); they run in one transaction.
    A fresh install creates the current tables and marks every step as applied.
    """

    name: str
    apply: Callable[[SchemaMigrator], Iterable[Any]]


@dataclasses.dataclass(frozen=True)
class DueItem:
    """Something of a module's that falls due, for the dashboard's "due soon" widget
    (:meth:`Module.due_items`): its date, a title, what kind of date it is (a translated label)
    and the link to the record. ``reference`` is an optional code shown beside the title."""

    due: dt.date
    title: str
    kind: Any
    url: str
    reference: str | None = None


@dataclasses.dataclass
class DemoContext:
    """What ``Module.demo_data`` receives: the demo companies and contacts by short key."""

    companies: dict[str, Company]
    contacts: dict[str, Contact]
    staff: dict[str, Any]
    rng: Any


class ModuleBlueprint(Blueprint):
    """The blueprint of a module's own views, declared once at the top of its ``views.py``::

        bp = ModuleBlueprint("quotes", __name__)

        @bp.post("/<int:record_id>/accept")
        def accept(record_id: int): ...

    and named by the module (``blueprint = bp``). It is mounted at ``/<name>/`` with the module's
    ``templates/`` and ``static/`` folders; the host adds the generic views (``<name>.list``,
    ``.detail``, ``.export`` …) and the gate that answers 404 to anyone whose profile does not
    enable the module, and registers it in every application.
    """

    def __init__(self, name: str, import_name: str) -> None:
        package_dir = Path(sys.modules[import_name].__file__ or ".").parent
        super().__init__(
            name, import_name, url_prefix=f"/{name}",
            template_folder=str(package_dir / "templates") if (package_dir / "templates").is_dir() else None,
            static_folder=str(package_dir / "static") if (package_dir / "static").is_dir() else None,
            static_url_path="/static",
        )
        self.generic_views_added = False


def current_module() -> Module:
    """The module whose blueprint handles the current request (404 outside a module's URLs)."""
    from flask import abort

    module = current_app.extensions["crm_portal"].modules.get(request.blueprint or "")
    if module is None:
        abort(404)
    return module


class Module:
    """Base class of every portal module (extension point).

    Subclass it, set the class attributes and override the hooks you need. One ``name`` is used
    everywhere: entry point, blueprint (``<name>.list``, ``<name>.detail`` …), URL prefix
    (``/<name>/``), table prefix (``<name>_``) and template folder (``templates/<name>/``).
    """

    api_version: ClassVar[str] = API_VERSION
    #: The module's own release, shown by ``crm-portal --version`` and ``crm-portal modules``;
    #: ``None``: the version of the distribution whose entry point registers it.
    version: ClassVar[str | None] = None
    name: ClassVar[str] = ""
    label: ClassVar[Any] = ""
    icon: ClassVar[str] = "grid"
    description: ClassVar[Any] = None
    #: Menu order; lower first.
    position: ClassVar[int] = 100
    #: Modules whose demo data this module's :meth:`demo_data` uses (loaded before it when present).
    demo_after: ClassVar[Sequence[str]] = ()

    models: ClassVar[Sequence[type[BaseModel]]] = ()
    #: The model the portal lists; ``None`` for a module with only custom views.
    record: ClassVar[type[BaseModel] | None] = None
    #: Foreign key of ``record`` to the contact it belongs to: makes the *own* scope automatic.
    contact_field: ClassVar[pw.Field | None] = None
    #: Foreign key of ``record`` to the company it belongs to: makes the *company* scope automatic.
    company_field: ClassVar[pw.Field | None] = None

    columns: ClassVar[Sequence[Column]] = ()
    #: A lower-cased text field holding everything a record can be found by; when set, the list's
    #: global search matches every word in it (one indexed column) instead of OR-ing the columns.
    search_field: ClassVar[pw.Field | None] = None
    #: Query-string parameters of the module's own list filters (tabs, date ranges …): the list
    #: keeps them in its links and export, and hands them to :meth:`filter_list`.
    list_params: ClassVar[Sequence[str]] = ()
    #: Default ordering of the list, a column name with an optional leading ``-``.
    default_sort: ClassVar[str | None] = None
    detail: ClassVar[Sequence[Section]] = ()
    #: Flask-WTF form classes for portal create/edit; ``None`` disables the view.
    create_form: ClassVar[type | None] = None
    edit_form: ClassVar[type | None] = None
    #: Actions a profile can grant on this module.
    actions: ClassVar[Sequence[str]] = ("view",)
    #: How the profile editor shows the actions: ``{"accept": ActionLabel(_l("Accept or reject
    #: quotes"), _l("Decide on quotes that are still valid."))}``. Every key must be one of
    #: ``actions``; an action left out gets the host's text for common actions (``view``,
    #: ``create``, ``export`` …), or its name.
    action_labels: ClassVar[Mapping[str, ActionLabel]] = {}
    migrations: ClassVar[Sequence[Migration]] = ()
    #: The events this module emails contacts about (each contact may turn each off or on).
    notifications: ClassVar[Sequence[NotificationEvent]] = ()
    #: What the module's webhook events are named after: ``quote`` gives ``quote.created`` and
    #: ``quote.updated``; empty: the module's ``name`` (see crm_portal.webhook_events).
    event_name: ClassVar[str] = ""

    #: The CRM sync type of ``record`` (``"product"``): a CRM may push these records by its own ids
    #: (``PUT /api/v1/sync/<type>/<external id>``, docs/api.md "CRM sync"); ``None``: it may not.
    sync_type: ClassVar[str | None] = None
    #: The fields of ``record`` a push may write, all owned by the CRM (``SYNC_CRM_OWNED_FIELDS``
    #: may narrow them); a foreign key to a company or contact is pushed as ``<field>_external_id``.
    sync_fields: ClassVar[Sequence[str]] = ()
    #: What the ``deactivate`` deletion policy writes on a record the CRM deleted (``{"active":
    #: False}``); empty: the type knows no such state (``ignore`` or ``delete`` only).
    sync_deactivate: ClassVar[Mapping[str, Any]] = {}
    #: Files a push may carry, by payload key: ``{"file": SyncFile()}`` — the payload gives
    #: ``{"name": "offerta.pdf", "content_base64": "…"}``, checked by the upload rules and stored in
    #: the record's columns the :class:`SyncFile` names (``record`` declares ``file_area`` and
    #: ``file_fields``). See crm_portal.sync.files.
    sync_files: ClassVar[Mapping[str, SyncFile]] = {}

    #: The module's own views (a :class:`ModuleBlueprint` declared in its ``views.py``); ``None``
    #: for a module served by the generic views alone.
    blueprint: ClassVar[ModuleBlueprint | None] = None

    #: Templates overriding the generic ones, e.g. ``"tickets/detail.html"``.
    list_template: ClassVar[str] = "portal/list.html"
    detail_template: ClassVar[str] = "portal/detail.html"
    form_template: ClassVar[str] = "portal/form.html"

    def action_label(self, action: str) -> ActionLabel:
        """The label and explanation the profile editor shows for ``action`` (see :attr:`action_labels`)."""
        return describe_action(self.action_labels, action)

    # --- scoping ---------------------------------------------------------------------------
    def scope_query(self, query: pw.ModelSelect[Any], user: PortalUser, scope: str) -> pw.ModelSelect[Any]:
        """Restrict ``query`` (over ``record``) to what ``user`` may see under ``scope``.

        The default follows ``contact_field`` / ``company_field``: *own* means the user's records (or,
        for a module linked only to companies, their company's); *company* means every record of the
        user's company. Override for anything else (public records, shares …); the scoping gate is
        the only caller.
        """
        record = self.record
        assert record is not None
        contact_id, company_id = user.contact_id, user.company_id
        if scope == "company" and company_id is not None:
            if self.company_field is not None:
                return query.where(self.company_field == company_id)
            if self.contact_field is not None:
                colleagues = Contact.select(Contact.id).where(Contact.company == company_id)
                return query.where(self.contact_field.in_(colleagues))
        if self.contact_field is not None:
            return query.where(self.contact_field == contact_id)
        if self.company_field is not None and company_id is not None:
            return query.where(self.company_field == company_id)
        return query.where(pw.SQL("1 = 0"))

    # --- hooks -------------------------------------------------------------------------------
    def buttons(self) -> Sequence[Button]:
        """Dashboard buttons this module offers (installed into the Button table by ``init``)."""
        return ()

    def admin_views(self) -> Iterable[BaseView]:
        """Flask-Admin views for staff. The default is one :class:`AdminModelView` per model."""
        category = self.label or self.name
        return [AdminModelView(model, name=model.__name__, category=category,
                               endpoint=f"{self.name}_{model.__name__.lower()}") for model in self.models]

    def register_views(self, blueprint: Blueprint) -> None:
        """Add extra routes to the module's blueprint (mounted at ``/<name>/``). Prefer declaring
        them as functions of a :class:`ModuleBlueprint` in ``views.py`` (``blueprint = bp``)."""

    def list_columns(self, user: PortalUser) -> Sequence[Column]:
        """The columns ``user`` sees on the list page and in the CSV export (default: all of
        ``columns``). Hide columns some users may not read; a hidden column should be neither
        searchable nor sortable, since search and sort follow ``columns``."""
        return self.columns

    def list_context(self, page: Any, user: PortalUser) -> Mapping[str, Any]:
        """Extra template variables for the module's list page (counts for tabs, choices of its
        own filters …), computed by the view: templates never query."""
        return {}

    def detail_context(self, record: Any, user: PortalUser) -> Mapping[str, Any]:
        """Extra template variables for a record's detail page (its conversation, attachments,
        links to other modules' records …), computed by the view: templates never query."""
        return {}

    def init_app(self, app: Flask) -> None:
        """Called once per application after the module's blueprint is registered."""

    def periodic_tasks(self) -> Iterable[tuple[str, Any, Callable[[], Any]]]:
        """Jobs the background worker (``crm-portal worker``) runs on a schedule.

        Return ``(name, schedule, func)`` triples. ``name`` is unique within the module (the job is
        registered as ``<module>.<name>``); ``schedule`` is a five-field crontab string
        (``"*/5 * * * *"``: minute, hour, day, month, day of week), a mapping of
        :func:`huey.crontab` arguments or a callable taking a datetime; ``func`` takes no arguments
        and runs inside an application context with a database connection. Make it idempotent: a
        run may be skipped or repeated. Email goes through :func:`queue_email` as usual.
        """
        return ()

    def connect_signals(self) -> None:
        """Connect receivers to :mod:`crm_portal.signals`. Called once per application; use ``weak=False``
        or module-level functions, and make receivers idempotent across applications."""

    def prepare_new(self, record: BaseModel, user: PortalUser) -> None:
        """Fill a record created from the portal before it is saved. The default links it to the
        creating contact and their company."""
        if self.contact_field is not None:
            setattr(record, self.contact_field.name, user.contact_id)
        if self.company_field is not None and user.company_id is not None:
            setattr(record, self.company_field.name, user.company_id)

    def template_hook(self, hook: str, **context: Any) -> Any:
        """Return markup to insert at a named hook of the host templates (``dashboard.after-buttons``,
        ``detail.after-fields`` …), or ``None``. Called only for modules the user can see."""
        return None

    def demo_data(self, ctx: DemoContext) -> None:
        """Create realistic demo records for ``crm-portal demo``."""

    def due_items(self, user: PortalUser, today: dt.date, until: dt.date, limit: int) -> Sequence[DueItem] | None:
        """What of ``user``'s falls due by ``until``, for the dashboard's "due soon" widget:
        overdue items (before ``today``) included if they still need attention, at most ``limit``
        :class:`DueItem` in date order, read through the scoping gate (``visible(self, user=user)``)
        in a constant number of queries. Return ``None`` when the module has nothing of the kind:
        the widget shows only when a module the user can view returns a list (even an empty one).
        Called only for modules whose ``view`` action the user's profile grants."""
        return None

    def filter_list(self, query: pw.ModelSelect[Any], params: Mapping[str, str],
                    user: PortalUser) -> pw.ModelSelect[Any]:
        """Apply the module's own list filters: ``params`` holds the request's values of
        ``list_params``. Called on the already scoped query, for the list page and its CSV export."""
        return query

    def list_rows(self, query: pw.ModelSelect[Any], user: PortalUser) -> pw.ModelSelect[Any]:
        """Add to the query of the rows a list page (or its CSV export) shows what they display
        besides their own columns: a ``LEFT JOIN`` on a unique key, a computed column. Applied after
        the count, which never pays for it; it must not change which rows match."""
        return query

    def base_query(self) -> pw.ModelSelect[Any]:
        """The unscoped query over ``record``; the gate narrows it."""
        assert self.record is not None
        return self.record.select()


# Names re-exported for plugins; imported late to keep this module importable on its own.
from .account.service import portal_access_granted, revoke_access, send_invitation  # noqa: E402
from .admin.views import AdminModelView, WriteRefused  # noqa: E402
from .audit import audit  # noqa: E402
from .auth import PortalUser, current_portal_user  # noqa: E402
from .cache import ProcessCache  # noqa: E402
from .notifications import notify_contact, wants_notification  # noqa: E402
from .outbox import external_url, is_answering_mail, queue_email  # noqa: E402
from .ratelimit import reserve_mail_request  # noqa: E402
from .scoping import get_or_404, require, visible  # noqa: E402
from .staff import StaffUser, current_staff, staff_members  # noqa: E402
from .sync.files import SyncFile  # noqa: E402
from .uploads import (  # noqa: E402
    StoredFile,
    UploadRejected,
    content_disposition,
    delete_stored,
    delete_with_files,
    remove_after_commit,
    save_upload,
    send_stored,
)
from .workhours import WorkingHours, add_working_hours  # noqa: E402
