"""Step 4: who wrote. The sender's address names a contact; an unknown sender follows the policy
(``reject`` with an explanatory reply, ``ignore``, or ``pending``: a contact without portal access,
in the company whose email domain matches, for staff to approve by giving them a profile and portal
access). A known contact needs portal access (:func:`may_write`), and their profile's ``create``
grant to open a ticket and ``comment`` to reply."""
from __future__ import annotations

from typing import Any

import peewee as pw

from ..auth import PortalUser
from ..models import Company, Contact


def find_contact(address: str) -> Contact | None:
    """The contact whose email is ``address`` (case-insensitive), with their company."""
    if not address:
        return None
    return (Contact.select().where(pw.fn.LOWER(Contact.email) == address.lower()).first())


def company_for_domain(address: str) -> Company | None:
    """The one company whose ``email_domain`` is the address's domain (none when ambiguous)."""
    domain = address.rpartition("@")[2].lower()
    if not domain:
        return None
    found = list(Company.select().where(pw.fn.LOWER(Company.email_domain) == domain).limit(2))
    return found[0] if len(found) == 1 else None


def pending_contact(address: str, display_name: str) -> Contact:
    """A contact for an unknown sender, without portal access or profile: staff approve them (give
    them a profile and portal access) and retry the message. Run inside a transaction."""
    first, _, last = (display_name or address.partition("@")[0]).strip().partition(" ")
    company = company_for_domain(address)
    return Contact.create(first_name=(first or address)[:100], last_name=last[:100], email=address,
                          company=company.id if company else None, portal_access=False)


def may_write(contact: Contact) -> bool:
    """Whether email from ``contact`` may act for them at all: they have portal access and a
    profile, as for logging in. Revoking access (``revoke_access``) ends writing by email too, and
    a pending contact writes once staff give them a profile and access."""
    return bool(contact.portal_access) and contact.profile_id is not None


def may_create(contact: Contact) -> bool:
    """The contact's profile lets them open tickets (and see them: the acknowledgement links there)."""
    user = PortalUser(contact)
    return contact.company_id is not None and user.can("tickets", "create")


def may_comment(contact: Contact, ticket: Any) -> bool:
    """The contact may write on ``ticket``: it is theirs and their profile grants ``comment``, or
    it is a colleague's they can see through the scoping gate and they have ``comment_others``."""
    from ..scoping import visible

    user = PortalUser(contact)
    if not user.can("tickets", "comment"):
        return False
    if ticket.contact_id == contact.id:
        return True
    if not user.can("tickets", "comment_others"):
        return False
    record = type(ticket)
    return bool(visible("tickets", user=user).where(record.id == ticket.id).exists())
