"""Contacts: the colleagues of my company (company scope) or my own card (own scope).

With the ``manage`` action a contact administers their colleagues in the portal: invitations,
portal access, profiles among those staff made assignable, and what colleagues did lately
(see views.py and colleagues.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crm_portal.api import ActionLabel, Button, Column, Contact, Field, Module, Section, _l

from . import views

#: Columns only administrators (``manage``) see; neither searchable nor sortable, so that search
#: and sort cannot reveal them to anyone else.
MANAGER_COLUMNS = frozenset({"last_login"})


def access_status(value: Any, row: Contact) -> str:
    """The portal access as a status: on with a password, on awaiting the invitation, or off."""
    if not value:
        return str(_l("No access"))
    return str(_l("Active")) if row.password_hash else str(_l("Invited"))


def access_colour(value: Any, row: Contact) -> str:
    if not value:
        return "secondary"
    return "success" if row.password_hash else "warning"


class ContactsModule(Module):
    name = "contacts"
    event_name = "contact"
    label = _l("Contacts")
    icon = "people"
    description = _l("The people of your company who use the portal or talk with us.")
    position = 70
    record = Contact
    contact_field = Contact.id
    company_field = Contact.company
    default_sort = "last_name"
    actions = ("view", "export", "manage")
    action_labels = {
        "view": ActionLabel(_l("See contacts"),
                            _l("Their own card (own records) or their colleagues' (whole company).")),
        "export": ActionLabel(_l("Export contacts"), _l("Download the list of contacts as a CSV spreadsheet.")),
        "manage": ActionLabel(_l("Administer colleagues"),
                              _l("Invite colleagues, switch their portal access off and on, give them an "
                                 "assignable profile and see their recent activity.")),
    }
    blueprint = views.bp
    list_template = "contacts/list.html"
    detail_template = "contacts/detail.html"
    columns = [
        Column(Contact.last_name, _l("Surname"), search=True, sort=True, link=True),
        Column(Contact.first_name, _l("Name"), search=True, sort=True),
        Column(Contact.email, _l("Email"), search=True, sort=True),
        Column(Contact.phone, _l("Phone"), search=True),
        Column(Contact.mobile, _l("Mobile"), search=True),
        Column(Contact.office, _l("Office"), search=True, sort=True),
        Column(Contact.role, _l("Role"), search=True, sort=True),
        Column(Contact.portal_access, _l("Portal access"), filter=True,
               choices={True: _l("Yes"), False: _l("No")}, format=access_status, badge=access_colour),
        Column(Contact.last_login, _l("Last login")),
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

    def list_columns(self, user: Any) -> Sequence[Column]:
        if user.can(self.name, "manage"):
            return self.columns
        return [c for c in self.columns if c.name not in MANAGER_COLUMNS]

    def list_context(self, page: Any, user: Any):
        return views.list_context(page, user)

    def detail_context(self, record: Contact, user: Any):
        return views.detail_context(record, user)

    def admin_views(self):
        return []  # contacts are core records, already in the CRM section of the admin
