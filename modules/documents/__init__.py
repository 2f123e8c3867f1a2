"""Documents: files shared with customers, in folders.

A document is *public* (manuals, how-tos: every user of the module sees it), shared with a whole
company (``company`` set, ``contact`` empty) or with one contact. Visibility:

- *own* scope: public documents, the user's own and those shared with their whole company;
- *company* scope: public documents and every document of the user's company.

Customers whose profile grants ``upload`` can send a file to support; it is validated and stored
by :func:`crm_portal.api.save_upload` and staff are told through the outbox.
"""
from __future__ import annotations

import datetime as dt
import io
from typing import Any

import peewee as pw
from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from markupsafe import Markup
from werkzeug.datastructures import FileStorage
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from crm_portal import signals
from crm_portal.api import (AdminModelView, BaseModel, Button, Column, Company, Contact, DemoContext, Field,
                            Module, Section, UploadRejected, _l, audit, current_portal_user, db, delete_stored,
                            external_url, get_or_404, queue_email, remove_after_commit, require, save_upload,
                            send_stored, utcnow)

__all__ = ["DocumentsModule", "Document", "Folder", "AREA", "human_size"]

AREA = "documents"


class Folder(BaseModel):
    name_en = pw.CharField(max_length=100)
    name_it = pw.CharField(max_length=100, null=True)
    position = pw.IntegerField(default=0)

    class Meta:
        table_name = "documents_folder"

    @property
    def label(self) -> str:
        return (self.name_it if str(get_locale() or "") == "it" and self.name_it else self.name_en) or ""

    def __str__(self) -> str:
        return self.name_en


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


def human_size(value: Any, row: Any = None) -> str:
    size = int(value or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}".replace(".0 ", " ")
        size /= 1024
    return str(value)


class UploadForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=2000)])
    file = FileField(_l("File"), validators=[FileRequired()])


class FolderAdmin(AdminModelView):
    roles = ("admin", "operator")
    column_list = ("name_en", "name_it", "position")


class DocumentAdmin(AdminModelView):
    roles = ("admin", "operator")
    column_list = ("title", "folder", "public", "company", "contact", "original_name", "size",
                   "download_count", "uploaded_by_customer", "created_at")
    column_searchable_list = ("title", "original_name", "product_code")
    column_filters = ("public", "uploaded_by_customer", "created_at", "download_count")
    column_default_sort = ("created_at", True)
    form_excluded_columns = ("stored_name", "original_name", "size", "mimetype", "kind", "download_count",
                             "uploaded_by_customer", "created_at")
    form_extra_fields = {"upload": FileField(_l("File"))}

    def on_model_change(self, form, model, is_created):
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


def folder_choices() -> dict[int, str]:
    """The folders as ``{id: label}`` for the list filter."""
    return {f.id: f.label for f in Folder.select().order_by(Folder.position, Folder.name_en)}


class DocumentsModule(Module):
    name = "documents"
    label = _l("Documents")
    icon = "folder2-open"
    description = _l("Manuals, contracts and files we share with you.")
    position = 30
    models = (Folder, Document)
    record = Document
    contact_field = Document.contact
    company_field = Document.company
    default_sort = "-created_at"
    actions = ("view", "upload", "export")
    detail_template = "documents/detail.html"
    columns = [
        Column(Document.title, _l("Title"), search=True, sort=True, link=True),
        Column(Document.folder, _l("Folder"), display="name_en", sort=True, filter=True,
               choices=folder_choices, format=lambda folder, row: folder.label),
        Column(Document.product_code, _l("Product"), search=True, sort=True),
        Column(Document.kind, _l("Type"), sort=True, format=lambda value, row: (value or "").upper()),
        Column(Document.size, _l("Size"), sort=True, format=human_size),
        Column(Document.created_at, _l("Date"), sort=True),
        Column(Document.download_count, _l("Downloads"), sort=True),
    ]
    detail = [
        Section(_l("Document"), [
            Field("title", _l("Title")),
            Field("description", _l("Description"), wide=True),
            Field("folder", _l("Folder"), format=lambda folder, row: folder.label if folder else None),
            Field("original_name", _l("File name")),
            Field("kind", _l("Type"), format=lambda value, row: (value or "").upper()),
            Field("size", _l("Size"), format=human_size),
            Field("created_at", _l("Date")),
            Field("download_count", _l("Downloads")),
        ]),
    ]

    # --- scoping ---------------------------------------------------------------------------
    def scope_query(self, query, user, scope):
        public = Document.public == True  # noqa: E712
        if user.company_id is None:
            return query.where(public | (Document.contact == user.contact_id))
        if scope == "company":
            colleagues = Contact.select(Contact.id).where(Contact.company == user.company_id)
            return query.where(public | (Document.company == user.company_id)
                               | Document.contact.in_(colleagues))
        company_wide = (Document.company == user.company_id) & Document.contact.is_null()
        return query.where(public | (Document.contact == user.contact_id) | company_wide)

    def prepare_new(self, record, user):
        super().prepare_new(record, user)
        record.public = False

    def buttons(self):
        return [Button("documents.list", _l("Documents"), endpoint="documents.list", icon="folder2-open",
                       description=_l("Manuals, contracts and shared files"))]

    def admin_views(self):
        category = _l("Documents")
        return [DocumentAdmin(Document, name=_l("Documents"), category=category,
                              endpoint="documents_document"),
                FolderAdmin(Folder, name=_l("Folders"), category=category, endpoint="documents_folder")]

    def template_hook(self, hook, **context):
        if hook == "list.actions" and context.get("module") is self and current_user.can(self.name, "upload"):
            return Markup('<a class="btn btn-primary" href="{}" data-testid="upload-document">'
                          '<i class="bi bi-upload"></i> {}</a>').format(url_for("documents.upload"),
                                                                        _("Upload a document"))
        return None

    # --- views -----------------------------------------------------------------------------
    def register_views(self, bp):
        module = self

        @bp.route("/<int:record_id>/download")
        def download(record_id: int):
            document = get_or_404(module, record_id)
            with db.atomic():
                Document.update(download_count=Document.download_count + 1).where(
                    Document.id == document.id).execute()
            return send_stored(document.stored_name, AREA, document.original_name, document.mimetype)

        @bp.route("/upload", methods=["GET", "POST"])
        def upload():
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
                    return module._create_upload(form, stored)
            elif request.method == "POST":
                status = 400
            return render_template("documents/upload.html", module=module, form=form, grant=grant), status

    def _create_upload(self, form: UploadForm, stored) -> Any:
        user = current_portal_user()
        try:
            with db.atomic():
                document = Document.create(
                    title=form.title.data.strip(), description=(form.description.data or "").strip() or None,
                    company=user.company_id, contact=user.contact_id, public=False, uploaded_by_customer=True,
                    stored_name=stored.stored_name, original_name=stored.original_name, size=stored.size,
                    mimetype=stored.mimetype, kind=stored.kind, folder=None)
                signals.record_created.send(self.name, module=self, record=document, user=user)
                audit("document-uploaded", document, details={"file": stored.original_name, "size": stored.size})
                queue_email(current_app.config["SUPPORT_EMAIL"], "documents_uploaded",
                            language=current_app.config["BABEL_DEFAULT_LOCALE"], document=document,
                            contact=user.contact,
                            admin_url=external_url("documents_document.details_view", id=document.id))
        except Exception:
            delete_stored(stored.stored_name, AREA)
            raise
        flash(_("Thank you: the document has been shared with our support team."), "success")
        return redirect(url_for("documents.detail", record_id=document.id))

    # --- demo ------------------------------------------------------------------------------
    def demo_data(self, ctx: DemoContext) -> None:
        folders = {key: Folder.create(name_en=en, name_it=it, position=n) for n, (key, en, it) in enumerate([
            ("manuals", "Manuals", "Manuali"), ("contracts", "Contracts", "Contratti"),
            ("reports", "Reports", "Rapporti di intervento"), ("howto", "How-tos", "Guide rapide")])}
        today = dt.date.today()
        c, co = ctx.contacts, ctx.companies
        specs = [
            ("manuals", "Manuale utente del gestionale", True, None, None, "GES-USR", "manuale-gestionale.pdf"),
            ("howto", "Come configurare la VPN", True, None, None, "FW-200", "guida-vpn.txt"),
            ("contracts", "Contratto di assistenza 2025", False, "acme", None, None, "contratto-acme-2025.pdf"),
            ("reports", "Rapporto intervento server", False, "acme", "bruno", None, "rapporto-bruno.pdf"),
            ("reports", "Verifica backup trimestrale", False, "acme", "anna", "BCK-1T", "backup-anna.csv"),
            ("contracts", "Contract summary", False, "globex", "carla", None, "globex-contract.pdf"),
            ("reports", "Intervento Initech", False, "initech", "elena", None, "initech.txt"),
        ]
        for folder, title, public, company, contact, code, filename in specs:
            data = _demo_file(title, filename)
            stored = save_upload(FileStorage(stream=io.BytesIO(data), filename=filename), AREA)
            Document.create(folder=folders[folder], title=title, public=public,
                            company=co[company] if company else None, contact=c[contact] if contact else None,
                            product_code=code, description=f"{title} ({today.year}).",
                            stored_name=stored.stored_name, original_name=stored.original_name, size=stored.size,
                            mimetype=stored.mimetype, kind=stored.kind,
                            download_count=ctx.rng.randint(0, 12))


def _demo_file(title: str, filename: str) -> bytes:
    if filename.endswith(".pdf"):
        from fpdf import FPDF

        pdf = FPDF()
        pdf.add_page()
        pdf.set_font("Helvetica", size=14)
        pdf.cell(0, 10, title.encode("latin-1", "replace").decode("latin-1"))
        return bytes(pdf.output())
    if filename.endswith(".csv"):
        return "data;esito\n2025-01-15;ok\n2025-04-15;ok\n".encode()
    return f"{title}\n\nDocumento dimostrativo.\n".encode()

