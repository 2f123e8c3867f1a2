"""Customer-side views: the calendar feed page (create, regenerate, revoke its secret address), the
feed itself (``/deadlines-feed/<token>.ics``, no login) and the list's calendar button.

The list, export and detail pages are the host's generic views.
"""
from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from icalendar import Calendar, Event
from markupsafe import Markup

from crm_portal.api import (
    Contact,
    DueItem,
    Module,
    ModuleBlueprint,
    PortalUser,
    audit,
    content_disposition,
    current_module,
    current_portal_user,
    db,
    external_url,
    utcnow,
    visible,
)

from .models import KIND_LABELS, CalendarToken, Deadline

bp = ModuleBlueprint("deadlines", __name__)

# The feed is read by calendar programs without a session: it lives outside the module's blueprint
# (whose every route needs a login) and authenticates by its secret token.
feed_bp = Blueprint("deadlines_feed", __name__, url_prefix="/deadlines-feed")


@bp.route("/calendar")
def calendar() -> Any:
    """The user's calendar feed address, if they have one, and the buttons to manage it."""
    user = current_portal_user()
    token = CalendarToken.get_or_none(CalendarToken.contact == user.contact_id)
    feed_url = external_url("deadlines_feed.feed", token=token.token) if token else None
    if feed_url and getattr(user, "viewing_as", False):  # the address is the contact's secret, not staff's
        feed_url = _("(hidden while the portal is viewed as this customer)")
    return render_template("deadlines/calendar.html", module=current_module(), token=token, feed_url=feed_url)


@bp.route("/calendar/regenerate", methods=["POST"])
def regenerate() -> Any:
    """A new secret address; the previous one, if any, stops working."""
    user = current_portal_user()
    with db.atomic():
        replaced = CalendarToken.delete().where(CalendarToken.contact == user.contact_id).execute()
        CalendarToken.create(contact=user.contact_id, token=secrets.token_urlsafe(32))
        audit("calendar-feed-regenerated", object_type="deadlines_calendar_token", object_id=user.contact_id)
    if replaced:
        flash(_("A new calendar address has been created; the previous one no longer works."), "success")
    else:
        flash(_("Your calendar address has been created."), "success")
    return redirect(url_for("deadlines.calendar"))


@bp.route("/calendar/revoke", methods=["POST"])
def revoke() -> Any:
    """No more feed address."""
    user = current_portal_user()
    with db.atomic():
        deleted = CalendarToken.delete().where(CalendarToken.contact == user.contact_id).execute()
        if deleted:
            audit("calendar-feed-revoked", object_type="deadlines_calendar_token", object_id=user.contact_id)
    flash(_("The calendar address has been revoked."), "success")
    return redirect(url_for("deadlines.calendar"))


@feed_bp.route("/<token>.ics")
def feed(token: str) -> Response:
    """The open deadlines the token's contact can see today, in their language; 404 for an unknown
    or revoked token, a contact without portal access or without the module."""
    if not (20 <= len(token) <= 64):
        abort(404)
    row = CalendarToken.select(CalendarToken, Contact).join(Contact).where(CalendarToken.token == token).first()
    if row is None or not row.contact.portal_access:
        abort(404)
    module = current_app.extensions["crm_portal"].modules["deadlines"]
    user = PortalUser(row.contact)
    if not user.can(module.name, "view"):
        abort(404)
    deadlines = (visible(module, user=user).where(Deadline.done == False)  # noqa: E712
                 .order_by(Deadline.due_date, Deadline.id))
    CalendarToken.update(last_used_at=utcnow()).where(CalendarToken.id == row.id).execute()
    with force_locale(_language(row.contact)):
        # Event UIDs carry the portal's own host name (EXTERNAL_URL), never the request's Host.
        body = build_calendar(deadlines, host=urlsplit(external_url("portal.dashboard")).hostname or "localhost",
                              name=str(_("Deadlines")) + " · " + current_app.config["PORTAL_NAME"])
    response = Response(body, content_type="text/calendar; charset=utf-8")
    response.headers["Content-Disposition"] = content_disposition("deadlines.ics", inline=True)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _language(contact: Contact) -> str:
    languages = current_app.config["LANGUAGES"]
    return contact.language if contact.language in languages else current_app.config["BABEL_DEFAULT_LOCALE"]


def build_calendar(deadlines: Iterable[Deadline], host: str, name: str) -> bytes:
    """An iCalendar document with one all-day event per deadline."""
    cal = Calendar()
    cal.add("prodid", "-//CRM Portal//Deadlines//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    stamp = dt.datetime.now(dt.UTC).replace(microsecond=0)
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


def list_actions() -> Markup:
    """The list's "Calendar feed" button."""
    return Markup('<a class="btn btn-outline-secondary" href="{}" data-testid="calendar-link">'
                  '<i class="bi bi-calendar-week"></i> {}</a>').format(url_for("deadlines.calendar"),
                                                                      _("Calendar feed"))


def due_items(module: Module, user: PortalUser, today: dt.date, until: dt.date, limit: int) -> list[DueItem]:
    """The open deadlines ``user`` sees falling due by ``until``, the overdue ones included (still
    open, they need attention), earliest first, for the dashboard's widget: one query."""
    rows = (visible(module, user=user)
            .where((Deadline.done == False) & (Deadline.due_date <= until))  # noqa: E712
            .order_by(Deadline.due_date, Deadline.id).limit(limit))
    return [DueItem(due=d.due_date, title=d.title, kind=KIND_LABELS.get(d.kind, d.kind), reference=d.reference,
                    url=url_for("deadlines.detail", record_id=d.id)) for d in rows]


def init_app(app: Flask) -> None:
    """The feed's own blueprint (no login)."""
    app.register_blueprint(feed_bp)
