"""The pieces of the request wizard that do not depend on who fills it in: the services and
products a contact may open a ticket on, and the request form with its categories and guided
questions, the attachments stored under the portal's upload rules, and the submission that opens
the ticket. The staff's "new ticket for a customer" page (:mod:`.admin`) uses them with the contact
as the user, so an operator is offered, and files, exactly what the customer's wizard would.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, request
from peewee import JOIN

from crm_portal.api import Company, Contact, StoredFile, UploadRejected, db, delete_stored, save_upload, visible

from . import workflow
from .forms import TicketForm, choices, ticket_form
from .models import Ticket, TicketAttachment, TicketCategory, TicketQuestion, is_valid_id

#: Where ticket attachments are stored (the uploads area of :class:`TicketAttachment`).
UPLOAD_AREA = TicketAttachment.file_area


def services_for(user: Any) -> list[Any] | None:
    """The services ``user`` may open tickets on (services module), or ``None`` without that module."""
    module = current_app.extensions["crm_portal"].modules.get("services")
    if module is None or not hasattr(module, "services_for"):
        return None
    try:
        return list(module.services_for(user))
    except Exception:  # another module's failure must not stop a ticket from being opened
        current_app.logger.exception("tickets: services_for failed")
        return None


def find_service(services: list[Any], raw_id: Any) -> Any | None:
    """The service ``raw_id`` names among ``services`` (those offered to the contact), or ``None``."""
    if not is_valid_id(raw_id):
        return None
    return next((s for s in services if s.id == int(str(raw_id).strip())), None)


def find_subcategory(service: Any, raw_id: Any) -> tuple[int, str] | None:
    """The sub-category ``raw_id`` names among ``service``'s, as (id, name), or ``None``."""
    if not is_valid_id(raw_id):
        return None
    wanted = int(str(raw_id).strip())
    return next(((i, n) for i, n in (getattr(service, "subcategories", None) or []) if i == wanted), None)


def products_for(user: Any) -> list[tuple[int, str]]:
    """(id, name) of the products ``user`` sees (products module), through the scoping gate."""
    module = current_app.extensions["crm_portal"].modules.get("products")
    if module is None or not user.can("products", "view"):
        return []
    try:
        rows: Any = (module.products_for(user) if hasattr(module, "products_for")
                     else visible(module, user=user).limit(200))
        return [(int(r.id), str(getattr(r, "name", None) or r)) for r in rows]
    except Exception:
        current_app.logger.exception("tickets: could not list products")
        return []


def active_categories() -> list[TicketCategory]:
    """The categories a request can be filed under, in their order."""
    return list(TicketCategory.select().where(TicketCategory.active == True)  # noqa: E712
                .order_by(TicketCategory.position, TicketCategory.id))


def mapped_category(service: Any, sub: tuple[int, str] | None,
                    categories: list[TicketCategory]) -> TicketCategory | None:
    """The category the admins mapped the chosen service / sub-category to, if it is still active;
    ``None``: whoever fills in the form chooses."""
    find = getattr(service, "ticket_category", None)
    wanted = find(sub[0] if sub else None) if callable(find) else None
    return next((c for c in categories if c.id == wanted), None) if wanted is not None else None


def request_form(service: Any, sub: tuple[int, str] | None, products: list[tuple[int, str]],
                 **kwargs: Any) -> tuple[TicketForm, TicketCategory | None]:
    """The request form and the category it is filed under when the admins mapped the chosen
    service / sub-category to one (then the only choice, whatever is posted); otherwise the select
    starts empty, so no category is ever chosen silently. With the guided questions for every
    request and for ``service``, and the product choice when there are ``products``."""
    from flask_babel import gettext as _

    categories = active_categories()
    mapped = mapped_category(service, sub, categories) if service else None
    questions = (TicketQuestion.select().where(TicketQuestion.active == True)  # noqa: E712
                 .where(TicketQuestion.service_id.is_null()
                        | (TicketQuestion.service_id == (service.id if service else -1)))
                 .order_by(TicketQuestion.position, TicketQuestion.id))
    form = ticket_form(list(questions), **kwargs)
    if mapped is not None:
        form.category.choices = choices([(mapped.id, mapped.label)])
        form.category.data = mapped.id
    else:
        form.category.choices = choices([("", _("— Choose a category —"))] + [(c.id, c.label) for c in categories])
    if products:
        form.product.choices = choices([(0, "—")] + products)
    else:
        del form.product
    return form, mapped


def chosen_product(form: TicketForm, products: list[tuple[int, str]]) -> tuple[int, str] | None:
    """The (id, name) of the product picked in ``form``, if any."""
    if not products or not getattr(form, "product", None) or not form.product.data:
        return None
    return next(((i, n) for i, n in products if i == form.product.data), None)


def contact_for_ticket(raw_id: Any) -> tuple[Contact | None, str | None]:
    """The contact ``raw_id`` names and, when no ticket can be opened for them, why (translated).
    Any contact of a company can have a ticket, with or without portal access: the ticket is the
    company's (its colleagues with company scope see it) and the contact gets its emails."""
    from flask_babel import gettext as _

    if not is_valid_id(raw_id):
        return None, _("Choose a contact from the list.")
    contact = (Contact.select(Contact, Company).join(Company, JOIN.LEFT_OUTER)
               .where(Contact.id == int(str(raw_id).strip())).first())
    if contact is None:
        return None, _("Choose a contact from the list.")
    if contact.company_id is None:
        return contact, _("%(name)s belongs to no company: add the company to the contact first.",
                          name=contact.full_name)
    return contact, None


def find_contacts(text: str, limit: int = 50) -> list[Contact]:
    """Contacts of a company whose name, email or company name contains ``text`` (all when empty),
    by company and name: the choices of the staff's contact picker (one query)."""
    query = (Contact.select(Contact, Company).join(Company)
             .order_by(Company.name, Contact.last_name, Contact.first_name, Contact.id))
    for word in text.split()[:5]:  # every word somewhere (case-insensitive)
        word = word[:100]
        query = query.where(Contact.first_name.contains(word) | Contact.last_name.contains(word)
                            | Contact.email.contains(word) | Company.name.contains(word))
    return list(query.limit(limit))


def store_files(files: Any) -> list[StoredFile]:
    """Save every uploaded file or none: on a refusal the ones already stored are removed."""
    stored: list[StoredFile] = []
    try:
        for storage in files:
            if storage and storage.filename:
                stored.append(save_upload(storage, UPLOAD_AREA))
    except UploadRejected:
        for item in stored:
            delete_stored(item.stored_name, UPLOAD_AREA)
        raise
    return stored


def discard_files(stored: list[StoredFile]) -> None:
    """Remove files stored for a write that did not happen."""
    for item in stored:
        try:
            delete_stored(item.stored_name, UPLOAD_AREA)
        except (OSError, ValueError):
            current_app.logger.warning("tickets: could not remove %s", item.stored_name)


def submit_request(form: TicketForm, actor: workflow.Actor, contact: Contact, service: Any,
                   sub: tuple[int, str] | None, products: list[tuple[int, str]],
                   then: Callable[[Ticket], None] | None = None) -> Ticket:
    """Open the ticket a validated request ``form`` describes, for ``contact``: its attachments
    stored, the ticket written in one transaction with ``then(ticket)`` (an audit entry …), the
    stored files removed when anything fails. :class:`UploadRejected` when a file is refused."""
    stored = store_files(request.files.getlist(form.attachments.name))
    return open_request(actor, contact, stored, then, title=form.title.data, description=form.description.data,
                        type=form.type.data, category=form.category.data, priority=form.priority.data,
                        severity=form.severity.data, service=(service.id, service.name) if service else None,
                        subcategory=sub, product=chosen_product(form, products), answers=form.answers())


def open_request(actor: workflow.Actor, contact: Contact, stored: list[StoredFile],
                 then: Callable[[Ticket], None] | None = None, **fields: Any) -> Ticket:
    """Open a ticket for ``contact`` with the files already ``stored`` (in :data:`UPLOAD_AREA`) and
    the fields of :func:`workflow.create_ticket`, in one transaction with ``then(ticket)``; the
    stored files are removed when anything fails. The wizard, the staff's page and email-in
    (crm_portal.mailin) open tickets through here."""
    try:
        with db.atomic():
            ticket = workflow.create_ticket(actor, contact, files=stored, **fields)
            if then is not None:
                then(ticket)
    except Exception:
        discard_files(stored)
        raise
    return ticket
