"""The production recipe of docs/operations.md, followed step by step as written.

The configuration block and the ``crm-portal init`` command are read from the document itself,
run in the document's order (configuration first, then init, then the web server's command) on a
fresh instance folder, with only the database (the test's) and the job queue (in memory) swapped.
"""
from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from crm_portal import create_app
from crm_portal.cli import main
from crm_portal.config import ConfigurationError
from crm_portal.db import db
from crm_portal.models import StaffUser

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
HOST = "portale.yourcompany.it"
PG_URL = os.environ.get("CRM_PORTAL_TEST_DATABASE_URL") or None


def _production_section() -> str:
    text = OPERATIONS.read_text(encoding="utf-8")
    return text[text.index("## Production\n"):text.index("## Background worker and email")]


def _recipe() -> tuple[str, list[str], list[str]]:
    """The configuration, the init command's arguments and the web server's command of the doc, in
    the order the doc gives them (an error if that order is not configuration → init → server)."""
    section = _production_section()
    config = re.search(r"```toml\n(.*?)```", section, re.S)
    init = re.search(r"^\s*crm-portal init (.+)$", section, re.M)
    server = re.search(r"^\s*(gunicorn .+)$", section, re.M)
    assert config and init and server, "the production recipe lost its config.toml, init or gunicorn step"
    assert config.start() < init.start() < server.start(), "the recipe must write config.toml before init"
    toml = "\n".join(re.sub(r"^\s{3}", "", line) for line in config.group(1).splitlines())
    return toml, shlex.split(init.group(1)), shlex.split(server.group(1))


def _for_test(toml: str, database_url: str) -> str:
    """The documented configuration on the test's database, the queue in memory (no Redis)."""
    assert re.search(r"^DATABASE_URL = ", toml, re.M) and re.search(r"^PRODUCTION = true", toml, re.M)
    toml = re.sub(r"^DATABASE_URL = .*$", f'DATABASE_URL = "{database_url}"', toml, flags=re.M)
    return re.sub(r"^HUEY_URL = .*$", 'HUEY_URL = "memory://"', toml, flags=re.M)


def _instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """``export CRM_PORTAL_INSTANCE_PATH=…``, ``mkdir -p`` and the documented config.toml."""
    toml, _, _ = _recipe()
    instance = tmp_path / "srv" / "instance"
    instance.mkdir(parents=True)
    # Not the default file name, so that a default SQLite database could not hide behind it.
    database_url = PG_URL or f"sqlite:///{tmp_path / 'db' / 'portal.sqlite'}"
    (tmp_path / "db").mkdir()
    (instance / "config.toml").write_text(_for_test(toml, database_url), encoding="utf-8")
    monkeypatch.setenv("CRM_PORTAL_INSTANCE_PATH", str(instance))
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "")  # the CLI group sets it; restored after the test
    return instance, database_url


def _crm_portal(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_and_get(command: list[str], instance: Path, path: str) -> tuple[int, str]:
    """Run the documented web server command on a free local port; the answer to ``path``."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    if not gunicorn.exists():
        pytest.skip("gunicorn is not installed (pip install -e '.[prod]')")
    port = _free_port()
    args = [str(gunicorn) if command[0] == "gunicorn" else command[0]]
    for arg, previous in zip(command[1:], command, strict=False):
        if previous == "--bind":
            arg = f"127.0.0.1:{port}"
        elif previous == "--workers":
            arg = "1"  # one is enough to answer; the machine running the tests is small
        args.append(arg)
    log = instance.parent / "gunicorn.log"
    env = {"CRM_PORTAL_INSTANCE_PATH": str(instance), "PATH": str(Path(sys.executable).parent)}
    with log.open("w") as out:
        server = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=instance.parent)
    try:
        deadline = time.monotonic() + 30
        while True:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                             headers={"Host": HOST, "X-Forwarded-Proto": "https"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode(errors="replace")
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the web server did not start:\n{log.read_text()}")
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _sqlite_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.read_bytes()[:16] == b"SQLite format 3\x00"]


def test_production_recipe_in_its_documented_order(tmp_path, monkeypatch):
    instance, _ = _instance(tmp_path, monkeypatch)
    _, init_args, server_command = _recipe()
    with pytest.raises(ConfigurationError):  # as the doc says: nothing starts before init
        create_app()

    result = _crm_portal("init", *init_args)
    assert result.exit_code == 0, result.output
    assert "ready" in result.output
    assert (instance / "secret_key").exists()
    assert f'EXTERNAL_URL = "https://{HOST}"' in (instance / "config.toml").read_text()
    assert not _sqlite_files(instance), "init created a SQLite database although DATABASE_URL names another"

    app = create_app()  # what the web server calls ('crm_portal:create_app()')
    assert app.config["PRODUCTION"] and app.config["EXTERNAL_URL"] == f"https://{HOST}"
    with app.app_context(), db.connection_context():
        assert StaffUser.get_or_none(StaffUser.email == init_args[init_args.index("--admin-email") + 1])

    status, page = _serve_and_get(server_command, instance, "/login")
    assert status == 200 and "Accedi al portale clienti" in page
    assert not _sqlite_files(instance)
    again = _crm_portal("init", *init_args)  # idempotent: a second run on the ready instance works
    assert again.exit_code == 0 and "staff admin" not in again.output


def test_init_on_a_production_instance_needs_its_address_before_writing_anything(tmp_path, monkeypatch):
    instance, _ = _instance(tmp_path, monkeypatch)
    _, init_args, _ = _recipe()
    without_url = init_args[:init_args.index("--external-url")]

    refused = _crm_portal("init", *without_url)
    assert refused.exit_code != 0 and "--external-url" in refused.output
    untrusted = _crm_portal("init", *without_url, "--external-url", "https://elsewhere.example")
    assert untrusted.exit_code != 0 and "not in TRUSTED_HOSTS" in untrusted.output
    assert sorted(p.name for p in instance.iterdir()) == ["config.toml"]  # no secret, no database
    assert not re.search(r"^EXTERNAL_URL", (instance / "config.toml").read_text(), re.M)
    with pytest.raises(ConfigurationError, match="secret key"):
        create_app()

