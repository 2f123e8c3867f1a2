"""Deadlines (Scadenze): contract renewals, licence and support expiries, invoices, interventions.

A deadline belongs to a company and may concern one contact. *Own* scope shows the user's
deadlines and the company-wide ones (no contact); *company* scope every deadline of the company.
The list is sorted by date; overdue dates are red and those within 30 days amber.

Each user can publish a private iCalendar feed: a secret URL (``/deadlines-feed/<token>.ics``),
stored per contact in :class:`CalendarToken`, shown, regenerated or revoked on ``/deadlines/calendar``.
The feed needs no login; it answers 404 for an unknown or revoked token and contains only what the
scoping gate gives that contact. Email reminders go out ``DEADLINES_REMIND_DAYS`` (default 7) days
ahead, once per deadline and recipient (:func:`queue_due_reminders`, run daily by the worker through
:meth:`DeadlinesModule.periodic_tasks` or by ``crm-portal deadlines-remind``).
"""
from __future__ import annotations

import datetime as dt
import secrets

import click
import peewee as pw
from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import force_locale, gettext as _
from flask.cli import with_appcontext
from icalendar import Calendar, Event

from crm_portal.api import (AdminModelView, BaseModel, Button, Column, Company, Contact, DemoContext, Field, Module,
                            PortalUser, Section, _l, audit, current_portal_user, date_badge, db, external_url,
                            queue_email, utcnow, visible)

__all__ = ["DeadlinesModule", "Deadline", "CalendarToken", "DeadlineReminder", "queue_due_reminders"]

KINDS = ("renewal", "licence", "support", "invoice", "intervention", "other")
KIND_LABELS = {
    "renewal": _l("Contract renewal"),
    "licence": _l("Licence expiry"),
    "support": _l("Support expiry"),
    "invoice": _l("Invoice due"),
    "intervention": _l("Planned intervention"),
    "other": _l("Other"),
}
SOON_DAYS = 30


class Deadline(BaseModel):
    company = pw.ForeignKeyField(Company, backref="deadlines", on_delete="CASCADE", index=True)
    #: The contact concerned (own scope); empty: the whole company.
    contact = pw.ForeignKeyField(Contact, backref="deadlines", null=True, on_delete="CASCADE", index=True)
    title = pw.CharField(max_length=200)
    kind = pw.CharField(max_length=20, default="other", index=True, choices=[(k, k) for k in KINDS])
    due_date = pw.DateField(index=True)
    description = pw.TextField(null=True)
    reference = pw.CharField(max_length=100, null=True)
    done = pw.BooleanField(default=False, index=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "deadlines_deadline"

    def state(self, today: dt.date | None = None) -> str:
        """``done``, ``overdue``, ``soon`` (within 30 days) or ``later``."""
        today = today or dt.date.today()
        if self.done:
            return "done"
        if self.due_date < today:
            return "overdue"
        if self.due_date <= today + dt.timedelta(days=SOON_DAYS):
            return "soon"
        return "later"


class CalendarToken(BaseModel):
    """The secret of a contact's calendar feed; deleting the row revokes the feed."""

    contact = pw.ForeignKeyField(Contact, backref="calendar_tokens", unique=True, on_delete="CASCADE")
    token = pw.CharField(max_length=64, unique=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "deadlines_calendar_token"


class DeadlineReminder(BaseModel):
    """A reminder already queued: one per deadline, recipient and due date (a moved date reminds again)."""

    deadline = pw.ForeignKeyField(Deadline, backref="reminders", on_delete="CASCADE")
    contact = pw.ForeignKeyField(Contact, on_delete="CASCADE", index=True)
    due_date = pw.DateField()
    sent_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "deadlines_reminder"
        indexes = ((("deadline", "contact", "due_date"), True),)


class DeadlineAdmin(AdminModelView):
    roles = ("admin", "operator")
    column_list = ("company", "contact", "title", "kind", "due_date", "done")
    column_searchable_list = ("title", "reference")
    column_filters = ("kind", "due_date", "done")
    column_default_sort = "due_date"
    form_excluded_columns = ("created_at",)


class CalendarTokenAdmin(AdminModelView):
    roles = ("admin",)
    can_create = can_edit = False
    column_list = ("contact", "created_at", "last_used_at")
    column_exclude_list = ("token",)
    column_details_exclude_list = ("token",)
    column_export_exclude_list = ("token",)
    column_searchable_list = ()


class DeadlinesModule(Module):
    name = "deadlines"
    label = _l("Deadlines")
    icon = "calendar-event"
    description = _l("Renewals, expiries, invoices and planned interventions.")
    position = 35
    models = (Deadline, CalendarToken, DeadlineReminder)
    record = Deadline
    contact_field = Deadline.contact
    company_field = Deadline.company
    default_sort = "due_date"
    actions = ("view", "export")
    list_template = "deadlines/list.html"
    columns = [
        Column(Deadline.due_date, _l("Date"), sort=True, badge=date_badge(SOON_DAYS)),
        Column(Deadline.title, _l("Deadline"), search=True, sort=True, link=True),
        Column(Deadline.kind, _l("Type"), sort=True, filter=True, choices=KIND_LABELS),
        Column(Deadline.reference, _l("Reference"), search=True),
        Column(Deadline.done, _l("Done"), filter=True, choices={True: _l("Yes"), False: _l("No")}),
    ]
    detail = [
        Section(_l("Deadline"), [
            Field("title", _l("Deadline")),
            Field("kind", _l("Type"), choices=KIND_LABELS),
            Field("due_date", _l("Date")),
            Field("due_date", _l("State"), format=lambda value, row: str(STATE_LABELS[row.state()])),
            Field("reference", _l("Reference")),
            Field("description", _l("Description"), wide=True),
            Field("contact.full_name", _l("Concerns")),
        ]),
    ]

    def scope_query(self, query, user, scope):
        if scope == "company" and user.company_id is not None:
            return query.where(Deadline.company == user.company_id)
        mine = Deadline.contact == user.contact_id
        if user.company_id is not None:
            mine = mine | ((Deadline.company == user.company_id) & Deadline.contact.is_null())
        return query.where(mine)

    def buttons(self):
        return [Button("deadlines.list", _l("Deadlines"), endpoint="deadlines.list", icon="calendar-event",
                       description=_l("Renewals, expiries and due dates"))]

    def admin_views(self):
        category = _l("Deadlines")
        return [DeadlineAdmin(Deadline, name=_l("Deadlines"), category=category, endpoint="deadlines_deadline"),
                CalendarTokenAdmin(CalendarToken, name=_l("Calendar feeds"), category=category,
                                   endpoint="deadlines_calendartoken")]

    def periodic_tasks(self):
        return [("remind", "0 7 * * *", queue_due_reminders)]

    def template_hook(self, hook, **context):
        if hook == "list.actions" and context.get("module") is self:
            from markupsafe import Markup

            return Markup('<a class="btn btn-outline-secondary" href="{}" data-testid="calendar-link">'
                          '<i class="bi bi-calendar-week"></i> {}</a>').format(url_for("deadlines.calendar"),
                                                                              _("Calendar feed"))
        return None

    # --- views -----------------------------------------------------------------------------
    def register_views(self, bp):
        module = self

        @bp.route("/calendar")
        def calendar():
            user = current_portal_user()
            token = CalendarToken.get_or_none(CalendarToken.contact == user.contact_id)
            feed_url = external_url("deadlines_feed.feed", token=token.token) if token else None
            return render_template("deadlines/calendar.html", module=module, token=token, feed_url=feed_url)

        @bp.route("/calendar/regenerate", methods=["POST"])
        def regenerate():
            user = current_portal_user()
            with db.atomic():
                CalendarToken.delete().where(CalendarToken.contact == user.contact_id).execute()
                CalendarToken.create(contact=user.contact_id, token=secrets.token_urlsafe(32))
                audit("calendar-feed-regenerated", object_type="deadlines_calendar_token",
                      object_id=user.contact_id)
            flash(_("A new calendar address has been created; the previous one no longer works."), "success")
            return redirect(url_for("deadlines.calendar"))

        @bp.route("/calendar/revoke", methods=["POST"])
        def revoke():
            user = current_portal_user()
            with db.atomic():
                deleted = CalendarToken.delete().where(CalendarToken.contact == user.contact_id).execute()
                if deleted:
                    audit("calendar-feed-revoked", object_type="deadlines_calendar_token",
                          object_id=user.contact_id)
            flash(_("The calendar address has been revoked."), "success")
            return redirect(url_for("deadlines.calendar"))

    def connect_signals(self) -> None:
        from crm_portal import signals

        signals.password_changed.connect(rotate_feed_token, weak=False)
        signals.portal_access_revoked.connect(revoke_feed_token, weak=False)

    def init_app(self, app):
        # The feed is read by calendar programs without a session: it lives outside the module's
        # blueprint (whose every route needs a login) and authenticates by its secret token.
        feed_bp = Blueprint("deadlines_feed", __name__, url_prefix="/deadlines-feed")
        feed_bp.add_url_rule("/<token>.ics", "feed", self.feed)
        app.register_blueprint(feed_bp)

        @app.cli.command("deadlines-remind")
        @with_appcontext
        def remind_command():
            """Queue the deadline reminders that are due (DEADLINES_REMIND_DAYS ahead)."""
            with db.connection_context():
                count = queue_due_reminders()
            click.echo(f"{count} reminder email(s) queued")

    def feed(self, token: str):
        if not (20 <= len(token) <= 64):
            abort(404)
        row = (CalendarToken.select(CalendarToken, Contact).join(Contact)
               .where(CalendarToken.token == token).first())
        if row is None or not row.contact.portal_access:
            abort(404)
        user = PortalUser(row.contact)
        if not user.can(self.name, "view"):
            abort(404)
        deadlines = visible(self, user=user).where(Deadline.done == False).order_by(  # noqa: E712
            Deadline.due_date, Deadline.id)
        CalendarToken.update(last_used_at=utcnow()).where(CalendarToken.id == row.id).execute()
        with force_locale(_language(row.contact)):
            body = build_calendar(deadlines, host=request.host.split(":")[0],
                                  name=str(_("Deadlines")) + " · " + current_app.config["PORTAL_NAME"])
        response = Response(body, content_type="text/calendar; charset=utf-8")
        response.headers["Content-Disposition"] = 'inline; filename="deadlines.ics"'
        response.headers["Cache-Control"] = "private, no-store"
        return response

    # --- demo ------------------------------------------------------------------------------
    def demo_data(self, ctx: DemoContext) -> None:
        today = dt.date.today()
        c, co = ctx.contacts, ctx.companies
        specs = [
            ("acme", None, "Rinnovo contratto di assistenza", "renewal", 45, "CTR-ACME-2025"),
            ("acme", "bruno", "Scadenza licenze gestionale", "licence", 12, "GES-USR"),
            ("acme", "anna", "Fine supporto firewall FW-200", "support", 20, "FW-200"),
            ("acme", "anna", "Fattura 2025/118", "invoice", -5, "FT-2025-118"),
            ("acme", "bruno", "Aggiornamento server di posta", "intervention", 3, None),
            ("acme", None, "Verifica annuale backup", "intervention", 90, None),
            ("globex", "carla", "Rinnovo Microsoft 365", "renewal", 25, "M365-BS"),
            ("initech", "elena", "Fine supporto server DL380", "support", 200, "SRV-DL380"),
        ]
        for company, contact, title, kind, days, ref in specs:
            Deadline.create(company=co[company], contact=c[contact] if contact else None, title=title, kind=kind,
                            due_date=today + dt.timedelta(days=days), reference=ref,
                            description=f"{title}.")


def _enabled(app) -> bool:
    return DeadlinesModule.name in app.extensions["crm_portal"].modules


def rotate_feed_token(sender, *, contact: Contact, **_extra) -> None:
    """A new password gives the calendar feed a new secret address: whoever copied the old one
    (the reason one changes a password) loses it. Receiver of ``password-changed``."""
    if _enabled(sender):
        CalendarToken.update(token=secrets.token_urlsafe(32), created_at=utcnow(), last_used_at=None) \
            .where(CalendarToken.contact == contact.id).execute()


def revoke_feed_token(sender, *, contact: Contact, **_extra) -> None:
    """No portal access, no calendar feed: the address is deleted, so turning access on again does
    not revive it. Receiver of ``portal-access-revoked``."""
    if _enabled(sender):
        CalendarToken.delete().where(CalendarToken.contact == contact.id).execute()


STATE_LABELS = {
    "done": _l("Done"),
    "overdue": _l("Overdue"),
    "soon": _l("Within 30 days"),
    "later": _l("Scheduled"),
}


def _language(contact: Contact) -> str:
    languages = current_app.config["LANGUAGES"]
    return contact.language if contact.language in languages else current_app.config["BABEL_DEFAULT_LOCALE"]


def build_calendar(deadlines, host: str, name: str) -> bytes:
    """An iCalendar document with one all-day event per deadline."""
    cal = Calendar()
    cal.add("prodid", "-//CRM Portal//Deadlines//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    stamp = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for deadline in deadlines:
        event = Event()
        event.add("uid", f"deadline-{deadline.id}@{host or 'crm-portal'}")
        event.add("dtstamp", stamp)
        event.add("dtstart", deadline.due_date)
        event.add("dtend", deadline.due_date + dt.timedelta(days=1))
        event.add("summary", f"{KIND_LABELS.get(deadline.kind, deadline.kind)}: {deadline.title}")
        if deadline.description:
            event.add("description", deadline.description)
        event.add("transp", "TRANSPARENT")
        cal.add_component(event)
    return cal.to_ical()


def queue_due_reminders(today: dt.date | None = None) -> int:
    """Queue one reminder email per contact for the deadlines they can see that fall within
    ``DEADLINES_REMIND_DAYS`` days and were not reminded yet; remember each (deadline, contact, date)
    so a later run never repeats it. Returns the number of emails queued. Needs an app context."""
    module = current_app.extensions["crm_portal"].modules.get(DeadlinesModule.name)
    if module is None:
        return 0
    today = today or dt.date.today()
    days = int(current_app.config.get("DEADLINES_REMIND_DAYS", 7))
    horizon = today + dt.timedelta(days=days)
    due_companies = (Deadline.select(Deadline.company).distinct()
                     .where((Deadline.done == False) & (Deadline.due_date >= today)  # noqa: E712
                            & (Deadline.due_date <= horizon)))
    contacts = (Contact.select().where((Contact.portal_access == True)  # noqa: E712
                                       & Contact.company.in_(due_companies)).order_by(Contact.id))
    queued = 0
    for contact in contacts:
        user = PortalUser(contact)
        if not user.can(module.name, "view"):
            continue
        already = DeadlineReminder.select().where((DeadlineReminder.contact == contact.id)
                                                  & (DeadlineReminder.deadline == Deadline.id)
                                                  & (DeadlineReminder.due_date == Deadline.due_date))
        due = list(visible(module, user=user)
                   .where((Deadline.done == False) & (Deadline.due_date >= today)  # noqa: E712
                          & (Deadline.due_date <= horizon) & ~pw.fn.EXISTS(already))
                   .order_by(Deadline.due_date, Deadline.id))
        if not due:
            continue
        try:
            link = external_url("deadlines.list")
        except RuntimeError:  # no SERVER_NAME outside a request
            link = None
        with db.atomic():
            for deadline in due:
                DeadlineReminder.create(deadline=deadline, contact=contact, due_date=deadline.due_date)
            queue_email(contact.email, "deadlines_reminder", language=contact.language, contact=contact,
                        deadlines=due, days=days, link=link, kind_labels=KIND_LABELS)
        queued += 1
    return queued
