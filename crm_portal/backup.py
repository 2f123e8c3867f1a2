"""Backups of an instance in one archive, and their restore into an empty instance.

``crm-portal backup`` writes a ``.tar.gz`` holding, in this order:

1. ``database/portal.sqlite3`` (SQLite's online backup API: a consistent copy while the portal
   keeps writing) or ``database/portal.pgdump`` (``pg_dump`` custom format, in a snapshot the
   backup exports and keeps open while it also reads the schema steps and the files' rows);
2. ``files/<area>/<name>``: every file the storage backend holds, listed and read through it
   *after* the database is dumped. A row committed before the dump therefore finds its file in the
   archive; a file uploaded after the dump is an unreferenced extra, harmless. (Files first would
   lose the files of rows committed between the two steps.)
3. ``instance/config.toml`` and ``instance/secret_key``: the archive holds secrets;
4. ``manifest.json``: portal version, schema steps, database kind, creation time, and the size and
   SHA-256 of every other member.

It is written under a temporary name in the target folder, flushed to disk and only then renamed:
an interrupted backup never leaves a half archive under a final name.

``crm-portal restore`` reads the archive twice: first it checks every member (regular files with
names of the layout above only, each with the size and checksum of the manifest, the gzip stream
whole); then, and only if all is well and the target instance is empty (no tables, no stored
files), it writes the database, the files and the instance files. The target's own database,
storage and queue settings win over the archived config.toml: a restore drill on a scratch
instance never points at the production database or bucket. SQLite archives restore into SQLite
instances and PostgreSQL archives into PostgreSQL ones; across kinds is refused.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import tomllib
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from flask import Flask

from . import __version__
from .config import SECRET_FILE
from .db import db, is_postgres
from .storage import LocalStorage, S3Storage, Storage, storage
from .uploads import AREA_RE, STORED_RE

__all__ = ["BackupError", "BackupResult", "RestoreResult", "create_backup", "restore_backup", "prune_backups",
           "default_output", "ARCHIVE_GLOB"]

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/portal.sqlite3"
PG_MEMBER = "database/portal.pgdump"
CONFIG_MEMBER = "instance/config.toml"
SECRET_MEMBER = "instance/secret_key"
FIXED_MEMBERS = {SQLITE_MEMBER, PG_MEMBER, CONFIG_MEMBER, SECRET_MEMBER}
ARCHIVE_PREFIX = "crm-portal-"
ARCHIVE_GLOB = f"{ARCHIVE_PREFIX}*.tar.gz"
CHUNK = 1024 * 1024
#: Settings that say where *this* instance keeps its data: on restore the target's own values win
#: over the archived config.toml's.
LOCAL_SETTINGS = ("DATABASE_URL", "STORAGE_BACKEND", "UPLOAD_FOLDER", "S3_BUCKET", "S3_PREFIX", "S3_ENDPOINT_URL",
                  "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "HUEY_URL", "REDIS_URL", "HUEY_NAME")


class BackupError(Exception):
    """A backup or restore refused or failed, with a message for the operator."""


@dataclasses.dataclass
class BackupResult:
    path: Path
    size: int
    seconds: float
    files: int
    missing: list[str]  #: files referenced by the dumped rows that the storage no longer had


@dataclasses.dataclass
class RestoreResult:
    kind: str
    files: int
    pending: list[str]  #: schema steps the restored database still needs (``crm-portal migrate``)


# --- archive members -----------------------------------------------------------------------------

class _HashingReader:
    """Reads ``size`` bytes from ``stream`` for tarfile while hashing them."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.sha256.update(data)
        return data


class _PlainReader:
    """Only ``read`` of ``stream``: consumers that would seek (S3 uploads) read it in order."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.read = stream.read


class _ArchiveWriter:
    """Adds members to a tar stream and records their size and checksum for the manifest."""

    def __init__(self, tar: tarfile.TarFile, created: float) -> None:
        self.tar = tar
        self.created = created
        self.members: list[dict[str, Any]] = []

    def add_stream(self, name: str, stream: Any, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, int(self.created), 0o600
        reader = _HashingReader(stream)
        self.tar.addfile(info, reader)  # raises when the stream ends early
        self.members.append({"name": name, "size": size, "sha256": reader.sha256.hexdigest()})

    def add_file(self, name: str, path: Path) -> None:
        with open(path, "rb") as fh:
            self.add_stream(name, fh, os.fstat(fh.fileno()).st_size)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_stream(name, io.BytesIO(data), len(data))


# --- the database ----------------------------------------------------------------------------------

def _file_columns(app: Flask) -> list[tuple[str, list[str], str]]:
    """(table, columns, area) of every model declaring stored files (``file_area``/``file_fields``)."""
    from .models import CORE_MODELS

    models = [*CORE_MODELS, *(m for module in app.extensions["crm_portal"].modules.values() for m in module.models)]
    out = []
    for model in models:
        area = getattr(model, "file_area", None)
        fields = tuple(getattr(model, "file_fields", ()) or ())
        if area and fields:
            out.append((model._meta.table_name, [getattr(model, f).column_name for f in fields], area))
    return out


@dataclasses.dataclass
class _Dumped:
    kind: str
    steps: list[str]
    references: set[tuple[str, str]]  # (area, stored name) the dumped rows refer to
    server_version: str | None = None


def _read_snapshot(cursor: Any, tables: set[str], app: Flask) -> tuple[list[str], set[tuple[str, str]]]:
    """Schema steps and referenced files, read in the dump's snapshot through a DB-API cursor."""
    steps: list[str] = []
    if "core_migration_history" in tables:
        cursor.execute('SELECT module, name FROM core_migration_history ORDER BY id')
        steps = [f"{module}/{name}" for module, name in cursor.fetchall()]
    references: set[tuple[str, str]] = set()
    for table, columns, area in _file_columns(app):
        if table not in tables:
            continue
        quoted = ", ".join(f'"{column}"' for column in columns)
        cursor.execute(f'SELECT {quoted} FROM "{table}"')
        references.update((area, name) for row in cursor.fetchall() for name in row if name)
    return steps, references


def _dump_sqlite(app: Flask, writer: _ArchiveWriter, workdir: Path) -> _Dumped:
    source = Path(db.obj.database)
    copy = workdir / "portal.sqlite3"
    # One step (pages=-1): a single read transaction copies a consistent state; in WAL mode the
    # portal's writers go on meanwhile.
    with closing(sqlite3.connect(source, timeout=30)) as src, \
            closing(sqlite3.connect(copy)) as target:
        src.backup(target, pages=-1)
    with closing(sqlite3.connect(copy)) as snapshot:
        cursor = snapshot.cursor()
        tables = {r[0] for r in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        steps, references = _read_snapshot(cursor, tables, app)
    writer.add_file(SQLITE_MEMBER, copy)
    copy.unlink()  # in the archive now: its disk space is free for the files
    return _Dumped("sqlite", steps, references)


def _pg_params(database: Any) -> tuple[list[str], dict[str, str]]:
    """libpq arguments and environment for the peewee PostgreSQL ``database`` (the password in
    PGPASSWORD, never on a command line)."""
    params = dict(database.connect_params)
    args = ["--dbname", database.database]
    for key, flag in (("host", "--host"), ("port", "--port"), ("user", "--username")):
        if params.get(key):
            args += [flag, str(params[key])]
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = str(params["password"])
    return args, env


def find_pg_tool(name: str, server_major: int) -> str:
    """``pg_dump``/``pg_restore``/``psql`` of the server's major version (or a newer one), from
    /usr/lib/postgresql/<major>/bin or the PATH; :class:`BackupError` when none fits."""
    candidates = [f"/usr/lib/postgresql/{server_major}/bin/{name}"]
    candidates += sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if found := shutil.which(name):
        candidates.append(found)
    for path in candidates:
        if not os.access(path, os.X_OK):
            continue
        answer = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"(\d+)(?:\.\d+)?", answer)
        if match and int(match.group(1)) >= server_major:
            return path
    raise BackupError(f"{name} for PostgreSQL {server_major} not found (on PATH or in /usr/lib/postgresql/*/bin): "
                      f"install the client tools of that version (Debian/Ubuntu: apt-get install "
                      f"postgresql-client-{server_major}).")


def _dump_postgres(app: Flask, writer: _ArchiveWriter, workdir: Path) -> _Dumped:
    import psycopg2

    database = db.obj
    args, env = _pg_params(database)
    dump = workdir / "portal.pgdump"
    with closing(psycopg2.connect(database=database.database, **database.connect_params)) as connection:
        # One REPEATABLE READ transaction from its first statement: its snapshot is the one pg_dump
        # imports, and what we read besides (schema steps, files' rows) is the same state.
        connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version'), "
                           "current_setting('server_version_num')::int / 10000")
            snapshot, version, major = cursor.fetchone()
            pg_dump = find_pg_tool("pg_dump", major)
            done = subprocess.run([pg_dump, *args, "--format=custom", "--compress=0", "--no-owner",
                                   "--no-privileges", f"--snapshot={snapshot}", f"--file={dump}"],
                                  env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            tables = {r[0] for r in cursor.fetchall()}
            steps, references = _read_snapshot(cursor, tables, app)
        connection.rollback()
    writer.add_file(PG_MEMBER, dump)
    dump.unlink()
    return _Dumped("postgresql", steps, references, server_version=version)


def dump_database(app: Flask, writer: _ArchiveWriter, workdir: Path) -> _Dumped:
    """Step 1 of a backup: the database, consistent, into the archive."""
    return (_dump_postgres if is_postgres() else _dump_sqlite)(app, writer, workdir)


# --- the files ---------------------------------------------------------------------------------------

def stored_files(store: Storage) -> Iterator[tuple[str, str]]:
    """Every ``(area, name)`` the storage holds (names :func:`crm_portal.uploads.save_upload` makes;
    files still being received, ``.upload-*``, are not listed)."""
    if isinstance(store, LocalStorage):
        if not store.base.is_dir():
            return
        for area in sorted(store.base.iterdir()):
            if area.is_dir() and AREA_RE.match(area.name):
                for entry in sorted(area.iterdir()):
                    if STORED_RE.match(entry.name) and entry.is_file():
                        yield area.name, entry.name
    elif isinstance(store, S3Storage):
        pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=store.prefix)
        for page in pages:
            for item in page.get("Contents", ()):
                area, _, name = item["Key"][len(store.prefix):].partition("/")
                if AREA_RE.match(area) and STORED_RE.match(name):
                    yield area, name
    else:
        raise BackupError(f"cannot list the files of a {type(store).__name__}")


def copy_files(store: Storage, writer: _ArchiveWriter) -> int:
    """Step 2 of a backup: every stored file into the archive, read through the storage backend."""
    count = 0
    for area, name in stored_files(store):
        obj = store.open(area, name)
        if obj is None:  # deleted since it was listed: its row was deleted too
            continue
        try:
            writer.add_stream(f"files/{area}/{name}", obj, obj.size)
        finally:
            obj.close()
        count += 1
    return count


# --- backup ------------------------------------------------------------------------------------------

def archive_in(folder: Path, now: dt.datetime) -> Path:
    """``<folder>/crm-portal-<UTC timestamp>.tar.gz``, with ``-2``, ``-3`` … after the time when a
    backup of the same second is already there: a backup never replaces another."""
    stem = f"{ARCHIVE_PREFIX}{now:%Y%m%dT%H%M%SZ}"
    path, n = folder / f"{stem}.tar.gz", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.tar.gz"
    return path


def default_output(app: Flask, now: dt.datetime) -> Path:
    """A new archive name in ``<instance>/backups/`` (:func:`archive_in`)."""
    return archive_in(Path(app.instance_path) / "backups", now)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A file that appears under ``path`` only once it is complete and on disk (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_backup(app: Flask, output: Path | None = None) -> BackupResult:
    """Write the instance's archive (see the module's docstring) to ``output`` (a file, or a folder
    for the default name; default: ``<instance>/backups/``). Call inside an application context."""
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    if output is None:
        output = default_output(app, now)
    elif output.is_dir():
        output = archive_in(output, now)
    instance = Path(app.instance_path)
    store = storage()
    with _atomic_output(output) as out, tempfile.TemporaryDirectory(dir=output.parent, prefix=".backup-") as work:
        with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as tar:
            writer = _ArchiveWriter(tar, now.timestamp())
            dumped = dump_database(app, writer, Path(work))  # first the rows …
            files = copy_files(store, writer)  # … then the files: all those of the rows are there
            archived = {tuple(m["name"].split("/")[1:]) for m in writer.members if m["name"].startswith("files/")}
            missing = sorted(f"{area}/{name}" for area, name in dumped.references if (area, name) not in archived)
            config_file = instance / "config.toml"
            if config_file.is_file():
                writer.add_file(CONFIG_MEMBER, config_file)
            writer.add_bytes(SECRET_MEMBER, str(app.config["SECRET_KEY"]).encode() + b"\n")
            manifest = {"format": FORMAT, "portal_version": __version__,
                        "created_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
                        "database": {"kind": dumped.kind, "server_version": dumped.server_version},
                        "schema_steps": dumped.steps, "files": files, "missing_files": missing,
                        "members": writer.members}
            info = tarfile.TarInfo(MANIFEST)
            data = json.dumps(manifest, indent=1).encode()
            info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o600
            tar.addfile(info, io.BytesIO(data))
    return BackupResult(output, output.stat().st_size, time.monotonic() - started, files, missing)


def prune_backups(folder: Path, keep: int, *, protect: Path) -> list[Path]:
    """Delete all but the newest ``keep`` archives named ``crm-portal-*.tar.gz`` in ``folder``
    (their names sort by time); ``protect`` (the one just written) always stays."""
    archives = sorted(folder.glob(ARCHIVE_GLOB), key=lambda p: p.name, reverse=True)
    removed = []
    for old in archives[keep:]:
        if old.resolve() != protect.resolve():
            old.unlink()
            removed.append(old)
    return removed


# --- restore: checking the archive ------------------------------------------------------------------

def _member_error(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` may not be restored, or None: regular files only, relative names without
    ``..``, in the archive's own layout (so nothing can land outside its place)."""
    name = member.name
    path = PurePosixPath(name)
    if not member.isreg():
        return f"{name!r} is not a regular file"
    if path.is_absolute() or ".." in path.parts or "\\" in name or str(path) != name:
        return f"{name!r} is not a plain relative name"
    if name == MANIFEST or name in FIXED_MEMBERS:
        return None
    parts = path.parts
    if len(parts) == 3 and parts[0] == "files" and AREA_RE.match(parts[1]) and STORED_RE.match(parts[2]):
        return None
    return f"{name!r} is not a member a backup writes"


def verify_archive(path: Path) -> dict[str, Any]:
    """The manifest of the archive at ``path`` once every member is checked (regular, well named,
    listed in the manifest with its size and SHA-256, none missing, the gzip stream whole);
    :class:`BackupError` otherwise. Writes nothing."""
    seen: dict[str, tuple[int, str]] = {}
    manifest_data: bytes | None = None
    try:
        with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member in tar:
                if error := _member_error(member):
                    raise BackupError(f"refused: {error}; nothing was restored.")
                if member.name in seen:
                    raise BackupError(f"refused: {member.name!r} is in the archive twice; nothing was restored.")
                stream = _open_member(tar, member)
                digest, size = hashlib.sha256(), 0
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    if member.name == MANIFEST:
                        manifest_data = (manifest_data or b"") + chunk
                seen[member.name] = (size, digest.hexdigest())
            assert tar.fileobj is not None
            while tar.fileobj.read(CHUNK):  # to the gzip trailer: its CRC and length are checked
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BackupError(f"refused: {path} is damaged or not a backup ({exc}); nothing was restored.") from exc
    if manifest_data is None:
        raise BackupError(f"refused: {path} has no {MANIFEST}; nothing was restored.")
    try:
        manifest = json.loads(manifest_data)
        listed = {m["name"]: (int(m["size"]), str(m["sha256"])) for m in manifest["members"]}
        kind = manifest["database"]["kind"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"refused: the manifest of {path} is unreadable ({exc}); nothing was restored.") from exc
    seen.pop(MANIFEST)
    for name in sorted(set(listed) | set(seen)):
        if name not in seen:
            raise BackupError(f"refused: {name!r} is missing from the archive; nothing was restored.")
        if name not in listed:
            raise BackupError(f"refused: {name!r} is not in the manifest; nothing was restored.")
        if seen[name] != listed[name]:
            raise BackupError(f"refused: {name!r} does not match its checksum; nothing was restored.")
    expected = SQLITE_MEMBER if kind == "sqlite" else PG_MEMBER if kind == "postgresql" else None
    if expected is None or expected not in seen:
        raise BackupError(f"refused: the archive's database ({kind!r}) is missing; nothing was restored.")
    return manifest


# --- restore: the target ------------------------------------------------------------------------------

def _sqlite_path() -> Path:
    return Path(db.obj.database)


def _database_tables() -> list[str]:
    """The target database's tables (a SQLite file that does not exist yet has none, and is not
    created by looking)."""
    if not is_postgres() and not _sqlite_path().exists():
        return []
    with db.connection_context():
        return list(db.obj.get_tables())


def check_empty_target() -> None:
    """:class:`BackupError` unless the target instance has no tables and no stored files."""
    tables = _database_tables()
    if tables:
        raise BackupError(f"refused: the target database already has {len(tables)} tables ({', '.join(tables[:3])} …): "
                          "restore only into an empty instance (a new database and no uploads). Nothing was changed.")
    for area, name in stored_files(storage()):
        raise BackupError(f"refused: the target instance already has uploaded files ({area}/{name} …): restore only "
                          "into an empty instance. Nothing was changed.")


def _open_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    stream = tar.extractfile(member)
    if stream is None:  # verify_archive let regular files only through
        raise BackupError(f"{member.name!r} is not a regular file")
    return stream


def _restore_sqlite(tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    from .db import close_all

    target = _sqlite_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    close_all()  # no pooled connection may stay on the file being replaced
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(_open_member(tar, member), out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _restore_postgres(tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    database = db.obj
    with db.connection_context():
        major = int(db.execute_sql("SHOW server_version_num").fetchone()[0]) // 10000
    pg_restore = find_pg_tool("pg_restore", major)
    args, env = _pg_params(database)
    with tempfile.TemporaryDirectory(prefix="crm-portal-restore-") as work:
        dump = Path(work) / "portal.pgdump"
        with open(dump, "wb") as out:
            shutil.copyfileobj(_open_member(tar, member), out, CHUNK)
        # The schema itself exists in the target already: restore what is in it.
        listing = subprocess.run([pg_restore, "--list", str(dump)], capture_output=True, text=True, check=True).stdout
        wanted = "\n".join(line for line in listing.splitlines() if not re.search(r"\bSCHEMA - ", line))
        (Path(work) / "toc.list").write_text(wanted + "\n")
        done = subprocess.run([pg_restore, *args, "--no-owner", "--no-privileges", "--single-transaction",
                               "--exit-on-error", f"--use-list={Path(work) / 'toc.list'}", str(dump)],
                              env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed, nothing of the database was restored: {done.stderr.strip()}")


def _merged_config(archived: str, target_file: Path) -> str:
    """The archived config.toml with the target's own :data:`LOCAL_SETTINGS` (those of its current
    config.toml; left out when it has none, so its defaults and environment apply)."""
    own = tomllib.loads(target_file.read_text(encoding="utf-8")) if target_file.is_file() else {}
    lines = archived.splitlines()
    top_end = next((i for i, t in enumerate(lines) if t.lstrip().startswith("[")), len(lines))
    pattern = re.compile(rf"^\s*({'|'.join(LOCAL_SETTINGS)})\s*=")
    kept = [line for i, line in enumerate(lines) if i >= top_end or not pattern.match(line)]
    header = ["# Restored from a backup; this instance's own settings of where its data lives:"]
    header += [f"{key} = {json.dumps(own[key])}" for key in LOCAL_SETTINGS if key in own]
    text = "\n".join(header + kept) + "\n"
    tomllib.loads(text)  # never write a file the next start cannot read
    return text


def _write_instance_file(path: Path, data: bytes, mode: int) -> None:
    if path.exists():
        os.replace(path, path.with_name(path.name + ".before-restore"))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        os.fsync(out.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def restore_backup(app: Flask, archive: Path, *, echo: Callable[[str], None] = print) -> RestoreResult:
    """Restore ``archive`` into the (empty) instance of ``app``; call inside an application
    context. Refused with :class:`BackupError`, nothing written, when the archive is damaged or
    of another database kind, or the instance is not empty."""
    from .migrations import pending

    manifest = verify_archive(archive)
    kind = manifest["database"]["kind"]
    target_kind = "postgresql" if is_postgres() else "sqlite"
    if kind != target_kind:
        raise BackupError(f"refused: the archive holds a {kind} database and this instance's DATABASE_URL names "
                          f"{target_kind}; restoring across kinds is not supported: restore into an instance of the "
                          "same kind. Nothing was changed.")
    check_empty_target()
    echo(f"archive checked: {len(manifest['members'])} members, made {manifest['created_at']} by "
         f"crm-portal {manifest['portal_version']}")
    try:
        files = _write_members(app, archive, echo)
    except BackupError:
        raise
    except Exception as exc:
        raise BackupError(f"restore failed part way ({type(exc).__name__}: {exc}): the instance is partly "
                          "restored; empty it (a new database, no uploads) before restoring again.") from exc
    echo(f"{files} files restored")
    with db.connection_context():
        steps = [f"{owner}/{name}" for owner, name in pending(app.extensions["crm_portal"])]
    return RestoreResult(kind, files, steps)


def _write_members(app: Flask, archive: Path, echo: Callable[[str], None]) -> int:
    """Write the members of a checked archive to the instance of ``app``; returns the files' count."""
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    store = storage()
    files = 0
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        for member in tar:  # the same members verify_archive checked, in the backup's order
            if member.name == SQLITE_MEMBER:
                _restore_sqlite(tar, member)
                echo("database restored (SQLite)")
            elif member.name == PG_MEMBER:
                _restore_postgres(tar, member)
                echo("database restored (PostgreSQL)")
            elif member.name.startswith("files/"):
                _, area, name = member.name.split("/")
                # Offered as a plain stream: a streamed tar member cannot seek, and S3 uploads ask.
                store.save(_PlainReader(_open_member(tar, member)), area, name)  # type: ignore[arg-type]
                files += 1
            elif member.name == CONFIG_MEMBER:
                text = _open_member(tar, member).read().decode("utf-8")
                config = instance / "config.toml"
                _write_instance_file(config, _merged_config(text, config).encode(), 0o600)
                echo(f"config.toml restored (this instance's {', '.join(LOCAL_SETTINGS[:2])} … kept)")
            elif member.name == SECRET_MEMBER:
                _write_instance_file(instance / SECRET_FILE, _open_member(tar, member).read(), 0o600)
                echo("secret key restored")
    return files
