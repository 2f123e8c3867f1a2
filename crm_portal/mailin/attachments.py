"""Step 6: the attached files, through the portal's upload rules (size, type checked on content).
Small inline images (signature logos) are skipped; a refused file is named, not fatal."""
from __future__ import annotations

import io
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from flask import current_app
from werkzeug.datastructures import FileStorage

from ..uploads import StoredFile, UploadRejected, delete_stored, save_upload

#: More attachments than this in one message are not stored (the rest are named as skipped).
MAX_FILES = 20


def _is_file(part: Any) -> bool:
    if part.is_multipart():
        return False
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment":
        return True
    return part.get_content_maintype() in ("image", "application") and bool(part.get_filename() or disposition)


def store_attachments(message: EmailMessage, area: str,
                      saver: Callable[[Any, str], StoredFile] = save_upload) -> tuple[list[StoredFile], list[str]]:
    """Store the message's files under ``area``: the files stored and a line per file skipped or
    refused (with the reason, for staff)."""
    stored: list[StoredFile] = []
    skipped: list[str] = []
    minimum = int(current_app.config["MAILIN_INLINE_MIN_BYTES"])
    for part in message.walk():
        if not _is_file(part):
            continue
        try:
            name = part.get_filename() or ""
        except Exception:  # noqa: BLE001 - a broken filename parameter
            name = ""
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        inline = (part.get_content_disposition() or "").lower() != "attachment"
        if inline and part.get_content_maintype() == "image" and len(data) < minimum:
            continue  # a logo in a signature
        if not name:
            name = f"attachment.{part.get_content_subtype()}"
        if len(stored) >= MAX_FILES:
            skipped.append(f"{name}: more than {MAX_FILES} files")
            continue
        try:
            stored.append(saver(FileStorage(stream=io.BytesIO(data), filename=name), area))
        except UploadRejected as exc:
            skipped.append(f"{name}: {exc.message}")
    return stored, skipped


def discard(stored: list[StoredFile], area: str) -> None:
    """Remove files stored for a write that did not happen."""
    for item in stored:
        try:
            delete_stored(item.stored_name, area)
        except (OSError, ValueError):
            current_app.logger.warning("mailin: could not remove %s", item.stored_name)
