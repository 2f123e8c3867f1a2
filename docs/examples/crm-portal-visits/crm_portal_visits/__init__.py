"""On-site visit reports: the technician's visits to a customer, signed off by the customer."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import peewee as pw
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from crm_portal.api import (BaseModel, Button, Column, Company, Contact, Field, Migration, Module,
                            Section, _l)


class Visit(BaseModel):
    number = pw.CharField(max_length=20, unique=True)
    company = pw.ForeignKeyField(Company, index=True, on_delete="CASCADE")
    contact = pw.ForeignKeyField(Contact, null=True, index=True, on_delete="SET NULL")
    date = pw.DateField(index=True)
    technician = pw.CharField(max_length=100)
    summary = pw.TextField()
    hours = pw.DecimalField(max_digits=6, decimal_places=2, default=Decimal("0"))
    customer_notes = pw.TextField(null=True)
    rating = pw.IntegerField(null=True)  # added in 1.1, see add_rating

    class Meta:
        table_name = "visits_visit"


class NotesForm(FlaskForm):
    customer_notes = TextAreaField(_l("Your notes"), validators=[DataRequired(), Length(max=2000)])


def add_rating(migrator):
    """Version 1.1 added a satisfaction rating: existing databases get the column."""
    return [migrator.add_column("visits_visit", "rating", pw.IntegerField(null=True))]


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
    migrations = [Migration("0002_rating", add_rating)]

    def buttons(self):
        return [Button("visits.list", _l("Visits"), endpoint="visits.list", icon="truck",
                       description=_l("On-site visits and their reports"))]

    def demo_data(self, ctx):
        acme = ctx.companies["acme"]
        for n, (who, days) in enumerate([("bruno", 3), ("anna", 10), ("bruno", 40)], start=1):
            Visit.create(number=f"V{n:04d}", company=acme, contact=ctx.contacts[who],
                         date=dt.date.today() - dt.timedelta(days=days), technician="Marco Tecnico",
                         summary="Installazione aggiornamento e verifica backup.", hours=Decimal("2.50"))
