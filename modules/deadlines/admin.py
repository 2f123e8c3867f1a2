"""The staff side: deadlines, and the calendar feeds (listed and revoked, never shown)."""
from __future__ import annotations

from crm_portal.api import AdminModelView, _l

from .models import KIND_LABELS, CalendarToken, Deadline

#: The names of the deadlines' fields in the admin (the shared ones come from the portal).
LABELS = {"kind": _l("Type"), "due_date": _l("Due date"), "reference": _l("Reference"), "done": _l("Done"),
          "token": _l("Feed address"), "last_used_at": _l("Last used")}


class DeadlineAdmin(AdminModelView):
    roles = ("admin", "operator")
    field_labels = LABELS
    choice_labels = {"kind": KIND_LABELS}
    audit_labels = {"calendar-feed-revoked": _l("Calendar feed revoked"),
                    "calendar-feed-regenerated": _l("Calendar feed address renewed")}
    column_list = ("company", "contact", "title", "kind", "due_date", "done")
    column_searchable_list = ("title", "reference")
    column_filters = ("kind", "due_date", "done")
    column_default_sort = "due_date"
    form_excluded_columns = ("created_at",)


class CalendarTokenAdmin(AdminModelView):
    roles = ("admin",)
    field_labels = LABELS
    can_create = can_edit = False
    column_list = ("contact", "created_at", "last_used_at")
    # The token is the feed's password: staff never see it.
    column_exclude_list = ("token",)
    column_details_exclude_list = ("token",)
    column_export_exclude_list = ("token",)
    column_searchable_list = ()


def views() -> list[AdminModelView]:
    """The module's admin views, under one menu category."""
    category = _l("Deadlines")
    return [DeadlineAdmin(Deadline, name=_l("Deadlines"), category=category, endpoint="deadlines_deadline"),
            CalendarTokenAdmin(CalendarToken, name=_l("Calendar feeds"), category=category,
                               endpoint="deadlines_calendartoken")]
