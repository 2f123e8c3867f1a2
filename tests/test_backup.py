"""``crm-portal backup`` and ``crm-portal restore`` (crm_portal/backup.py), on SQLite and, with
``CRM_PORTAL_TEST_DATABASE_URL``, on PostgreSQL (restored into a second database beside it).

The commands run as an operator runs them: the ``crm-portal`` executable in a child process, on an
instance folder with its own config.toml. The restore drill takes a backup while tickets with
attachments are being opened from other threads and checks, in a fresh instance, every ticket
acknowledged before the backup began, every file by checksum, and the logins.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import PG_URL, CsrfClient, login, make_app, staff_login
from s3_server import s3, s3_endpoint  # noqa: F401  (fixtures)

from crm_portal import backup, create_app
from crm_portal.db import close_all, db
from crm_portal.modules.documents.models import Document
from crm_portal.modules.tickets.models import Ticket, TicketAttachment
from crm_portal.storage import storage
from crm_portal.testing.database import load_demo

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
CRM_PORTAL = str(Path(sys.executable).parent / "crm-portal")
SECRET = "backup-test-secret"


# --- instances ---------------------------------------------------------------------------------

def _restore_database_url() -> str | None:
    """The PostgreSQL database restores go to (``<test db>_restore``, emptied), None on SQLite."""
    if not PG_URL:
        return None
    import psycopg2

    parts = urlsplit(PG_URL)
    name = parts.path.strip("/") + "_restore"
    admin = psycopg2.connect(PG_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    url = urlunsplit(parts._replace(path=f"/{name}"))
    target = psycopg2.connect(url)
    target.autocommit = True
    with target.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    target.close()
    return url


def _config(database_url: str | None) -> str:
    lines = ['HUEY_URL = "memory://"']  # no queue file appears in the instance folder
    if database_url:
        lines.insert(0, f'DATABASE_URL = "{database_url}"')
    return "\n".join(lines) + "\n"


def source_instance(tmp_path: Path):
    """The demo portal in ``tmp_path/src``, with a config.toml and secret key of its own."""
    close_all()
    app = make_app(tmp_path / "src", SECRET_KEY=SECRET)
    load_demo(app)
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    (instance / "config.toml").write_text(_config(app.config["DATABASE_URL"]), encoding="utf-8")
    (instance / "secret_key").write_text(SECRET)
    return app


def target_instance(tmp_path: Path) -> Path:
    """A new empty instance folder: its config.toml names the (emptied) restore database on
    PostgreSQL, none on SQLite (the default file in the folder)."""
    instance = Path(tempfile.mkdtemp(prefix="target-", dir=tmp_path)) / "instance"
    instance.mkdir()
    (instance / "config.toml").write_text(_config(_restore_database_url()), encoding="utf-8")
    return instance


def crm_portal(instance: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``crm-portal ARGS`` on ``instance`` in a child process, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_PORTAL_")}
    env["CRM_PORTAL_INSTANCE_PATH"] = str(instance)
    return subprocess.run([CRM_PORTAL, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def restored_app(instance: Path):
    """An application on a restored instance (its own config.toml, secret key and database)."""
    close_all()
    app = create_app({"INSTANCE_PATH": str(instance), "TESTING": True, "SERVER_NAME": "portal.test",
                      "BABEL_DEFAULT_LOCALE": "en"})
    app.test_client_class = CsrfClient
    return app


def state_of(instance: Path) -> dict[str, str]:
    """Every file under ``instance`` (and the restore database's tables) with its checksum; SQLite's
    shared-memory index and an empty write-ahead log, which merely opening the database makes, aside."""
    found = {str(p.relative_to(instance)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(instance.rglob("*"))
             if p.is_file() and not p.name.endswith("-shm") and not (p.name.endswith("-wal") and not p.stat().st_size)}
    if PG_URL:
        import psycopg2

        connection = psycopg2.connect(_restore_url_only())
        with connection.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            found["tables"] = repr(sorted(r[0] for r in cursor.fetchall()))
        connection.close()
    return found


def _restore_url_only() -> str:
    assert PG_URL
    parts = urlsplit(PG_URL)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_restore"))


# --- tickets with attachments -----------------------------------------------------------------------

def ticket_form_url(client) -> str:
    """The new-ticket form's URL (through the services wizard when that module is there)."""
    url = "/tickets/new"
    for _ in range(3):
        page = client.get(url)
        assert page.status_code == 200
        if 'data-testid="ticket-form"' in page.text:
            return url
        url = re.findall(r'href="(/tickets/new\?[^"]+)"', page.text)[0].replace("&amp;", "&")
    raise AssertionError("no ticket form")


def open_ticket(client, url: str, title: str) -> str:
    """Open a ticket with one text attachment; returns the attachment's SHA-256 once acknowledged."""
    content = f"attachment of {title}\n{os.urandom(16).hex()}\n".encode()
    data = {"title": title, "description": "Written while a backup runs.", "type": "problem", "category": "1",
            "priority": "urgent", "severity": "blocking", "attachments": [(io.BytesIO(content), f"{title}.txt")]}
    response = client.post(url, data=data, content_type="multipart/form-data")
    assert response.status_code == 302, response.text[:500]
    return hashlib.sha256(content).hexdigest()


class Writers:
    """Threads opening tickets with attachments until stopped; each write records the time it was
    acknowledged (the 302 received)."""

    def __init__(self, app, emails: tuple[str, ...] = ("anna@acme.example", "bruno@acme.example")) -> None:
        self.app = app
        self.acknowledged: list[tuple[float, str, str, str]] = []  # (time, email, title, sha256)
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(email, i)) for i, email in enumerate(emails)]

    def _run(self, email: str, index: int) -> None:
        try:
            client = self.app.test_client()
            login(client, email)
            url = ticket_form_url(client)
            for n in range(2000):
                if self.stop.is_set():
                    return
                title = f"Backup write {index}-{n}"
                digest = open_ticket(client, url, title)
                self.acknowledged.append((time.time(), email, title, digest))
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while len(self.acknowledged) < count and not self.errors and time.time() < deadline:
            time.sleep(0.05)
        assert not self.errors, self.errors
        assert len(self.acknowledged) >= count


def stored_sha256(area: str, name: str) -> str | None:
    obj = storage().open(area, name)
    if obj is None:
        return None
    try:
        return hashlib.sha256(obj.read()).hexdigest()
    finally:
        obj.close()


def dangling_files() -> list[str]:
    """Files referenced by rows of the current database but absent from its storage."""
    rows = [("tickets", a.stored_name) for a in TicketAttachment.select()]
    rows += [("documents", d.stored_name) for d in Document.select()]
    return [f"{area}/{name}" for area, name in rows if not storage().exists(area, name)]


# --- the restore drill ------------------------------------------------------------------------------

def test_backup_during_writes_restores_every_acknowledged_write_with_its_files_and_logins(tmp_path):
    app = source_instance(tmp_path)
    archive = tmp_path / "archive.tar.gz"
    with Writers(app) as writers:
        writers.wait_for(4)
        began = time.time()
        done = crm_portal(Path(app.instance_path), "backup", "--output", str(archive))
        ended = time.time()
        writers.wait_for(len(writers.acknowledged) + 2)  # writes went on after the backup too
    assert done.returncode == 0, done.stderr
    assert str(archive) in done.stdout and "secret key" in done.stdout and " s;" in done.stdout
    assert not writers.errors, writers.errors
    before = [w for w in writers.acknowledged if w[0] < began]
    during = [w for w in writers.acknowledged if began <= w[0] < ended]
    assert before and during, "the writes did not go on while the backup ran"
    assert not list(archive.parent.glob(".*partial")), "a temporary archive was left behind"

    target = target_instance(tmp_path)
    restored = crm_portal(target, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert "schema up to date" in restored.stdout
    config = (target / "config.toml").read_text()
    assert f'"{app.config["DATABASE_URL"]}"' not in config  # the target's own database wins
    assert (target / "secret_key").read_text().strip() == SECRET

    new = restored_app(target)
    with new.app_context(), db.connection_context():
        tickets = {t.title: t for t in Ticket.select()}
        for _, _, title, digest in before:
            assert title in tickets, f"{title}, acknowledged before the backup began, was not restored"
            attachment = TicketAttachment.get(TicketAttachment.ticket == tickets[title].id)
            assert stored_sha256("tickets", attachment.stored_name) == digest
        assert dangling_files() == []
        for document in Document.select():  # the demo's files too
            assert stored_sha256("documents", document.stored_name) is not None
        ticket = tickets[next(w[2] for w in before if w[1] == "anna@acme.example")]
        attachment = TicketAttachment.get(TicketAttachment.ticket == ticket.id)
    anna = new.test_client()
    login(anna, "anna@acme.example")
    download = anna.get(f"/tickets/{ticket.id}/attachments/{attachment.id}")
    assert download.status_code == 200
    assert hashlib.sha256(download.data).hexdigest() == next(w[3] for w in before if w[2] == ticket.title)
    staff_login(new.test_client())  # the staff admin of the demo (admin@example.com / demo)


def test_rows_dumped_before_files_never_lose_their_file(tmp_path, monkeypatch):
    """A ticket opened between the two steps of a backup: its row is in the archive only with its
    file (the database is dumped first; the files read after it include the new one)."""
    app = source_instance(tmp_path)
    client = app.test_client()
    login(client, "anna@acme.example")
    url = ticket_form_url(client)
    phases: list[str] = []

    def between_steps(name: str, original: Callable) -> Callable:
        def step(*args, **kwargs):
            result = original(*args, **kwargs)
            phases.append(name)
            if len(phases) == 1:  # after whichever step comes first, before the other
                open_ticket(client, url, "Opened between the steps")
            return result
        return step

    monkeypatch.setattr(backup, "dump_database", between_steps("database", backup.dump_database))
    monkeypatch.setattr(backup, "copy_files", between_steps("files", backup.copy_files))
    archive = tmp_path / "archive.tar.gz"
    with app.app_context():
        backup.create_backup(app, archive)
    target = target_instance(tmp_path)
    assert crm_portal(target, "restore", str(archive)).returncode == 0
    with restored_app(target).app_context(), db.connection_context():
        assert dangling_files() == []
        assert len(phases) == 2 and Ticket.select().where(Ticket.title == "Opened between the steps").count() in (0, 1)


def test_a_referenced_file_the_storage_lost_is_named(tmp_path):
    app = source_instance(tmp_path)
    with app.app_context(), db.connection_context():
        lost = Document.select().first().stored_name
        storage().delete("documents", lost)
    done = crm_portal(Path(app.instance_path), "backup", "--output", str(tmp_path / "a.tar.gz"))
    assert done.returncode == 0 and f"warning: documents/{lost} is referenced" in done.stderr
    manifest = json.loads(tarfile.open(tmp_path / "a.tar.gz").extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["missing_files"] == [f"documents/{lost}"]
    assert manifest["database"]["kind"] == ("postgresql" if PG_URL else "sqlite")
    assert manifest["schema_steps"] and manifest["portal_version"] and manifest["created_at"].endswith("Z")


def test_a_backup_of_an_older_release_is_restored_then_migrated(tmp_path):
    """The database of a release before the staff time zones (core step 0007): restore says the
    step is pending, ``crm-portal migrate`` applies it, and the staff admin logs in."""
    from crm_portal.models import MigrationHistory, StaffUser

    app = source_instance(tmp_path)
    with app.app_context(), db.connection_context():
        db.execute_sql(f'ALTER TABLE "{StaffUser._meta.table_name}" DROP COLUMN timezone')
        MigrationHistory.delete().where(MigrationHistory.name == "0007_staff_timezone").execute()
    close_all()
    done = crm_portal(Path(app.instance_path), "backup", "--output", str(tmp_path / "old.tar.gz"))
    assert done.returncode == 0, done.stderr
    target = target_instance(tmp_path)
    restored = crm_portal(target, "restore", str(tmp_path / "old.tar.gz"))
    assert restored.returncode == 0, restored.stderr
    assert "1 schema steps pending (core/0007_staff_timezone)" in restored.stdout
    assert "run 'crm-portal migrate'" in restored.stdout
    migrated = crm_portal(target, "migrate")
    assert migrated.returncode == 0 and "0007_staff_timezone" in migrated.stdout, migrated.stderr
    staff_login(restored_app(target).test_client())


def test_an_interrupted_backup_leaves_no_archive(tmp_path, monkeypatch):
    app = source_instance(tmp_path)

    def failing(*_args, **_kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(backup, "copy_files", failing)
    output = tmp_path / "out" / "crm-portal-20250301T021500Z.tar.gz"
    with app.app_context(), pytest.raises(OSError):
        backup.create_backup(app, output)
    assert list(output.parent.iterdir()) == [], "a partial archive or its work folder was left behind"


def test_files_restored_into_and_backed_up_from_an_s3_bucket(tmp_path, archive, s3):  # noqa: F811
    """The files go through the storage backend both ways: restored into a bucket (the target's
    own storage settings kept in its config.toml), then backed up from it, byte for byte."""
    target = target_instance(tmp_path)
    settings = {**s3.settings, "S3_PREFIX": "restored/"}
    with open(target / "config.toml", "a", encoding="utf-8") as config:
        config.writelines(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    done = crm_portal(target, "restore", str(archive))
    assert done.returncode == 0, done.stderr
    assert not (target / "uploads").exists()
    assert 'S3_PREFIX = "restored/"' in (target / "config.toml").read_text()
    again = crm_portal(target, "backup", "--output", str(tmp_path / "again.tar.gz"))
    assert again.returncode == 0, again.stderr

    def files(path: Path) -> dict[str, str]:
        listing = json.loads(tarfile.open(path).extractfile("manifest.json").read())  # type: ignore[union-attr]
        return {m["name"]: m["sha256"] for m in listing["members"] if m["name"].startswith("files/")}

    assert files(archive) and files(tmp_path / "again.tar.gz") == files(archive)
    assert sorted(s3.keys()) == sorted("restored/" + name.removeprefix("files/") for name in files(archive))
    assert_refused(tmp_path, archive, r"refused: the target (database|instance) already", target)


# --- refusals ------------------------------------------------------------------------------------------

@pytest.fixture
def archive(tmp_path) -> Path:
    """A backup of the demo instance (the file path)."""
    app = source_instance(tmp_path)
    (tmp_path / "backups").mkdir()
    with app.app_context():
        return backup.create_backup(app, tmp_path / "backups").path


def rewrite(archive: Path, target: Path, edit: Callable[[dict[str, bytes], dict], None], *,
            manifest: bool = True) -> Path:
    """A well-formed copy of ``archive`` whose members ``edit`` changed; the manifest lists the new
    members' checksums when ``manifest`` (so only the guard under test can refuse it)."""
    members: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            members[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    listing = json.loads(members.pop("manifest.json"))
    edit(members, listing)
    if manifest:
        listing["members"] = [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                              for n, d in members.items()]
    members["manifest.json"] = json.dumps(listing).encode()
    with tarfile.open(target, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return target


def assert_refused(tmp_path: Path, archive: Path, message: str, target: Path | None = None) -> None:
    target = target or target_instance(tmp_path)
    before = state_of(target)
    done = crm_portal(target, "restore", str(archive))
    assert done.returncode != 0, done.stdout
    assert re.search(message, done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    assert state_of(target) == before, "a refused restore changed the instance"


def test_a_damaged_archive_is_refused_whole(tmp_path, archive):
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped = tmp_path / "flipped.tar.gz"
    flipped.write_bytes(bytes(data))
    assert_refused(tmp_path, flipped, r"refused: .*(damaged|checksum)")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    assert_refused(tmp_path, truncated, r"refused: .*damaged")


def test_a_member_changed_inside_a_well_formed_archive_fails_its_checksum(tmp_path, archive):
    def flip_last_file(members: dict[str, bytes], _listing: dict) -> None:
        name = sorted(n for n in members if n.startswith("files/"))[-1]
        members[name] = bytes([members[name][0] ^ 1]) + members[name][1:]

    tampered = rewrite(archive, tmp_path / "tampered.tar.gz", flip_last_file, manifest=False)
    assert_refused(tmp_path, tampered, r"refused: 'files/.*' does not match its checksum")


@pytest.mark.parametrize("evil", ["../escaped.txt", "/tmp/escaped-by-backup-test.txt",
                                  "files/tickets/../../../escaped.txt"])
def test_members_outside_the_archive_layout_are_refused(tmp_path, archive, evil):
    def add(members: dict[str, bytes], _listing: dict) -> None:
        members[evil] = b"should never be written"

    crafted = rewrite(archive, tmp_path / "crafted.tar.gz", add)
    assert_refused(tmp_path, crafted, r"refused: .*not a plain relative name")
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/escaped-by-backup-test.txt").exists()


def test_links_and_other_non_regular_members_are_refused(tmp_path, archive):
    linked = tmp_path / "linked.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(linked, "w:gz") as tar:
        for member in source:
            tar.addfile(member, source.extractfile(member))
        link = tarfile.TarInfo("files/tickets/" + "L" * 32)
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    assert_refused(tmp_path, linked, r"refused: .*is not a regular file")


def test_restore_only_into_an_empty_instance(tmp_path, archive):
    target = target_instance(tmp_path)
    assert crm_portal(target, "restore", str(archive)).returncode == 0
    assert_refused(tmp_path, archive, r"refused: the target database already has \d+ tables", target)
    # A database without tables but uploaded files is not empty either.
    other = target_instance(tmp_path)
    (other / "uploads" / "tickets").mkdir(parents=True)
    (other / "uploads" / "tickets" / ("F" * 32)).write_bytes(b"a customer's file")
    assert_refused(tmp_path, archive, r"refused: the target instance already has uploaded files", other)


def test_restore_across_database_kinds_is_refused(tmp_path, archive):
    here, other = ("postgresql", "sqlite") if PG_URL else ("sqlite", "postgresql")
    member = {"sqlite": "database/portal.sqlite3", "postgresql": "database/portal.pgdump"}

    def other_kind(members: dict[str, bytes], listing: dict) -> None:
        members[member[other]] = members.pop(member[here])
        listing["database"]["kind"] = other

    crafted = rewrite(archive, tmp_path / "kind.tar.gz", other_kind)
    assert_refused(tmp_path, crafted, rf"refused: the archive holds a {other} database .* across kinds is not "
                                      "supported")


def test_keep_prunes_older_archives_only_after_a_backup(tmp_path):
    app = source_instance(tmp_path)
    folder = tmp_path / "nightly"
    folder.mkdir()
    for day in ("20240101", "20240102", "20240103"):
        (folder / f"crm-portal-{day}T031500Z.tar.gz").write_bytes(b"old")
    (folder / "notes.txt").write_text("not an archive")
    done = crm_portal(Path(app.instance_path), "backup", "--output", str(folder), "--keep", "2")
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 3 and "notes.txt" in names and "crm-portal-20240103T031500Z.tar.gz" in names
    assert done.stdout.count("removed ") == 2


def test_a_missing_pg_dump_is_named_with_its_version(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(backup.BackupError, match=r"pg_dump for PostgreSQL 99 not found .* postgresql-client-99"):
        backup.find_pg_tool("pg_dump", 99)


# --- the documented commands -----------------------------------------------------------------------

def _backups_section() -> str:
    text = OPERATIONS.read_text(encoding="utf-8")
    return text[text.index("### Backups\n"):text.index("### Logs and audit")]


def test_the_documented_backup_and_restore_drill_works_as_written(tmp_path):
    """Runs the commands of docs/operations.md's Backups section in the document's order: the
    nightly unit's backup command, then the drill's restore and migrate, then the logins."""
    section = _backups_section()
    service = re.search(r"^ExecStart=\S*/(crm-portal backup.*)$", section, re.M)
    drill = [m.group(1) for m in re.finditer(r"^(crm-portal (?:restore|migrate)\b.*)$", section, re.M)]
    assert service and drill and drill[0].startswith("crm-portal restore"), "the Backups section lost its commands"
    assert "secret" in section.lower() and "pg_dump" in section
    app = source_instance(tmp_path)
    source = Path(app.instance_path)
    done = crm_portal(source, *shlex.split(service.group(1))[1:])
    assert done.returncode == 0, done.stderr
    archive = Path(done.stdout.splitlines()[0])
    assert archive.parent == source / "backups" and archive.name.startswith("crm-portal-")
    target = target_instance(tmp_path)
    for line in drill:
        args = [str(archive) if a.endswith(".tar.gz") else a for a in shlex.split(line, comments=True)[1:]]
        done = crm_portal(target, *args)
        assert done.returncode == 0, done.stderr
    new = restored_app(target)
    login(new.test_client(), "anna@acme.example")
    staff_login(new.test_client())


def test_two_backups_in_the_same_second_keep_both(tmp_path):
    import datetime as dt

    from crm_portal.backup import archive_in

    now = dt.datetime(2026, 12, 8, 1, 30, tzinfo=dt.UTC)
    first = archive_in(tmp_path, now)
    first.write_bytes(b"x")
    second = archive_in(tmp_path, now)
    assert first.name == "crm-portal-20261208T013000Z.tar.gz" and second.name == "crm-portal-20261208T013000Z-2.tar.gz"
