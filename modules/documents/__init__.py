"""Documents: files shared with customers, in folders.

A document is *public* (manuals, how-tos: every user of the module sees it), shared with a whole
company (``company`` set, ``contact`` empty) or with one contact. Visibility (``models.scoped``):

- *own* scope: public documents, the user's own and those shared with their whole company;
- *company* scope: public documents and every document of the user's company.

Customers whose profile grants ``upload`` can send a file to support (``views.upload``); it is
validated and stored by :func:`crm_portal.api.save_upload` and staff are told through the outbox
(``jobs.email_support``).

A CRM may push documents with their file (``sync_type = "document"``, ``sync_files``): see the
"CRM sync" section of docs/api.md.
"""
from __future__ import annotations

from typing import Any

from crm_portal.api import ActionLabel, Button, Column, DemoContext, Field, Module, Section, SyncFile, _l, human_size

from . import admin, demo, jobs, models, views
from .models import Document, Folder, folder_choices
from .views import bp


def _upper(value: Any, row: Any) -> str:
    return (value or "").upper()


def _size(value: Any, row: Any) -> str:
    return human_size(value)


class DocumentsModule(Module):
    name = "documents"
    event_name = "document"
    label = _l("Documents")
    icon = "folder2-open"
    description = _l("Manuals, contracts and files we share with you.")
    position = 30
    models = (Folder, Document)
    record = Document
    contact_field = Document.contact
    company_field = Document.company
    default_sort = "-created_at"
    # A CRM may push documents with their file (docs/api.md, CRM sync); the folder stays the staff's.
    sync_type = "document"
    sync_fields = ("title", "description", "public", "company", "contact", "product_code")
    sync_files = {"file": SyncFile()}
    actions = ("view", "upload", "export")
    action_labels = {
        "view": ActionLabel(_l("See documents"), _l("Browse the folders and download the files.")),
        "upload": ActionLabel(_l("Upload documents"), _l("Send files to support from the portal.")),
        "export": ActionLabel(_l("Export documents"), _l("Download the list of documents as a CSV spreadsheet.")),
    }
    detail_template = "documents/detail.html"
    list_template = "documents/list.html"
    blueprint = bp
    columns = [
        Column(Document.title, _l("Title"), search=True, sort=True, link=True),
        Column(Document.folder, _l("Folder"), display="label_en", sort=True, filter=True,
               choices=folder_choices, format=lambda folder, row: folder.label),
        Column(Document.product_code, _l("Product"), search=True, sort=True),
        Column(Document.kind, _l("Type"), sort=True, format=_upper),
        Column(Document.size, _l("Size"), sort=True, format=_size),
        Column(Document.created_at, _l("Date"), sort=True),
        Column(Document.download_count, _l("Downloads"), sort=True),
    ]
    detail = [
        Section(_l("Document"), [
            Field("title", _l("Title")),
            Field("description", _l("Description"), wide=True),
            Field("folder", _l("Folder"), format=lambda folder, row: folder.label if folder else None),
            Field("original_name", _l("File name")),
            Field("kind", _l("Type"), format=_upper),
            Field("size", _l("Size"), format=_size),
            Field("created_at", _l("Date")),
            Field("download_count", _l("Downloads")),
        ]),
    ]

    def scope_query(self, query, user, scope):
        return models.scoped(query, user, scope)

    def buttons(self):
        return [Button("documents.list", _l("Documents"), endpoint="documents.list", icon="folder2-open",
                       description=_l("Manuals, contracts and shared files"))]

    def admin_views(self):
        return admin.views()

    def connect_signals(self) -> None:
        jobs.connect()

    def template_hook(self, hook: str, **context: Any) -> Any:
        return views.list_actions(self) if hook == "list.actions" and context.get("module") is self else None

    def demo_data(self, ctx: DemoContext) -> None:
        demo.load(ctx)
