"""Writes of companies and contacts: ``POST``/``PATCH /companies``, ``POST``/``PATCH /contacts`` and
``POST /contacts/{id}/invite`` (scopes ``companies:write`` and ``contacts:write``).

Validation is the admin's (:mod:`crm_portal.crm_records`): 422 with field errors and nothing
written. Every write is audited with the integration as actor and sends ``record-created`` /
``record-updated``.

Acting as a contact (``X-Act-As-Contact``): the portal lets no contact change a company or a
colleague's data, so those writes answer 403. The invitation follows the portal's rule for a
company's own administrator: a colleague of their company (else 404), with the contacts module's
``manage`` action (else 403), never themselves (403).
"""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import abort, request, url_for
from flask_babel import gettext as _
from flask_smorest import Blueprint
from flask_smorest import abort as abort_with

from ..account.service import send_invitation
from ..auth import PortalUser
from ..crm_records import (
    CompanyData,
    ContactApiData,
    RecordInvalid,
    create_company,
    create_contact,
    load,
    update_company,
    update_contact,
)
from ..db import db
from ..scoping import get_or_404
from .auth import ACT_AS_HEADER, acting_user, audit_integration, scoped
from .concurrency import check_if_match
from .writes import get_for_update, record_answer


class InvitationSchema(ma.Schema):
    id = ma.fields.Integer(metadata={"description": "the contact's id"})
    email = ma.fields.String()
    invited = ma.fields.Boolean(metadata={"description": "true: the invitation email was queued"})


def _invalid(exc: RecordInvalid) -> Any:
    abort_with(422, errors=exc.errors)


def _body() -> Any:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort_with(422, message=_("Give a JSON object."), errors={"_schema": [_("Give a JSON object.")]})
    return data


def _patch_body(schema: str) -> dict[str, Any]:
    return {"description": "The values to change (any subset of the creation's fields).", "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _refuse_acting_as() -> None:
    """Company and contact data are staff's and the CRM's: no contact changes them in the portal."""
    if request.headers.get(ACT_AS_HEADER, "").strip():
        acting_user()  # an unusable contact answers its own 403 first
        abort(403, _("A contact cannot change this in the portal, so an integration acting as one cannot "
                     "either."))


def _record(name: str, record_id: int) -> Any:
    return get_or_404(name, record_id, user=acting_user())


def add_routes(bp: Blueprint, doc: Any, errors: Any, app: Any) -> None:
    """The write endpoints on the API's blueprint (``doc`` and ``errors`` as for the records)."""
    from .records import record_schema

    modules = app.extensions["crm_portal"].modules
    documented = {422: "Invalid values: `errors` names each field; nothing was written."}

    def described(scope: str, summary: str) -> dict[str, Any]:
        found = doc(scope, summary)
        found["description"] += " Acting as a contact: 403 (see docs/api.md)."
        return found

    def with_422(view: Any) -> Any:
        for status, text in documented.items():
            view = bp.alt_response(status, description=text)(view)
        return view

    if "companies" in modules:
        company_module = modules["companies"]
        company_out = record_schema(company_module)

        @bp.route("/companies", endpoint="companies_create", methods=["POST"])
        @bp.arguments(CompanyData, description="The company's values (`name` required).")
        @bp.response(201, company_out)
        @with_422
        @errors(bp)
        @bp.doc(**described("companies:write", "Create a company"), tags=["companies"])
        @scoped("companies:write")
        def company_create(values: dict[str, Any]) -> Any:
            _refuse_acting_as()
            with db.atomic():
                company = create_company(values, user=acting_user())
            return record_answer(company_module, company, acting_user(), 201,
                                 {"Location": url_for("api_v1.companies_detail", record_id=company.id)})

        @bp.route("/companies/<int(signed=True):record_id>", endpoint="companies_update", methods=["PATCH"])
        @bp.response(200, company_out)
        @with_422
        @errors(bp)
        @bp.doc(**described("companies:write", "Change a company"), tags=["companies"],
                requestBody=_patch_body("CompanyData"))
        @scoped("companies:write")
        def company_update(record_id: int) -> Any:
            _refuse_acting_as()
            user = acting_user()
            try:
                values = load(CompanyData, _body(), partial=True)
            except RecordInvalid as exc:
                _invalid(exc)
            with db.atomic():
                company = get_for_update(company_module, record_id, user)
                check_if_match(company)
                update_company(company, values, user=user)
            return record_answer(company_module, company, user)

    if "contacts" not in modules:
        return
    contact_module = modules["contacts"]
    contact_out = record_schema(contact_module)

    @bp.route("/contacts", endpoint="contacts_create", methods=["POST"])
    @bp.arguments(ContactApiData, description="The contact's values (`first_name`, `last_name`, `email` "
                                              "required). `portal_access: true` sends the invitation.")
    @bp.response(201, contact_out)
    @with_422
    @errors(bp)
    @bp.doc(**described("contacts:write", "Create a contact"), tags=["contacts"])
    @scoped("contacts:write")
    def contact_create(values: dict[str, Any]) -> Any:
        _refuse_acting_as()
        try:
            with db.atomic():
                contact = create_contact(values, user=acting_user())
        except RecordInvalid as exc:
            _invalid(exc)
        return record_answer(contact_module, contact, acting_user(), 201,
                             {"Location": url_for("api_v1.contacts_detail", record_id=contact.id)})

    @bp.route("/contacts/<int(signed=True):record_id>", endpoint="contacts_update", methods=["PATCH"])
    @bp.response(200, contact_out)
    @with_422
    @errors(bp)
    @bp.doc(**described("contacts:write", "Change a contact"), tags=["contacts"],
            requestBody=_patch_body("ContactApiData"))
    @scoped("contacts:write")
    def contact_update(record_id: int) -> Any:
        _refuse_acting_as()
        user = acting_user()
        try:
            values = load(ContactApiData, _body(), partial=True)
            with db.atomic():
                contact = get_for_update(contact_module, record_id, user)
                check_if_match(contact)
                update_contact(contact, values, user=user)
        except RecordInvalid as exc:
            _invalid(exc)
        return record_answer(contact_module, contact, user)

    @bp.route("/contacts/<int(signed=True):record_id>/invite", endpoint="contacts_invite", methods=["POST"])
    @bp.response(200, InvitationSchema)
    @errors(bp)
    @bp.alt_response(409, description="The contact has no portal access or no profile: switch it on first.")
    @bp.doc(**doc("contacts:write", "Send the invitation email (a link to choose a password)"), tags=["contacts"])
    @scoped("contacts:write")
    def contact_invite(record_id: int) -> Any:
        user = acting_user()
        if isinstance(user, PortalUser):
            contact = get_or_404("contacts", record_id, user=user, action="manage")
            if contact.id == user.contact_id:
                abort(403, _("You cannot change your own portal access or profile: ask a colleague who "
                             "administers the portal, or our staff."))
        else:
            contact = _record("contacts", record_id)
        if not contact.portal_access or contact.profile_id is None:
            abort(409, _("This contact has no portal access or no profile: switch access on and give a profile "
                         "first (the invitation never grants access)."))
        with db.atomic():
            send_invitation(contact)
            audit_integration("api-invitation", contact)
        return {"id": contact.id, "email": contact.email, "invited": True}
