"""crm_portal.uploads: content-checked, size-limited storage and safe downloads."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import NotFound

from crm_portal.api import StoredFile, UploadRejected, save_upload, send_stored
from crm_portal.uploads import clean_filename, content_disposition, upload_folder

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 100


def _zip(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _ooxml(kind: str) -> bytes:
    part = {"docx": "wordprocessingml.document.main", "xlsx": "spreadsheetml.sheet.main",
            "pptx": "presentationml.presentation.main"}[kind]
    types = ('<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
             f'<Override PartName="/x.xml" ContentType="application/vnd.openxmlformats-officedocument.{part}+xml"/>'
             "</Types>")
    return _zip({"[Content_Types].xml": types, "x.xml": "<x/>"})


ODT = _zip({"mimetype": "application/vnd.oasis.opendocument.text", "content.xml": "<x/>"})
PLAIN_ZIP = _zip({"readme.txt": "hello"})


def _file(data: bytes, name: str, content_type: str = "application/octet-stream") -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=name, content_type=content_type)


@pytest.fixture
def ctx(app):
    with app.test_request_context():
        yield app


def _stored_files(app, area="tests") -> list[str]:
    folder = Path(app.instance_path) / "uploads" / area
    return sorted(os.listdir(folder)) if folder.exists() else []


@pytest.mark.parametrize("data,name,kind", [
    (PDF, "manual.pdf", "pdf"),
    (PNG, "screen.PNG", "png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20, "photo.jpeg", "jpg"),
    (b"GIF89a" + b"\x00" * 20, "anim.gif", "gif"),
    ("Ciao, è un testo in UTF-8.\n".encode(), "note.txt", "txt"),
    (b"a;b\n1;2\n", "data.csv", "csv"),
    (_ooxml("docx"), "letter.docx", "docx"),
    (_ooxml("xlsx"), "sheet.xlsx", "xlsx"),
    (_ooxml("pptx"), "slides.pptx", "pptx"),
    (ODT, "text.odt", "odt"),
    (PLAIN_ZIP, "bundle.zip", "zip"),
    (OLE2, "old.doc", "doc"),
    (OLE2, "old.xls", "xls"),
    (b"{\\rtf1\\ansi hello}", "rich.rtf", "rtf"),
])
def test_accepted_types(ctx, data, name, kind):
    stored = save_upload(_file(data, name), "tests")
    assert isinstance(stored, StoredFile)
    assert stored.kind == kind and stored.size == len(data)
    path = upload_folder("tests") / stored.stored_name
    assert path.read_bytes() == data
    assert stored.original_name == name
    assert len(stored.stored_name) >= 20 and "." not in stored.stored_name


@pytest.mark.parametrize("data,name", [
    (EXE, "invoice.pdf"),                 # an executable in disguise
    (PDF, "manual.docx"),                 # extension disagrees with content
    (_ooxml("docx"), "sheet.xlsx"),       # a Word file named as a spreadsheet
    (_ooxml("docx"), "letter.zip"),       # office files are zips, but the kind is docx
    (PLAIN_ZIP, "fake.docx"),             # a plain zip is not a Word file
    (OLE2, "old.pdf"),
    (b"hello\x00world", "nul.txt"),       # NUL byte: binary, not text
    ("caffè".encode("latin-1"), "latin.txt"),  # not valid UTF-8
    (PNG, "picture.txt"),
    (b"<html><script>alert(1)</script></html>", "page.html"),  # type not allowed at all
    (PDF, "noextension"),
    (b"PK\x03\x04broken zip", "broken.docx"),
])
def test_refused_types_leave_nothing(ctx, data, name):
    with pytest.raises(UploadRejected) as info:
        save_upload(_file(data, name, "application/pdf"), "tests")
    assert info.value.status == 415
    assert info.value.message
    assert _stored_files(ctx) == []


def test_size_limit_is_413_and_nothing_stored(ctx):
    ctx.config["UPLOAD_MAX_BYTES"] = 1000
    stored = save_upload(_file(b"x" * 1000, "exact.txt"), "tests")  # at the limit: fine
    assert stored.size == 1000
    with pytest.raises(UploadRejected) as info:
        save_upload(_file(b"x" * 1001, "big.txt"), "tests")
    assert info.value.status == 413
    assert "1000" not in info.value.message or "MB" in info.value.message
    assert _stored_files(ctx) == [stored.stored_name]


def test_declared_length_is_not_trusted(ctx):
    ctx.config["UPLOAD_MAX_BYTES"] = 100
    lying = FileStorage(stream=io.BytesIO(b"y" * 5000), filename="small.txt", content_type="text/plain",
                        content_length=10, headers={"Content-Length": "10"})
    with pytest.raises(UploadRejected) as info:
        save_upload(lying, "tests")
    assert info.value.status == 413
    assert _stored_files(ctx) == []


def test_missing_and_empty_files_are_400(ctx):
    with pytest.raises(UploadRejected) as info:
        save_upload(None, "tests")
    assert info.value.status == 400
    with pytest.raises(UploadRejected) as info:
        save_upload(_file(b"", ""), "tests")
    assert info.value.status == 400
    with pytest.raises(UploadRejected) as info:
        save_upload(_file(b"", "empty.txt"), "tests")
    assert info.value.status == 400
    assert _stored_files(ctx) == []


def test_messages_are_translated(app):
    with app.test_request_context(headers={"Accept-Language": "it"}):
        with pytest.raises(UploadRejected) as info:
            save_upload(_file(EXE, "x.exe"), "tests")
    assert "non è accettato" in info.value.message


@pytest.mark.parametrize("raw,clean", [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\report.pdf", "report.pdf"),
    ('evil"\r\nSet-Cookie: x=1.txt', "evilSet-Cookie x=1.txt"),
    ("nul\x00byte.txt", "nulbyte.txt"),
    ("  spaced   name .pdf ", "spaced name .pdf"),
    ("it's <b>bold</b>.txt", "b.txt"),  # "/" ends a directory part
])
def test_clean_filename(raw, clean):
    assert clean_filename(raw) == clean


def test_clean_filename_keeps_extension_within_200_chars():
    name = clean_filename("a" * 500 + ".pdf")
    assert len(name) == 200 and name.endswith(".pdf")


def test_send_stored_headers(ctx):
    stored = save_upload(_file("Prova è\n".encode(), "résumé finale.txt"), "tests")
    response = send_stored(stored.stored_name, "tests", "résumé \"finale\".txt", stored.mimetype)
    body = b"".join(response.response)
    response.close()
    assert body == "Prova è\n".encode()
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20finale.txt" in disposition
    assert 'filename="resume finale.txt"' in disposition
    assert response.headers["Content-Length"] == str(len(body))


def test_downloads_answer_range_and_conditional_requests(app, ctx):
    stored = save_upload(_file(b"0123456789" * 100, "numbers.txt"), "tests")
    with app.test_request_context(headers={"Range": "bytes=10-19"}):
        response = send_stored(stored.stored_name, "tests", "numbers.txt", stored.mimetype)
        assert response.status_code == 206 and b"".join(response.response) == b"0123456789"
        assert response.headers["Content-Range"] == "bytes 10-19/1000"
        response.close()
        etag = response.headers["ETag"]
    with app.test_request_context(headers={"If-None-Match": etag}):
        response = send_stored(stored.stored_name, "tests", "numbers.txt", stored.mimetype)
        assert response.status_code == 304
        response.close()


def test_send_stored_never_serves_active_content(ctx):
    stored = save_upload(_file(b"<html>hi</html>", "page.txt"), "tests")
    for mimetype in ("text/html", "image/svg+xml", "application/javascript", None, "nonsense"):
        response = send_stored(stored.stored_name, "tests", "page.html", mimetype)
        assert response.headers["Content-Type"] == "application/octet-stream"
        response.close()


def test_send_stored_missing_or_malicious_names_are_404(ctx):
    for name in ("does-not-exist-0123456789", "../../secret_key", "", "a/b"):
        with pytest.raises(NotFound):
            send_stored(name, "tests", "x.txt", "text/plain")


def test_storage_is_outside_the_web_root(ctx):
    stored = save_upload(_file(PDF, "a.pdf"), "tests")
    path = upload_folder("tests") / stored.stored_name
    assert Path(ctx.instance_path) in path.parents
    assert Path(ctx.static_folder) not in path.parents
    ctx.config["UPLOAD_FOLDER"] = str(Path(ctx.instance_path) / "elsewhere")
    other = save_upload(_file(PDF, "b.pdf"), "tests")
    assert (Path(ctx.instance_path) / "elsewhere" / "tests" / other.stored_name).is_file()


def test_bad_area_is_refused(ctx):
    with pytest.raises(ValueError):
        save_upload(_file(PDF, "a.pdf"), "../escape")


def test_content_disposition_ascii_fallback():
    header = content_disposition("Überweisung 100%.pdf")
    assert 'filename="Uberweisung 100_.pdf"' in header
    assert "filename*=UTF-8''%C3%9Cberweisung%20100%25.pdf" in header
