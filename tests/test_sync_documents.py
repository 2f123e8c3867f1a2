"""CRM sync of documents: the file pushed in base64 goes through the upload rules, is compared by
content (the same push twice is ``unchanged``), replaced after the commit, removed with the row;
the document reaches the right contact through the portal's scope."""
from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

import pytest
from api_helpers import bearer, make_key
from test_sync import _count
from test_webhook_events import Hooks

from crm_portal import signals
from crm_portal.db import db, utcnow
from crm_portal.models import AuditEntry, ExternalRef, OutboxMessage
from crm_portal.modules.documents.models import Document
from crm_portal.sync.deletion import purge
from crm_portal.testing import login

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
PDF_2 = b"%PDF-1.4\n% second version\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def _file(name: str, content: bytes) -> dict[str, str]:
    return {"name": name, "content_base64": base64.b64encode(content).decode()}


def _doc(**extra):
    return {"title": "Offerta 2026", "description": "La nostra offerta.", "company_external_id": "ACME",
            "contact_external_id": "BRUNO", "product_code": "ERP", "file": _file("offerta.pdf", PDF), **extra}


@pytest.fixture
def token(app, demo, client):
    key = make_key(app, "sync:write").token
    acme, bruno = demo["companies"]["acme"], demo["contacts"]["bruno"]
    assert client.put("/api/v1/sync/company/ACME", json={"name": acme.name, "vat_number": acme.vat_number},
                      headers=bearer(key)).status_code == 200
    assert client.put("/api/v1/sync/contact/BRUNO", json={"email": bruno.email, "company_external_id": "ACME"},
                      headers=bearer(key)).status_code == 200
    return key


def put(client, token, external_id, data, **headers):
    return client.put(f"/api/v1/sync/document/{external_id}", json=data, headers=bearer(token, **headers))


def _stored(app) -> set[str]:
    folder = Path(app.config.get("UPLOAD_FOLDER") or Path(app.instance_path) / "uploads") / "documents"
    return {n for n in os.listdir(folder) if not n.startswith(".")} if folder.exists() else set()


def _get(app, record_id) -> Document:
    with app.app_context(), db.connection_context():
        return Document.get_by_id(record_id)


class Seen:
    def __init__(self):
        self.events = []

    def created(self, sender, **kw):
        self.events.append(("created", sender, type(kw["user"]).__name__))

    def updated(self, sender, **kw):
        self.events.append(("updated", sender, sorted(kw["changes"])))


@pytest.fixture
def seen():
    found = Seen()
    with signals.record_created.connected_to(found.created), signals.record_updated.connected_to(found.updated):
        yield found


def test_create_with_file_then_unchanged(app, token, client, seen):
    before, mails = _stored(app), _count(app, OutboxMessage)
    created = put(client, token, "D-1", _doc())
    assert created.status_code == 201 and created.json["status"] == "created", created.json
    assert "file" in created.json["changes"] and "stored_name" not in created.json["changes"]
    doc = _get(app, created.json["id"])
    assert (doc.original_name, doc.size, doc.kind, doc.mimetype) == ("offerta.pdf", len(PDF), "pdf",
                                                                     "application/pdf")
    assert not doc.uploaded_by_customer and doc.company_id and doc.contact_id
    assert _stored(app) == before | {doc.stored_name}
    # record-created as for any module record; the support email is for customers' uploads only
    assert seen.events == [("created", "documents", "IntegrationPrincipal")]
    assert _count(app, OutboxMessage) == mails
    audits = _count(app, AuditEntry)
    again = put(client, token, "D-1", _doc())
    assert again.status_code == 200 and again.json["status"] == "unchanged" and again.json["changes"] == []
    assert _get(app, doc.id).stored_name == doc.stored_name and _stored(app) == before | {doc.stored_name}
    assert _count(app, AuditEntry) == audits and len(seen.events) == 1


def test_create_requires_the_file(app, token, client):
    answer = put(client, token, "D-1", {k: v for k, v in _doc().items() if k != "file"})
    assert answer.status_code == 422 and "file" in answer.json["errors"]
    assert _count(app, Document, Document.title == "Offerta 2026") == 0


def test_update_without_file_keeps_it_and_replacing_removes_the_old_after_commit(app, demo, token, client, seen):
    first = put(client, token, "D-1", _doc()).json
    old = _get(app, first["id"]).stored_name
    retitled = put(client, token, "D-1", {"title": "Offerta 2026 (rev.)"})
    assert retitled.json["status"] == "updated" and retitled.json["changes"] == ["title"]
    assert _get(app, first["id"]).stored_name == old and old in _stored(app)
    renamed = put(client, token, "D-1", {"file": _file("offerta-rev.pdf", PDF)})  # same content: name only
    assert renamed.json["changes"] == ["file"] and _get(app, first["id"]).stored_name == old
    replaced = put(client, token, "D-1", {"file": _file("offerta-rev.pdf", PDF_2)})
    assert replaced.json["status"] == "updated" and replaced.json["changes"] == ["file"], replaced.json
    doc = _get(app, first["id"])
    assert doc.stored_name != old and doc.size == len(PDF_2)
    assert old not in _stored(app) and doc.stored_name in _stored(app)
    assert seen.events[-1] == ("updated", "documents", ["size", "stored_name"])
    # bruno (own scope) sees it in his list and downloads the new file; carla (globex) does not
    login(client, "bruno@acme.example")
    assert "Offerta 2026 (rev.)" in client.get("/documents/?per_page=100").text
    download = client.get(f"/documents/{doc.id}/download")
    assert download.status_code == 200 and download.data == PDF_2
    assert "offerta-rev.pdf" in download.headers["Content-Disposition"]
    other = app.test_client()
    login(other, "carla@globex.example")
    assert "Offerta 2026" not in other.get("/documents/?per_page=100").text
    assert other.get(f"/documents/{doc.id}/download").status_code == 404


def test_a_rolled_back_replacement_keeps_the_old_file_and_leaves_no_new_one(app, token, client):
    first = put(client, token, "D-1", _doc()).json
    old = _get(app, first["id"]).stored_name
    before = _stored(app)
    # a valid file with a contact of another company: the push is refused after the file checks
    refused = put(client, token, "D-1", {"file": _file("altro.pdf", PDF_2), "contact_external_id": "CARLA"})
    assert refused.status_code == 422
    assert _stored(app) == before and _get(app, first["id"]).stored_name == old

    def boom(sender, **kw):
        raise RuntimeError("receiver failed")

    signals.record_updated.connect(boom)
    try:
        with pytest.raises(RuntimeError):
            put(client, token, "D-1", {"file": _file("altro.pdf", PDF_2)})
    finally:
        signals.record_updated.disconnect(boom)
    assert _stored(app) == before and _get(app, first["id"]).stored_name == old


@pytest.mark.parametrize(("file", "config"), [
    (_file("virus.exe", b"MZ\x90\x00binary"), {}),                       # type not allowed
    (_file("fake.pdf", b"just text, not a pdf"), {}),                    # content does not match
    (_file("offerta.pdf", PDF), {"UPLOAD_MAX_BYTES": 10}),               # too large
    (_file("empty.pdf", b""), {}),                                       # empty
    ({"name": "offerta.pdf", "content_base64": "%%% not base64 %%%"}, {}),
    ({"name": "offerta.pdf"}, {}),                                       # wrong shape
    ("offerta.pdf", {}),
])
def test_refused_files_are_422_naming_file_nothing_written(app, token, client, file, config):
    app.config.update(config)
    before, refs = _stored(app), _count(app, ExternalRef)
    answer = put(client, token, "D-1", _doc(file=file))
    assert answer.status_code == 422 and set(answer.json["errors"]) == {"file"}, answer.json
    assert _stored(app) == before and _count(app, ExternalRef) == refs
    assert _count(app, Document, Document.title == "Offerta 2026") == 0


def test_refused_replacement_keeps_the_stored_file(app, token, client):
    first = put(client, token, "D-1", _doc()).json
    old = _get(app, first["id"]).stored_name
    answer = put(client, token, "D-1", {"title": "Nuovo", "file": _file("fake.pdf", b"not a pdf")})
    assert answer.status_code == 422 and "file" in answer.json["errors"]
    doc = _get(app, first["id"])
    assert doc.stored_name == old and doc.title == "Offerta 2026" and old in _stored(app)


def test_batch_each_item_its_own_savepoint(app, token, client):
    before = _stored(app)
    items = [{"external_id": "D-1", "data": _doc()},
             {"external_id": "D-2", "data": _doc(title="Rifiutato", file=_file("x.pdf", b"no pdf"))},
             {"external_id": "D-3", "data": _doc(title="Manuale", public=True, file=_file("m.txt", b"Manuale\n"))}]
    answer = client.post("/api/v1/sync/document/batch", json={"items": items}, headers=bearer(token))
    assert answer.status_code == 200, answer.json
    assert [i["status"] for i in answer.json["items"]] == ["created", "error", "created"]
    assert "file" in answer.json["items"][1]["errors"]
    assert len(_stored(app) - before) == 2  # the refused item's file was never kept
    again = client.post("/api/v1/sync/document/batch", json={"items": items}, headers=bearer(token))
    assert again.json["counts"] == {"created": 0, "updated": 0, "unchanged": 2, "conflict": 0, "error": 1}


def test_deletion_removes_the_row_and_its_file(app, token, client, frozen_clock):
    doc_id = put(client, token, "D-1", _doc()).json["id"]
    stored = _get(app, doc_id).stored_name
    answer = client.delete("/api/v1/sync/document/D-1", headers=bearer(token))
    assert answer.status_code == 200 and answer.json["policy"] == "delete" and answer.json["status"] == "scheduled"
    assert stored in _stored(app)
    with app.app_context(), db.connection_context():
        assert purge(utcnow() + dt.timedelta(days=int(app.config["SYNC_DELETE_AFTER_DAYS"]) + 1)) == 1
    assert _count(app, Document, Document.id == doc_id) == 0 and stored not in _stored(app)


def test_acting_as_a_contact_is_refused(app, demo, token, client):
    anna = demo["contacts"]["anna"]
    before = _stored(app)
    answer = put(client, token, "D-1", _doc(), **{"X-Act-As-Contact": anna.email})
    assert answer.status_code == 403 and _stored(app) == before
    assert _count(app, Document, Document.title == "Offerta 2026") == 0


def test_scope_is_required(app, demo, client):
    key = make_key(app, "companies:read companies:write").token
    answer = client.put("/api/v1/sync/document/D-1", json=_doc(), headers=bearer(key))
    assert answer.status_code == 403


def test_the_file_key_is_documented(app, token, client):
    spec = client.get("/api/v1/openapi.json", headers=bearer(token)).json
    paths = {path.removeprefix("/api/v1"): item for path, item in spec["paths"].items()}
    description = paths["/sync/document/{external_id}"]["put"]["description"]
    assert "`file`" in description and "`contact_external_id`" in description


def test_file_errors_in_the_callers_language(app, token, client):
    bad = _doc(file={"name": "offerta.pdf", "content_base64": "@@@"})
    italian = put(client, token, "D-1", bad, **{"Accept-Language": "it"})
    assert italian.json["errors"]["file"] == ["Il contenuto del file non è un base64 valido."]
    assert put(client, token, "D-1", bad).json["errors"]["file"] == ["The file's content is not valid base64."]


def test_a_batch_that_rolls_back_leaves_no_file(app, token, client):
    before = _stored(app)
    calls = []

    def second_fails(sender, **kw):
        calls.append(sender)
        if len(calls) == 2:
            raise RuntimeError("receiver failed")

    items = [{"external_id": f"D-{n}", "data": _doc(title=f"Doc {n}", file=_file(f"d{n}.txt", f"{n}\n".encode()))}
             for n in (1, 2)]
    signals.record_created.connect(second_fails)
    try:
        with pytest.raises(RuntimeError):
            client.post("/api/v1/sync/document/batch", json={"items": items}, headers=bearer(token))
    finally:
        signals.record_created.disconnect(second_fails)
    assert calls == ["documents", "documents"]
    assert _stored(app) == before and _count(app, Document, Document.title.startswith("Doc ")) == 0


def test_a_pushed_document_sends_document_created(app, demo, receiver, client):
    app.config["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = True  # the receiver is local
    hooks = Hooks(app, receiver, events=["document.created", "document.updated"])
    token = make_key(app, "sync:write").token
    acme = demo["companies"]["acme"]
    client.put("/api/v1/sync/company/ACME", json={"name": acme.name, "vat_number": acme.vat_number},
               headers=bearer(token))
    created = put(client, token, "D-1", _doc(contact_external_id=None)).json
    assert created["status"] == "created", created
    put(client, token, "D-1", {"title": "Offerta rivista"})
    events = hooks.events()
    assert [(kind, data["id"]) for kind, data in events] == [("document.created", created["id"]),
                                                             ("document.updated", created["id"])]


def test_a_modules_file_declaration_is_checked():
    """``sync_files`` names columns of the record, which must take its files with it."""
    from crm_portal.api import SyncFile
    from crm_portal.modules.documents.models import Folder
    from crm_portal.sync.types import _check_files

    _check_files("documents", Document, {"file": SyncFile()}, ("title",))
    with pytest.raises(ValueError, match="not fields"):
        _check_files("documents", Document, {"file": SyncFile(size="bytes")}, ())
    with pytest.raises(ValueError, match="clashes"):
        _check_files("documents", Document, {"title": SyncFile()}, ("title",))
    with pytest.raises(ValueError, match="file_area"):
        _check_files("x", Folder, {"file": SyncFile(stored_name="label_en", original_name=None, size=None,
                                                    mimetype=None, kind=None)}, ())
