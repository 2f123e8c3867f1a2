"""On-site visit reports: the technician's visits to a customer, annotated by the customer."""
from __future__ import annotations

from crm_portal.api import Button, Column, Field, Module, Section, _l

from . import demo
from .forms import NotesForm
from .migrations import MIGRATIONS
from .models import Visit


class VisitsModule(Module):
    api_version = "1.0"
    name = "visits"
    label = _l("Visits")
    icon = "truck"
    models = [Visit]
    record = Visit
    contact_field = Visit.contact
    company_field = Visit.company
    default_sort = "-date"
    actions = ("view", "edit", "export")
    edit_form = NotesForm
    columns = [
        Column(Visit.number, _l("Number"), search=True, sort=True, link=True),
        Column(Visit.date, _l("Date"), sort=True),
        Column(Visit.technician, _l("Technician"), search=True, sort=True, filter=False),
        Column(Visit.contact, _l("Contact"), display="last_name", search=True, sort=True,
               format=lambda contact, row: contact.full_name),
        Column(Visit.hours, _l("Hours"), sort=True),
    ]
    detail = [
        Section(_l("Visit"), [Field("number", _l("Number")), Field("date", _l("Date")),
                              Field("technician", _l("Technician")), Field("hours", _l("Hours"))]),
        Section(_l("Report"), [Field("summary", _l("Summary"), wide=True),
                               Field("customer_notes", _l("Your notes"), wide=True)]),
    ]
    migrations = MIGRATIONS

    def buttons(self):
        return [Button("visits.list", _l("Visits"), endpoint="visits.list", icon="truck",
                       description=_l("On-site visits and their reports"))]

    def demo_data(self, ctx):
        demo.load(ctx)
