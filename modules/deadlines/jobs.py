"""What happens after a change, and the module's background work.

- **Reminders**: one email per contact for the deadlines they can see within
  ``DEADLINES_REMIND_DAYS`` (default 7) days, once per deadline, recipient and date
  (:func:`queue_due_reminders`: the worker's daily job and the ``deadlines-remind`` command).
- **Calendar feed**: a new password gives it a new secret address, revoked portal access deletes it.
"""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import click
import peewee as pw
from flask import Flask, current_app
from flask.cli import with_appcontext

from crm_portal import signals
from crm_portal.api import Contact, PortalUser, db, external_url, notify_contact, utcnow, visible, wants_notification

from .models import KIND_LABELS, CalendarToken, Deadline, DeadlineReminder

NAME = "deadlines"
#: The notification event of the reminders (each contact may turn it off in "My data").
REMINDER = "deadlines.reminder"


# --- reminders ---------------------------------------------------------------------------------
def queue_due_reminders(today: dt.date | None = None) -> int:
    """Queue one reminder email per contact for the deadlines they can see that fall within
    ``DEADLINES_REMIND_DAYS`` days and were not reminded yet; remember each (deadline, contact, date)
    so a later run never repeats it; contacts who turned the reminders off get none. Returns the
    number of emails queued. Needs an app context."""
    module = current_app.extensions["crm_portal"].modules.get(NAME)
    if module is None:
        return 0
    today = today or dt.date.today()
    days = int(current_app.config.get("DEADLINES_REMIND_DAYS", 7))
    horizon = today + dt.timedelta(days=days)
    pending = (Deadline.done == False) & (Deadline.due_date >= today) & (Deadline.due_date <= horizon)  # noqa: E712
    due_companies = Deadline.select(Deadline.company).distinct().where(pending)
    contacts = (Contact.select().where((Contact.portal_access == True)  # noqa: E712
                                       & Contact.company.in_(due_companies)).order_by(Contact.id))
    link = external_url("deadlines.list")
    queued = 0
    for contact in contacts:
        user = PortalUser(contact)
        if not user.can(NAME, "view") or not wants_notification(contact, REMINDER):
            continue
        already = DeadlineReminder.select().where((DeadlineReminder.contact == contact.id)
                                                  & (DeadlineReminder.deadline == Deadline.id)
                                                  & (DeadlineReminder.due_date == Deadline.due_date))
        due = list(visible(module, user=user).where(pending & ~pw.fn.EXISTS(already))
                   .order_by(Deadline.due_date, Deadline.id))
        if not due:
            continue
        with db.atomic():
            for deadline in due:
                DeadlineReminder.create(deadline=deadline, contact=contact, due_date=deadline.due_date)
            notify_contact(contact, REMINDER, "deadlines_reminder", deadlines=due, days=days, link=link,
                           kind_labels=KIND_LABELS)
        queued += 1
    return queued


PERIODIC = [("remind", "0 7 * * *", queue_due_reminders)]


@click.command("deadlines-remind")
@with_appcontext
def remind_command() -> None:
    """Queue the deadline reminders that are due (DEADLINES_REMIND_DAYS ahead)."""
    with db.connection_context():
        count = queue_due_reminders()
    click.echo(f"{count} reminder email(s) queued")


# --- calendar feed -----------------------------------------------------------------------------
def _enabled(app: Flask) -> bool:
    return NAME in app.extensions["crm_portal"].modules


def rotate_feed_token(sender: Flask, *, contact: Contact, **_extra: Any) -> None:
    """A new password gives the calendar feed a new secret address: whoever copied the old one
    (the reason one changes a password) loses it. Receiver of ``password-changed``."""
    if _enabled(sender):
        CalendarToken.update(token=secrets.token_urlsafe(32), created_at=utcnow(), last_used_at=None) \
            .where(CalendarToken.contact == contact.id).execute()


def revoke_feed_token(sender: Flask, *, contact: Contact, **_extra: Any) -> None:
    """No portal access, no calendar feed: the address is deleted, so turning access on again does
    not revive it. Receiver of ``portal-access-revoked``."""
    if _enabled(sender):
        CalendarToken.delete().where(CalendarToken.contact == contact.id).execute()


def connect() -> None:
    """Connect the module's receivers (idempotent across applications)."""
    signals.password_changed.connect(rotate_feed_token, weak=False)
    signals.portal_access_revoked.connect(revoke_feed_token, weak=False)


def init_app(app: Flask) -> None:
    """The ``deadlines-remind`` command."""
    app.cli.add_command(remind_command)
