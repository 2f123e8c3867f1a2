"""Customer-side views: download a document, upload one for support, the list's upload button.

The list, export and detail pages are the host's generic views; every document is reached through
the scoping gate (``get_or_404``).
"""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup

from crm_portal import signals
from crm_portal.api import (
    Module,
    ModuleBlueprint,
    StoredFile,
    UploadRejected,
    audit,
    current_module,
    current_portal_user,
    db,
    delete_stored,
    get_or_404,
    require,
    save_upload,
    send_stored,
)

from .forms import UploadForm
from .models import AREA, Document

bp = ModuleBlueprint("documents", __name__)


@bp.route("/<int:record_id>/download")
def download(record_id: int) -> Any:
    """The document's file, counted as one more download."""
    document = get_or_404(current_module(), record_id)
    if not getattr(current_user, "viewing_as", False):  # staff viewing as the contact change nothing
        with db.atomic():
            Document.update(download_count=Document.download_count + 1).where(Document.id == document.id).execute()
    return send_stored(document.stored_name, AREA, document.original_name, document.mimetype)


@bp.route("/upload", methods=["GET", "POST"])
def upload() -> Any:
    """A customer shares a file with support (action ``upload``)."""
    module = current_module()
    grant = require(module, "upload")
    form = UploadForm()
    status = 200
    if form.validate_on_submit():
        try:
            stored = save_upload(form.file.data, AREA)
        except UploadRejected as exc:
            form.file.errors = [*form.file.errors, exc.message]
            status = exc.status
        else:
            document = _create_upload(module, form, stored)
            flash(_("Thank you: the document has been shared with our support team."), "success")
            return redirect(url_for("documents.detail", record_id=document.id))
    elif request.method == "POST":
        status = 400
    return render_template("documents/upload.html", module=module, form=form, grant=grant), status


def _create_upload(module: Module, form: UploadForm, stored: StoredFile) -> Document:
    """The customer's document row for a stored file; the file goes again if the row cannot be saved.
    Support hears of it from the ``record-created`` receiver (:mod:`.jobs`), in the same transaction."""
    user = current_portal_user()
    try:
        with db.atomic():
            document = Document.create(
                title=form.title.data.strip(), description=(form.description.data or "").strip() or None,
                company=user.company_id, contact=user.contact_id, public=False, uploaded_by_customer=True,
                stored_name=stored.stored_name, original_name=stored.original_name, size=stored.size,
                mimetype=stored.mimetype, kind=stored.kind, folder=None)
            signals.record_created.send(module.name, module=module, record=document, user=user)
            audit("document-uploaded", document, details={"file": stored.original_name, "size": stored.size})
    except Exception:
        delete_stored(stored.stored_name, AREA)
        raise
    return document


def list_actions(module: Module) -> Markup | None:
    """The list's "Upload a document" button, for users granted ``upload``."""
    if not current_user.can(module.name, "upload"):
        return None
    return Markup('<a class="btn btn-primary" href="{}" data-testid="upload-document">'
                  '<i class="bi bi-upload"></i> {}</a>').format(url_for("documents.upload"),
                                                                _("Upload a document"))
