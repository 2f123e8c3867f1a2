"""Contacts: the colleagues of my company (company scope) or my own card (own scope)."""
from __future__ import annotations

from crm_portal.api import ActionLabel, Button, Column, Contact, Field, Module, Section, _l


class ContactsModule(Module):
    name = "contacts"
    label = _l("Contacts")
    icon = "people"
    description = _l("The people of your company who use the portal or talk with us.")
    position = 70
    record = Contact
    contact_field = Contact.id
    company_field = Contact.company
    default_sort = "last_name"
    actions = ("view", "export")
    action_labels = {
        "view": ActionLabel(_l("See contacts"),
                            _l("Their own card (own records) or their colleagues' (whole company).")),
        "export": ActionLabel(_l("Export contacts"), _l("Download the list of contacts as a CSV spreadsheet.")),
    }
    columns = [
        Column(Contact.last_name, _l("Surname"), search=True, sort=True, link=True),
        Column(Contact.first_name, _l("Name"), search=True, sort=True),
        Column(Contact.email, _l("Email"), search=True, sort=True),
        Column(Contact.phone, _l("Phone"), search=True),
        Column(Contact.mobile, _l("Mobile"), search=True),
        Column(Contact.office, _l("Office"), search=True, sort=True),
        Column(Contact.role, _l("Role"), search=True, sort=True),
        Column(Contact.portal_access, _l("Portal access"), filter=True,
               choices={True: _l("Yes"), False: _l("No")}),
    ]
    detail = [
        Section(_l("Contact"), [
            Field("first_name", _l("Name")),
            Field("last_name", _l("Surname")),
            Field("email", _l("Email")),
            Field("phone", _l("Phone")),
            Field("mobile", _l("Mobile")),
        ]),
        Section(_l("Organisation"), [
            Field("company.name", _l("Company")),
            Field("office", _l("Office")),
            Field("role", _l("Role")),
            Field("portal_access", _l("Portal access")),
        ]),
    ]

    def buttons(self):
        return [Button("contacts.list", _l("Contacts"), endpoint="contacts.list", icon="people",
                       description=_l("Colleagues and their details"))]

    def admin_views(self):
        return []  # contacts are core records, already in the CRM section of the admin
