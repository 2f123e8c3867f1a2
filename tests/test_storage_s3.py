"""The S3 storage backend against a local S3-compatible server (moto): saving, reading and
deleting objects, and the downloads of a ticket attachment and a document with
``STORAGE_BACKEND = "s3"`` (same bytes and headers as from the local folder, the record's scope
still the gate, the object deleted after the record's commit)."""
from __future__ import annotations

import io
import os

import pytest
from conftest import login
from s3_server import s3, s3_endpoint  # noqa: F401  (fixtures)
from test_sync_documents import token  # noqa: F401  (fixture: a CRM key, Acme and Bruno linked)
from test_tickets import PNG, form_data, wizard_url
from werkzeug.datastructures import FileStorage

from crm_portal.config import ConfigurationError
from crm_portal.db import db
from crm_portal.modules.documents.models import Document
from crm_portal.modules.tickets.models import Ticket, TicketAttachment
from crm_portal.storage import LocalStorage, S3Storage, storage
from crm_portal.uploads import UploadRejected, delete_stored, delete_with_files, save_upload, send_stored

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@pytest.fixture
def on_s3(app, s3):  # noqa: F811
    app.config.update(s3.settings)
    with app.app_context():
        yield s3


def _upload(data: bytes, name: str, area: str = "tests"):
    return save_upload(FileStorage(stream=io.BytesIO(data), filename=name), area)


def test_the_backend_follows_the_configuration(app, s3):  # noqa: F811
    with app.app_context():
        assert isinstance(storage(), LocalStorage)
        app.config.update(s3.settings)
        store = storage()
        assert isinstance(store, S3Storage) and store.bucket == s3.bucket
        assert storage() is store  # one client per application, shared by its threads


def test_save_open_exists_delete(on_s3):
    store = storage()
    store.save(io.BytesIO(b"hello"), "tests", "name-abcdefghijklmnop")
    assert on_s3.keys() == ["tests/name-abcdefghijklmnop"]
    assert store.exists("tests", "name-abcdefghijklmnop")
    obj = store.open("tests", "name-abcdefghijklmnop")
    assert obj is not None and obj.size == 5 and obj.read() == b"hello" and obj.etag
    obj.close()
    store.delete("tests", "name-abcdefghijklmnop")
    assert on_s3.keys() == [] and not store.exists("tests", "name-abcdefghijklmnop")
    assert store.open("tests", "name-abcdefghijklmnop") is None
    store.delete("tests", "name-abcdefghijklmnop")  # a missing object is not an error


def test_prefix_keeps_the_portal_in_its_own_part_of_the_bucket(app, on_s3):
    app.config["S3_PREFIX"] = "portal/"
    stored = _upload(b"note\n", "note.txt")
    assert on_s3.keys() == [f"portal/tests/{stored.stored_name}"]


def test_save_upload_checks_before_storing_and_leaves_nothing_behind(app, on_s3, tmp_path):
    stored = _upload(PDF, "invoice.pdf")
    assert stored.kind == "pdf" and stored.size == len(PDF)
    assert on_s3.keys() == [f"tests/{stored.stored_name}"] and on_s3.read(on_s3.keys()[0]) == PDF
    scratch = storage().scratch_dir("tests")
    before = set(os.listdir(scratch))
    app.config["UPLOAD_MAX_BYTES"] = 10
    with pytest.raises(UploadRejected) as too_big:
        _upload(b"x" * 11, "big.txt")
    assert too_big.value.status == 413
    app.config["UPLOAD_MAX_BYTES"] = 1000
    with pytest.raises(UploadRejected) as lying:
        _upload(b"MZ\x90\x00" + b"\x00" * 60, "fake.pdf")
    assert lying.value.status == 415
    assert on_s3.keys() == [f"tests/{stored.stored_name}"]  # nothing refused reached the bucket
    assert {n for n in os.listdir(scratch) if n.startswith(".upload-")} <= before  # no temporary file left
    assert not (tmp_path / "instance" / "uploads" / "tests").exists()  # nor anything in the local folder
    delete_stored(stored.stored_name, "tests")
    assert on_s3.keys() == []


def test_send_stored_streams_with_the_same_headers(app, on_s3):
    stored = _upload("Prova è\n".encode(), "résumé finale.txt")
    with app.test_request_context():
        response = send_stored(stored.stored_name, "tests", "résumé \"finale\".txt", stored.mimetype)
        response.direct_passthrough = False
        assert response.get_data() == "Prova è\n".encode()
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"resume finale.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20finale.txt")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["Content-Length"] == str(len("Prova è\n".encode()))
    etag = response.headers["ETag"]
    with app.test_request_context(headers={"If-None-Match": etag}):
        assert send_stored(stored.stored_name, "tests", "x.txt", stored.mimetype).status_code == 304
    with app.test_request_context(headers={"Range": "bytes=2-4"}):
        partial = send_stored(stored.stored_name, "tests", "x.txt", stored.mimetype)
        partial.direct_passthrough = False
        assert partial.status_code == 206 and partial.get_data() == "Prova è\n".encode()[2:5]
        assert partial.headers["Content-Range"] == f"bytes 2-4/{len('Prova è'.encode()) + 1}"
    with app.test_request_context():
        for name in ("missing-name-abcdefgh", "../../etc/passwd"):
            with pytest.raises(Exception) as missing:
                send_stored(name, "tests", "x.txt", "text/plain")
            assert getattr(missing.value, "code", None) == 404


def test_ticket_attachment_on_s3(app, demo, client, s3):  # noqa: F811
    app.config.update(s3.settings)
    login(client, "bruno@acme.example")
    response = client.post(wizard_url(client), data=form_data(attachments=[(io.BytesIO(PNG), "screen shot.png")]),
                           content_type="multipart/form-data")
    assert response.status_code == 302, response.text[:2000]
    with app.app_context(), db.connection_context():
        ticket = Ticket.get(Ticket.title == "Cannot print invoices")
        attachment = TicketAttachment.get(TicketAttachment.ticket == ticket.id)
    assert s3.keys() == [f"tickets/{attachment.stored_name}"]
    download = client.get(f"/tickets/{ticket.id}/attachments/{attachment.id}")
    assert download.status_code == 200 and download.data == PNG
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"screen shot.png\"; filename*=UTF-8''screen%20shot.png")
    assert download.headers["Content-Type"] == "image/png"
    download.close()
    # Another company's contact: the scope gate answers before the storage is asked.
    other = app.test_client()
    login(other, "carla@globex.example")
    assert other.get(f"/tickets/{ticket.id}/attachments/{attachment.id}").status_code == 404
    with app.app_context(), db.connection_context():
        with db.atomic():
            delete_with_files(Ticket.get_by_id(ticket.id))
            assert s3.keys() == [f"tickets/{attachment.stored_name}"]  # kept until the commit
    assert s3.keys() == []


def test_document_upload_and_download_on_s3(app, demo, client, s3):  # noqa: F811
    app.config.update(s3.settings)
    login(client, "bruno@acme.example")
    form = {"title": "Log", "file": (io.BytesIO(PDF), "errore stampante.pdf")}
    response = client.post("/documents/upload", data=form, content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        doc = Document.get(Document.uploaded_by_customer == True)  # noqa: E712
    assert s3.keys() == [f"documents/{doc.stored_name}"]
    download = client.get(f"/documents/{doc.id}/download")
    assert download.status_code == 200 and download.data == PDF
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"errore stampante.pdf\"; filename*=UTF-8''errore%20stampante.pdf")
    download.close()
    login(other := app.test_client(), "carla@globex.example")
    assert other.get(f"/documents/{doc.id}/download").status_code == 404
    # An object that disappeared from the bucket is a 404, not an error.
    s3.client.delete_object(Bucket=s3.bucket, Key=f"documents/{doc.stored_name}")
    assert client.get(f"/documents/{doc.id}/download").status_code == 404


def test_a_bad_storage_setting_stops_the_start(tmp_path):
    from conftest import make_app

    with pytest.raises(ConfigurationError, match="STORAGE_BACKEND"):
        make_app(tmp_path, STORAGE_BACKEND="ftp")
    with pytest.raises(ConfigurationError, match="S3_BUCKET"):
        make_app(tmp_path / "b", STORAGE_BACKEND="s3")


def test_a_document_pushed_by_the_crm_is_compared_in_the_bucket(app, token, client, s3):  # noqa: F811
    """The sync tells an unchanged file from a new one by reading the stored one, wherever it is."""
    from test_sync_documents import PDF_2, _doc, _file, put

    app.config.update(s3.settings)
    assert put(client, token, "D-1", _doc()).json["status"] == "created"
    assert put(client, token, "D-1", _doc()).json["status"] == "unchanged"
    changed = put(client, token, "D-1", _doc(file=_file("offerta.pdf", PDF_2)))
    assert changed.json["status"] == "updated" and changed.json["changes"] == ["file"]
    with app.app_context(), db.connection_context():
        doc = Document.get_by_id(changed.json["id"])
        stored = storage().open("documents", doc.stored_name)
        assert isinstance(storage(), S3Storage) and stored is not None
        assert stored.read() == PDF_2
        stored.close()
