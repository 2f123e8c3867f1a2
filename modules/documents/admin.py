"""The staff side: documents (with their file) and folders."""
from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_wtf.file import FileField
from werkzeug.datastructures import FileStorage
from wtforms.validators import ValidationError

from crm_portal.api import AdminModelView, Contact, UploadRejected, _l, remove_after_commit, save_upload

from .models import AREA, Document, Folder

#: The names of the documents' fields in the admin (the shared ones come from the portal).
LABELS = {
    "folder": _l("Folder"), "product_code": _l("Product code"), "original_name": _l("File name"),
    "size": _l("Size"), "mimetype": _l("File type"), "kind": _l("Kind of file"),
    "download_count": _l("Times downloaded"),
    "uploaded_by_customer": _l("Uploaded by the customer"), "stored_name": _l("Stored file"),
}


class FolderAdmin(AdminModelView):
    roles = ("admin", "operator")
    column_list = ("label_en", "label_it", "position")
    column_labels = {"label_en": _l("Name (English)"), "label_it": _l("Name (Italian)")}


class DocumentAdmin(AdminModelView):
    roles = ("admin", "operator")
    field_labels = LABELS
    audit_labels = {"document-uploaded": _l("Document uploaded")}
    column_list = ("title", "folder", "public", "company", "contact", "original_name", "size",
                   "download_count", "uploaded_by_customer", "created_at")
    column_searchable_list = ("title", "original_name", "product_code")
    column_filters = ("public", "uploaded_by_customer", "created_at", "download_count")
    column_default_sort = ("created_at", True)
    form_excluded_columns = ("stored_name", "original_name", "size", "mimetype", "kind", "download_count",
                             "uploaded_by_customer", "created_at")
    form_extra_fields = {"upload": FileField(_l("File"))}

    def on_model_change(self, form: Any, model: Document, is_created: bool) -> None:
        upload = form.upload.data
        if isinstance(upload, FileStorage) and upload.filename:
            try:
                stored = save_upload(upload, AREA)
            except UploadRejected as exc:
                raise ValidationError(exc.message) from exc
            self.discard_if_rolled_back(stored.stored_name, AREA)
            previous = model.stored_name if not is_created else None
            model.stored_name, model.original_name = stored.stored_name, stored.original_name
            model.size, model.mimetype, model.kind = stored.size, stored.mimetype, stored.kind
            if previous:
                # Customers keep downloading the old file until the new row is committed.
                remove_after_commit([(previous, AREA)])
        elif is_created:
            raise ValidationError(_("Please choose a file to upload."))
        if model.contact_id and not model.company_id:
            model.company = Contact.get_by_id(model.contact_id).company_id


def views() -> list[AdminModelView]:
    """The module's admin views, under one menu category."""
    category = _l("Documents")
    return [DocumentAdmin(Document, name=_l("Documents"), category=category, endpoint="documents_document"),
            FolderAdmin(Folder, name=_l("Folders"), category=category, endpoint="documents_folder")]
