"""Documents' data: folders and the documents shared with customers, and who may see which.

A document is *public* (manuals, how-tos: every user of the module sees it), shared with a whole
company (``company`` set, ``contact`` empty) or with one contact.
"""
from __future__ import annotations

from typing import Any

import peewee as pw

from crm_portal.api import BaseModel, Company, Contact, Localized, utcnow

#: The upload area (folder under the instance's uploads) of document files.
AREA = "documents"


class Folder(Localized, BaseModel):
    # The columns keep their historical names; the fields follow the Localized convention.
    label_en = pw.CharField(max_length=100, column_name="name_en")
    label_it = pw.CharField(max_length=100, null=True, column_name="name_it")
    position = pw.IntegerField(default=0)

    class Meta:
        table_name = "documents_folder"


class Document(BaseModel):
    #: The file goes with the row (see crm_portal.uploads.delete_with_files).
    file_area = AREA
    file_fields = ("stored_name",)

    folder = pw.ForeignKeyField(Folder, backref="documents", null=True, on_delete="SET NULL", index=True)
    title = pw.CharField(max_length=200)
    description = pw.TextField(null=True)
    #: Public documents are visible to every user of the module (manuals, how-tos).
    public = pw.BooleanField(default=False, index=True)
    company = pw.ForeignKeyField(Company, backref="documents", null=True, on_delete="CASCADE", index=True)
    #: Set for a document shared with one contact only; empty: the whole company.
    contact = pw.ForeignKeyField(Contact, backref="documents", null=True, on_delete="CASCADE", index=True)
    #: Optional product code: the products module links a product to its documents by it.
    product_code = pw.CharField(max_length=64, null=True, index=True)
    stored_name = pw.CharField(max_length=80)
    original_name = pw.CharField(max_length=200)
    size = pw.IntegerField(default=0)
    mimetype = pw.CharField(max_length=120, default="application/octet-stream")
    kind = pw.CharField(max_length=10, default="")
    download_count = pw.IntegerField(default=0)
    uploaded_by_customer = pw.BooleanField(default=False, index=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "documents_document"

    def __str__(self) -> str:
        return self.title or self.original_name


def folder_choices() -> dict[int, str]:
    """The folders as ``{id: label}`` in the current language, for the list filter."""
    return {f.id: f.label for f in Folder.select().order_by(Folder.position, Folder.label_en)}


def scoped(query: pw.ModelSelect, user: Any, scope: str) -> pw.ModelSelect:
    """Restrict ``query`` to the documents ``user`` may see under ``scope``.

    *own*: public documents, the user's own and those shared with their whole company;
    *company*: public documents and every document of the user's company or its contacts.
    """
    public = Document.public == True  # noqa: E712
    if user.company_id is None:
        return query.where(public | (Document.contact == user.contact_id))
    if scope == "company":
        colleagues = Contact.select(Contact.id).where(Contact.company == user.company_id)
        return query.where(public | (Document.company == user.company_id) | Document.contact.in_(colleagues))
    company_wide = (Document.company == user.company_id) & Document.contact.is_null()
    return query.where(public | (Document.contact == user.contact_id) | company_wide)
