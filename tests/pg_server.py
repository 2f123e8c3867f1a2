"""A private PostgreSQL server for tests that stop and start their database.

The machine's own server is never touched: :class:`PgServer` runs ``initdb`` and ``pg_ctl`` (as the
``postgres`` OS user, since ``initdb`` refuses root) on a free port, with its data directory and
socket in a temporary folder, trust authentication on loopback only, and removes it all at the end::

    with PgServer.running() as pg:
        pg.create_database("portal")
        url = pg.url("portal")
        pg.stop()          # pg_ctl -m immediate: every backend dies at once, as in a crash
        pg.start()
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BIN = Path(os.environ.get("CRM_PORTAL_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"


def unavailable() -> str | None:
    """Why a private server cannot run here (for ``pytest.mark.skipif``), or None."""
    if not (BIN / "initdb").exists():
        return f"no initdb in {BIN} (apt-get install postgresql)"
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        return f"no {OS_USER!r} OS user to run initdb as"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != OS_USER:
        return f"running as neither root nor {OS_USER!r}: cannot run initdb as {OS_USER!r}"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    """One private cluster: ``initdb`` at construction, then :meth:`start` / :meth:`stop` at will."""

    def __init__(self) -> None:
        # In the system's temporary folder: pytest's tmp_path is closed to other users.
        self.root = Path(tempfile.mkdtemp(prefix="crm-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        if os.geteuid() == 0:
            user = pwd.getpwnam(OS_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", OS_USER, "--no-sync", "-E", "UTF8",
                  "--locale", "C")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.root}'\nfsync = off\nmax_connections = 200\n"
                       "full_page_writes = off\nsynchronous_commit = on\n")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", OS_USER, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120, cwd=self.root)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{OS_USER}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30) -> None:
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout)), "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: backends are killed, clients see their socket drop)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def is_up(self) -> bool:
        return self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False).returncode == 0

    def create_database(self, name: str) -> str:
        """Create database ``name``; its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", OS_USER, name)
        return self.url(name)

    def remove(self) -> None:
        """Stop the server (if running) and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
            deadline = time.monotonic() + 10
            while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[PgServer]:
        """A started server, stopped and deleted when the block ends."""
        server = cls()
        try:
            server.start()
            yield server
        finally:
            server.remove()
