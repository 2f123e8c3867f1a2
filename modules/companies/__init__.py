"""Companies: my company's data as the CRM holds it."""
from __future__ import annotations

from crm_portal.api import ActionLabel, Button, Column, Company, Field, Module, Section, _l

from .views import bp


class CompaniesModule(Module):
    name = "companies"
    event_name = "company"
    label = _l("My company")
    icon = "building"
    description = _l("Your company's registered data and conditions.")
    position = 80
    record = Company
    company_field = Company.id
    default_sort = "name"
    actions = ("view",)
    action_labels = {
        "view": ActionLabel(_l("See the company's data"), _l("The company's details as we hold them.")),
    }
    blueprint = bp
    columns = [
        Column(Company.name, _l("Company name"), search=True, sort=True, link=True),
        Column(Company.vat_number, _l("VAT number"), search=True),
        Column(Company.city, _l("City"), search=True, sort=True),
        Column(Company.phone, _l("Phone")),
        Column(Company.email, _l("Email")),
    ]
    detail = [
        Section(_l("Company"), [
            Field("name", _l("Company name")),
            Field("vat_number", _l("VAT number")),
            Field("phone", _l("Phone")),
            Field("email", _l("Email")),
            Field("website", _l("Website")),
        ]),
        Section(_l("Address"), [
            Field("address", _l("Address")),
            Field("postal_code", _l("Postal code")),
            Field("city", _l("City")),
            Field("province", _l("Province")),
            Field("country", _l("Country")),
        ]),
        Section(_l("Agreements"), [
            Field("reserved_conditions", _l("Reserved conditions"), wide=True),
            Field("notes", _l("Notes"), wide=True),
        ]),
    ]

    def buttons(self):
        return [Button("companies.mine", _l("My company"), endpoint="companies.mine", icon="building",
                       description=_l("Registered data and reserved conditions"))]

    def admin_views(self):
        return []  # companies are core records, already in the CRM section of the admin
