"""Files a CRM pushes with a module's records (``Module.sync_files``): a document's PDF …

A module declares, per payload key, the columns of its record that take a stored file::

    sync_files = {"file": SyncFile()}   # stored_name, original_name, size, mimetype, kind

and the payload carries ``"file": {"name": "offerta.pdf", "content_base64": "…"}``. The file goes
through the portal's upload rules (:func:`crm_portal.uploads.save_upload`: size, type checked on
content); a refused file is a field error naming the key. A push whose file has the same name and
content as the stored one changes nothing (compared by size, then SHA-256, without storing it
again). A new file replaces the old one, which is removed only once the transaction commits; a
push that rolls back removes the file it stored (:class:`PushFiles`).
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
from collections.abc import Mapping
from typing import Any

from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

from ..storage import storage
from ..uploads import (
    CHUNK,
    UploadRejected,
    clean_filename,
    delete_stored,
    remove_after_commit,
    save_upload,
)


@dataclasses.dataclass(frozen=True)
class SyncFile:
    """One file a push may carry: the record's columns that take what
    :func:`~crm_portal.uploads.save_upload` made (``None``: not kept). The model must declare its
    upload area (``file_area``) and list the ``stored_name`` column in ``file_fields``, so that
    the file goes with the row."""

    stored_name: str = "stored_name"
    original_name: str | None = "original_name"
    size: str | None = "size"
    mimetype: str | None = "mimetype"
    kind: str | None = "kind"
    #: A new record needs the file; ``False``: it may be left out, and ``null`` removes it.
    required: bool = True

    def columns(self) -> dict[str, str]:
        """Attribute of the stored file → the record's column."""
        found = {"stored_name": self.stored_name, "original_name": self.original_name, "size": self.size,
                 "mimetype": self.mimetype, "kind": self.kind}
        return {attr: column for attr, column in found.items() if column}


@dataclasses.dataclass(frozen=True)
class IncomingFile:
    """A pushed file, decoded but not stored yet."""

    name: str
    content: bytes


def decode(value: Any) -> IncomingFile | None:
    """The file of a payload value ``{"name", "content_base64"}`` (``None`` for ``null``);
    ``ValueError`` with the message for the CRM."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"name", "content_base64"} \
            or not isinstance(value["name"], str) or not isinstance(value["content_base64"], str):
        raise ValueError(_("Give the file as an object with its name and its content in base64: "
                           "{\"name\": …, \"content_base64\": …}."))
    if not clean_filename(value["name"]):
        raise ValueError(_("Give the file's name, with its extension."))
    try:
        content = base64.b64decode(value["content_base64"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(_("The file's content is not valid base64.")) from None
    return IncomingFile(value["name"], content)


class PushFiles:
    """The files one push (or one batch) stored and those it replaced: :meth:`discard` removes the
    stored ones when the push rolls back, :meth:`settle` schedules the removal of the replaced ones
    for after the commit once the push's savepoint has succeeded."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, str]] = []
        self.replaced: list[tuple[str, str]] = []

    def discard(self) -> None:
        """The write did not happen: remove the files it stored (the replaced ones stay)."""
        for name, area in self.stored:
            delete_stored(name, area)
        self.stored, self.replaced = [], []

    def settle(self, into: PushFiles | None = None) -> None:
        """The push's savepoint succeeded: remove the replaced files after the commit, and hand the
        stored ones to ``into`` (the batch's, discarded if the whole transaction rolls back)."""
        remove_after_commit(self.replaced)
        if into is not None:
            into.stored.extend(self.stored)
        self.stored, self.replaced = [], []


def _same_content(stored_name: str, area: str, content: bytes) -> bool:
    """Whether the stored file (local folder or bucket: :func:`crm_portal.storage.storage`) holds
    exactly ``content``: its size first, then its digest."""
    try:
        stored = storage().open(area, stored_name)
    except (OSError, ValueError):
        return False
    if stored is None:
        return False
    try:
        if stored.size != len(content):
            return False
        digest = hashlib.sha256()
        while chunk := stored.read(CHUNK):
            digest.update(chunk)
    except (OSError, ValueError):
        return False
    finally:
        stored.close()
    return digest.digest() == hashlib.sha256(content).digest()


def apply(model: Any, files: Mapping[str, SyncFile], row: Any, values: dict[str, Any],
          pushed: PushFiles) -> None:
    """Replace the :class:`IncomingFile` values of ``values`` (by payload key) with the columns of
    the stored file: nothing for the same name and content as ``row``'s, the name only for the same
    content, else the file stored (``pushed.stored``) and the old one noted (``pushed.replaced``).
    A file the upload rules refuse raises :class:`~crm_portal.crm_records.RecordInvalid`."""
    from ..crm_records import RecordInvalid

    area = model.file_area
    for key, spec in files.items():
        if key not in values:
            continue
        incoming: IncomingFile | None = values.pop(key)
        columns = spec.columns()
        old = row.__data__.get(spec.stored_name) if row is not None else None
        if incoming is None:
            values.update(dict.fromkeys(columns.values()))
            if old:
                pushed.replaced.append((old, area))
            continue
        if old and _same_content(old, area, incoming.content):
            if spec.original_name:
                values[spec.original_name] = clean_filename(incoming.name)
            continue
        try:
            stored = save_upload(FileStorage(stream=io.BytesIO(incoming.content), filename=incoming.name), area)
        except UploadRejected as exc:
            raise RecordInvalid({key: [exc.message]}) from exc
        pushed.stored.append((stored.stored_name, area))
        values.update({column: getattr(stored, attr) for attr, column in columns.items()})
        if old:
            pushed.replaced.append((old, area))
