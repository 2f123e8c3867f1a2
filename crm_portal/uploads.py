"""Uploaded files: validation, storage outside the web root and safe download (extension point).

Every module that accepts files from users (documents, tickets …) goes through here:

- :func:`save_upload` streams a ``werkzeug.datastructures.FileStorage`` to a temporary file while
  counting bytes (``Content-Length`` is not trusted), refuses anything over ``UPLOAD_MAX_BYTES``
  (HTTP 413) and anything whose *content* is not one of ``UPLOAD_ALLOWED_TYPES`` or does not agree
  with the file name's extension (HTTP 415), then hands it to the storage backend
  (:mod:`crm_portal.storage`: ``UPLOAD_FOLDER/<area>/<random name>`` by default, or an S3 bucket).
  A refused file leaves nothing behind.
- :func:`send_stored` serves a stored file as an attachment, with an RFC 5987 file name, a
  Content-Type from a fixed list and ``X-Content-Type-Options: nosniff``.

Rows take their files with them. A model whose rows hold stored names declares where, as class
attributes::

    class Document(BaseModel):
        file_area = "documents"            # UPLOAD_FOLDER/<area>
        file_fields = ("stored_name",)     # the columns holding names save_upload made

:func:`delete_with_files` deletes a row and, once the transaction commits, the files of that row
and of every row the database deletes with it (``ON DELETE CASCADE``, followed transitively): a
rolled-back delete keeps its files. :func:`remove_after_commit` does the same for a file a row no
longer uses (a replaced document): write the new file, commit, then remove the old one.

Content detection: binary formats by their magic bytes (the ``filetype`` package), OLE2
containers (``D0 CF 11 E0``) for the old ``doc``/``xls``/``ppt``, ZIP containers opened to tell
``docx``/``xlsx``/``pptx`` apart by their ``[Content_Types].xml`` and ``odt``/``ods``/``odp`` by
their ``mimetype`` entry, RTF by its ``{\\rtf`` header, and ``txt``/``csv`` by being valid UTF-8
without NUL bytes.
"""
from __future__ import annotations

import codecs
import dataclasses
import os
import re
import secrets
import tempfile
import unicodedata
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import filetype
import peewee as pw
from flask import Response, abort, current_app, request, send_file
from flask_babel import gettext as _

from .db import db
from .storage import LocalStorage, iter_chunks, storage

__all__ = ["UploadRejected", "StoredFile", "save_upload", "send_stored", "delete_stored", "stored_path",
           "upload_folder", "clean_filename", "detect_kind", "MIMETYPES", "files_deleted_with",
           "remove_after_commit", "delete_with_files", "content_disposition"]

CHUNK = 64 * 1024
AREA_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
STORED_RE = re.compile(r"^[A-Za-z0-9_-]{16,80}$")
MAX_NAME = 200

#: The Content-Type each known kind is served with.
MIMETYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "txt": "text/plain; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "zip": "application/zip",
    "rtf": "application/rtf",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
}
SAFE_MIMETYPES = {value.split(";")[0] for value in MIMETYPES.values()}
EXTENSION_ALIASES = {"jpeg": "jpg", "jpe": "jpg", "text": "txt"}
OLE2_KINDS = ("doc", "xls", "ppt")
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
OOXML_MARKERS = (("wordprocessingml", "docx"), ("spreadsheetml", "xlsx"), ("presentationml", "pptx"))
ODF_MIMETYPES = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
}
BINARY_KINDS = {"pdf", "png", "jpg", "gif", "webp"}


class UploadRejected(Exception):
    """An upload the portal refuses. ``message`` is translated for the user; ``status`` is the HTTP
    status to answer with (413 too large, 415 type not allowed, 400 missing or empty)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclasses.dataclass(frozen=True)
class StoredFile:
    """A file accepted by :func:`save_upload`."""

    stored_name: str     #: random name under ``<area>/`` in the storage (crm_portal.storage)
    original_name: str   #: the user's file name, sanitised for display and download
    size: int            #: bytes
    mimetype: str        #: Content-Type to serve it with
    kind: str            #: detected type, one of ``UPLOAD_ALLOWED_TYPES`` (``pdf``, ``docx`` …)


def upload_folder(area: str) -> Path:
    """``UPLOAD_FOLDER/<area>`` (created if missing); ``area`` is a short lowercase name."""
    if not AREA_RE.match(area or ""):
        raise ValueError(f"invalid upload area {area!r}")
    base = current_app.config.get("UPLOAD_FOLDER") or os.path.join(current_app.instance_path, "uploads")
    folder = Path(base) / area
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stored_path(stored_name: str, area: str) -> Path:
    """Where a stored file lives; ``ValueError`` for a name :func:`save_upload` cannot have made."""
    if not STORED_RE.match(stored_name or ""):
        raise ValueError("invalid stored name")
    return upload_folder(area) / stored_name


def clean_filename(name: str | None) -> str:
    """The user's file name made harmless: no directories, control characters (NUL, CR, LF …),
    quotes or backslashes; at most 200 characters, keeping the extension."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C" and ch not in "\"'`<>|*?:")
    name = " ".join(name.split()).strip(" .")
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_NAME - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:MAX_NAME]
    return name


def _extension(name: str) -> str:
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    return EXTENSION_ALIASES.get(ext, ext)


def _is_utf8_text(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                if b"\x00" in chunk:
                    return False
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _zip_kind(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "[Content_Types].xml" in names:
                # Read a bounded prefix: a member that inflates to gigabytes (a zip bomb) stays packed.
                with archive.open("[Content_Types].xml") as member:
                    types = member.read(200_000).decode("utf-8", "replace")
                for marker, kind in OOXML_MARKERS:
                    if marker in types:
                        return kind
                return "zip"
            if "mimetype" in names:
                with archive.open("mimetype") as member:
                    mimetype = member.read(100).decode("ascii", "replace").strip()
                if mimetype in ODF_MIMETYPES:
                    return ODF_MIMETYPES[mimetype]
            return "zip"
    except (zipfile.BadZipFile, OSError, KeyError, RuntimeError, NotImplementedError):
        return None


def detect_kind(path: Path, extension: str) -> str | None:
    """The kind of the file at ``path`` judged by its content (``None``: unknown). ``extension``
    only decides between formats the content cannot tell apart (OLE2 ``doc``/``xls``/``ppt``,
    ``txt``/``csv``)."""
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if head.startswith(OLE2_MAGIC):
        return extension if extension in OLE2_KINDS else "ole2"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head.startswith(b"{\\rtf"):
        return "rtf"
    guessed = filetype.guess_extension(head)
    if guessed in BINARY_KINDS:
        return guessed
    if guessed is not None:
        return None  # a binary format we do not accept (exe, mp4 …)
    if extension in ("txt", "csv") and _is_utf8_text(path):
        return extension
    return None


def _allowed() -> set[str]:
    return {EXTENSION_ALIASES.get(t.lower(), t.lower()) for t in current_app.config["UPLOAD_ALLOWED_TYPES"]}


def save_upload(file: Any, area: str) -> StoredFile:
    """Validate and store one uploaded ``FileStorage`` under ``area``; raise :class:`UploadRejected`.

    Nothing is left on disk when the file is refused.
    """
    if file is None or not getattr(file, "filename", None):
        raise UploadRejected(_("Please choose a file to upload."), 400)
    original = clean_filename(file.filename)
    extension = _extension(original)
    allowed = _allowed()
    if not original or extension not in allowed:
        raise UploadRejected(_("This type of file is not accepted. Allowed types: %(types)s.",
                               types=", ".join(sorted(allowed))), 415)
    limit = int(current_app.config["UPLOAD_MAX_BYTES"])
    if not AREA_RE.match(area or ""):
        raise ValueError(f"invalid upload area {area!r}")
    store = storage()
    # Received and checked on local disk first: only an accepted file reaches the storage.
    fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=store.scratch_dir(area))
    tmp = Path(tmp_name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := file.stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadRejected(_("The file is too large: the limit is %(size)s MB.",
                                           size=f"{limit / (1024 * 1024):g}"), 413)
                out.write(chunk)
        if size == 0:
            raise UploadRejected(_("The file is empty."), 400)
        kind = detect_kind(tmp, extension)
        if kind != extension:
            raise UploadRejected(_("The content of the file does not match its type (.%(ext)s) or is not "
                                   "an accepted format.", ext=extension), 415)
        stored_name = secrets.token_urlsafe(24)
        store.put_file(tmp, area, stored_name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return StoredFile(stored_name=stored_name, original_name=original, size=size,
                      mimetype=MIMETYPES.get(kind, "application/octet-stream"), kind=kind)


def delete_stored(stored_name: str, area: str) -> None:
    """Remove a stored file (missing files are ignored)."""
    if STORED_RE.match(stored_name or "") and AREA_RE.match(area or ""):
        storage().delete(area, stored_name)


#: How deep :func:`files_deleted_with` follows cascades (a contact → its tickets → their attachments).
CASCADE_DEPTH = 5


def _declared_files(model: type[pw.Model]) -> tuple[str, tuple[str, ...]] | None:
    area = getattr(model, "file_area", None)
    fields = tuple(getattr(model, "file_fields", ()) or ())
    return (area, fields) if area and fields else None


def _collect(model: type[pw.Model], where: Any, tables: set[str], depth: int,
             out: list[tuple[str, str]]) -> None:
    declared = _declared_files(model)
    if declared is not None:
        area, names = declared
        for row in model.select(*[getattr(model, n) for n in names]).where(where).tuples():
            out.extend((stored, area) for stored in row if stored)
    if depth >= CASCADE_DEPTH:
        return
    for fk, dependent in list(model._meta.backrefs.items()):
        if (fk.on_delete or "").upper() != "CASCADE" or dependent._meta.table_name not in tables:
            continue
        parents = model.select(fk.rel_field).where(where)
        _collect(dependent, fk.in_(parents), tables, depth + 1, out)


def files_deleted_with(record: pw.Model) -> list[tuple[str, str]]:
    """``(stored_name, area)`` of the files of ``record`` and of every row the database deletes
    with it through ``ON DELETE CASCADE`` foreign keys. Call it before deleting the row."""
    model = type(record)
    tables = set(db.get_tables())
    out: list[tuple[str, str]] = []
    _collect(model, model._meta.primary_key == record.get_id(), tables, 0, out)
    return out


def remove_after_commit(files: list[tuple[str, str]]) -> None:
    """Delete these stored files once the current transaction commits (at once outside one);
    nothing is removed when it rolls back."""
    todo = [(name, area) for name, area in files if name]
    if not todo:
        return

    def remove() -> None:
        for name, area in todo:
            delete_stored(name, area)

    db.after_commit(remove)


def delete_with_files(record: pw.Model) -> int:
    """Delete ``record`` (the database's foreign keys decide what goes with it) and, after the
    commit, every file of the rows deleted. Returns the number of rows deleted (0 or 1)."""
    files = files_deleted_with(record)
    deleted = record.delete_instance()
    remove_after_commit(files)
    return deleted


def content_disposition(download_name: str, *, inline: bool = False) -> str:
    """``attachment`` (``inline`` if asked: a feed or page the browser may show) with an ASCII
    ``filename`` fallback and the UTF-8 ``filename*`` of RFC 5987."""
    name = clean_filename(download_name) or "download"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r"[^A-Za-z0-9._ ()+-]", "_", ascii_name).strip() or "download"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def send_stored(stored_name: str, area: str, download_name: str, mimetype: str | None = None) -> Response:
    """A download response for a stored file (404 if it is missing). The Content-Type is used only
    when it is one of the known safe types, else ``application/octet-stream``. A file in object
    storage is streamed through the portal, so the caller's visibility check stays the only gate."""
    if not STORED_RE.match(stored_name or "") or not AREA_RE.match(area or ""):
        abort(404)
    store = storage()
    path = stored_path(stored_name, area) if isinstance(store, LocalStorage) else None
    if path is not None and not path.is_file():
        abort(404)
    base = (mimetype or "").split(";")[0].strip().lower()
    if base not in SAFE_MIMETYPES:
        safe = "application/octet-stream"
    elif base.startswith("text/"):
        safe = f"{base}; charset=utf-8"
    else:
        safe = base
    if path is not None:
        # send_file answers conditional and range requests (a resumed download) from the file itself.
        response = send_file(path, mimetype=safe.split(";")[0], conditional=True, etag=True, max_age=0)
    else:
        response = _stream_object(stored_name, area, safe.split(";")[0])
    response.headers["Content-Disposition"] = content_disposition(download_name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _stream_object(stored_name: str, area: str, mimetype: str) -> Response:
    """A stored object streamed in chunks, with its length and ETag; conditional (``If-None-Match``)
    and single range requests are answered by werkzeug (a range skips the bytes before it)."""
    obj = storage().open(area, stored_name)
    if obj is None:
        abort(404)
    response = Response(iter_chunks(obj), mimetype=mimetype, direct_passthrough=True)
    response.content_length = obj.size
    if obj.etag:
        response.set_etag(obj.etag)
    response.make_conditional(request, accept_ranges=True, complete_length=obj.size)  # in place
    if response.status_code == 304 or request.method == "HEAD":
        obj.close()
    return response
