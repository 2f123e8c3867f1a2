"""Where uploaded files live: the local folder (default) or S3-compatible object storage.

:mod:`crm_portal.uploads` validates a file on local disk first (size, type judged on content) and
only then hands it to the application's :class:`Storage`, which keeps it under ``<area>/<stored
name>``:

- ``STORAGE_BACKEND = "local"`` (default): ``UPLOAD_FOLDER/<area>/<name>`` (``UPLOAD_FOLDER``
  defaults to ``<instance>/uploads``). Several web nodes can share it over a network file system.
- ``STORAGE_BACKEND = "s3"``: objects ``S3_PREFIX<area>/<name>`` in ``S3_BUCKET`` (any
  S3-compatible service: AWS, MinIO, Ceph, Garage … through ``S3_ENDPOINT_URL``), with boto3
  (``pip install crm-portal[s3]``). Credentials: ``S3_ACCESS_KEY_ID``/``S3_SECRET_ACCESS_KEY`` if
  set, else boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` environment
  variables, ``~/.aws``, an instance role).

Downloads always go through the portal (:func:`crm_portal.uploads.send_stored`), so the record's
visibility check stays the only way to a file: no public or presigned object URLs.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from flask import Flask, current_app

__all__ = ["Storage", "LocalStorage", "S3Storage", "storage", "make_storage", "StoredObject"]

EXTENSION_KEY = "crm_portal_storage"
CHUNK = 64 * 1024
_MAKING = threading.Lock()


class StoredObject(Protocol):
    """What :meth:`Storage.open` answers: a readable binary stream with its size."""

    size: int
    etag: str | None

    def read(self, n: int = -1) -> bytes: ...

    def close(self) -> None: ...


class Storage(Protocol):
    """A place for stored files, addressed by ``(area, name)``; names come from
    :func:`crm_portal.uploads.save_upload` (checked there), areas are short lowercase words."""

    def scratch_dir(self, area: str) -> Path:
        """A local folder for a file being received and checked before :meth:`put_file`."""

    def put_file(self, path: Path, area: str, name: str) -> None:
        """Move the local file ``path`` (in :meth:`scratch_dir`) to ``area/name``; ``path`` is gone after."""

    def save(self, stream: IO[bytes], area: str, name: str) -> None:
        """Write ``stream``'s bytes to ``area/name``."""

    def open(self, area: str, name: str) -> StoredObject | None:
        """The stored file for reading (``None``: there is none); the caller closes it."""

    def exists(self, area: str, name: str) -> bool:
        """Whether ``area/name`` is stored."""

    def delete(self, area: str, name: str) -> None:
        """Remove ``area/name`` (a missing file is not an error)."""


class _LocalObject:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
        self.size = os.fstat(self._fh.fileno()).st_size
        self.etag: str | None = None

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def close(self) -> None:
        self._fh.close()


class LocalStorage:
    """Files in ``base/<area>/<name>`` (the portal's behaviour before storage backends existed)."""

    def __init__(self, base: str | os.PathLike[str]) -> None:
        self.base = Path(base)

    def folder(self, area: str) -> Path:
        folder = self.base / area
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def path(self, area: str, name: str) -> Path:
        return self.folder(area) / name

    def scratch_dir(self, area: str) -> Path:
        # The area's own folder: the final rename is atomic and never crosses file systems.
        return self.folder(area)

    def put_file(self, path: Path, area: str, name: str) -> None:
        os.replace(path, self.path(area, name))

    def save(self, stream: IO[bytes], area: str, name: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=self.folder(area))
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, CHUNK)
            self.put_file(Path(tmp), area, name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def open(self, area: str, name: str) -> _LocalObject | None:
        try:
            return _LocalObject(self.path(area, name))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def exists(self, area: str, name: str) -> bool:
        return self.path(area, name).is_file()

    def delete(self, area: str, name: str) -> None:
        self.path(area, name).unlink(missing_ok=True)


class _S3Object:
    def __init__(self, answer: dict[str, Any]) -> None:
        self._body = answer["Body"]
        self.size = int(answer["ContentLength"])
        self.etag: str | None = (answer.get("ETag") or "").strip('"') or None

    def read(self, n: int = -1) -> bytes:
        return self._body.read(None if n is None or n < 0 else n)

    def close(self) -> None:
        self._body.close()


class S3Storage:
    """Objects ``<prefix><area>/<name>`` in one bucket of an S3-compatible service."""

    def __init__(self, bucket: str, *, prefix: str = "", client: Any = None, **client_options: Any) -> None:
        if not bucket:
            raise ValueError("S3 storage needs S3_BUCKET")
        if client is None:
            import boto3  # optional dependency: the "s3" extra

            # A session of its own: boto3's default session is not safe to make clients from in
            # several threads at once. The client itself is thread-safe and shared.
            options = {k: v for k, v in client_options.items() if v}
            client = boto3.session.Session().client("s3", **options)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def key(self, area: str, name: str) -> str:
        return f"{self.prefix}{area}/{name}"

    def scratch_dir(self, area: str) -> Path:
        return Path(tempfile.gettempdir())

    def put_file(self, path: Path, area: str, name: str) -> None:
        try:
            with open(path, "rb") as fh:
                self.client.upload_fileobj(fh, self.bucket, self.key(area, name))
        finally:
            path.unlink(missing_ok=True)

    def save(self, stream: IO[bytes], area: str, name: str) -> None:
        self.client.upload_fileobj(stream, self.bucket, self.key(area, name))

    def _missing(self, exc: Exception) -> bool:
        error = getattr(exc, "response", {}).get("Error", {})
        return str(error.get("Code")) in ("404", "NoSuchKey", "NotFound")

    def open(self, area: str, name: str) -> _S3Object | None:
        from botocore.exceptions import ClientError

        try:
            return _S3Object(self.client.get_object(Bucket=self.bucket, Key=self.key(area, name)))
        except ClientError as exc:
            if self._missing(exc):
                return None
            raise

    def exists(self, area: str, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(area, name))
        except ClientError as exc:
            if self._missing(exc):
                return False
            raise
        return True

    def delete(self, area: str, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(area, name))  # idempotent in S3


def make_storage(app: Flask) -> Storage:
    """The storage ``app``'s configuration describes (``STORAGE_BACKEND``)."""
    config = app.config
    backend = (config.get("STORAGE_BACKEND") or "local").lower()
    if backend == "local":
        return LocalStorage(config.get("UPLOAD_FOLDER") or os.path.join(app.instance_path, "uploads"))
    if backend == "s3":
        return S3Storage(config.get("S3_BUCKET") or "", prefix=config.get("S3_PREFIX") or "",
                         endpoint_url=config.get("S3_ENDPOINT_URL"), region_name=config.get("S3_REGION"),
                         aws_access_key_id=config.get("S3_ACCESS_KEY_ID"),
                         aws_secret_access_key=config.get("S3_SECRET_ACCESS_KEY"))
    raise ValueError(f"STORAGE_BACKEND {backend!r}: use \"local\" or \"s3\"")


def storage() -> Storage:
    """The current application's storage (made on first use, then shared by its threads)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    signature = _signature(app)
    found = app.extensions.get(EXTENSION_KEY)
    if found is None or found[0] != signature:
        # Made once per application (tests change UPLOAD_FOLDER or the backend on a live one: followed).
        with _MAKING:
            found = app.extensions.get(EXTENSION_KEY)
            if found is None or found[0] != signature:
                found = app.extensions[EXTENSION_KEY] = (signature, make_storage(app))
    return found[1]


def _signature(app: Flask) -> tuple[Any, ...]:
    c = app.config
    return (c.get("STORAGE_BACKEND"), c.get("UPLOAD_FOLDER"), app.instance_path, c.get("S3_BUCKET"),
            c.get("S3_PREFIX"), c.get("S3_ENDPOINT_URL"), c.get("S3_REGION"), c.get("S3_ACCESS_KEY_ID"))


def iter_chunks(obj: StoredObject) -> Iterator[bytes]:
    """``obj``'s bytes in chunks, closing it at the end (a streamed download)."""
    try:
        while chunk := obj.read(CHUNK):
            yield chunk
    finally:
        obj.close()
