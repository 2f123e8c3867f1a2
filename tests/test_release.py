"""Releases: one version everywhere (package, ``crm-portal --version``, CHANGELOG.md, the install
commands of the docs), and every module listed with its version."""
from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

from crm_portal import __version__
from crm_portal.api import Module
from crm_portal.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
PORTAL = Path(sys.executable).parent / "crm-portal"


def test_the_installed_distribution_is_this_release():
    assert importlib.metadata.version("crm-portal") == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_the_changelog_has_this_release_with_its_upgrade_notes():
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", text, re.M)
    assert releases and releases[0] == __version__, "CHANGELOG.md must start with this release"
    section = text.split(f"## [{__version__}]", 1)[1].split("\n## [", 1)[0]
    assert "### Upgrading" in section


def test_install_commands_name_this_release_wheel():
    for doc in (ROOT / "README.md", ROOT / "docs" / "operations.md"):
        names = set(re.findall(r"crm_portal-(\d+\.\d+\.\d+)-py3-none-any\.whl", doc.read_text()))
        assert names == {__version__}, f"{doc.name} names the wheels of {names}"


def test_version_lists_the_portal_its_libraries_and_every_module(tmp_path):
    """``crm-portal --version`` as an administrator types it, on an instance not set up yet."""
    result = subprocess.run([str(PORTAL), "--version"], capture_output=True, text=True, timeout=120,
                            env={"CRM_PORTAL_INSTANCE_PATH": str(tmp_path), "PATH": str(PORTAL.parent)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"CRM Portal {__version__}"
    assert re.match(r"Python \d+\.\d+\.\d+, Flask \d", lines[1]) and "peewee" in lines[1]
    assert f"  tickets          {__version__:<10} enabled" in lines
    assert "Flask 3" in result.stdout and "Werkzeug" not in result.stdout  # not Flask's own --version


def test_a_module_states_its_own_version_or_its_distributions(tmp_path):
    class Versioned(Module):
        name = "versioned"
        label = "Versioned"
        version = "2.5.1"

    class Plain(Module):
        name = "plain"
        label = "Plain"

    registry = Registry().discover([], extra=[Versioned, Plain])
    versions = {state.name: state.version for state in registry.states}
    assert versions["versioned"] == "2.5.1" and versions["plain"] is None
    assert versions["tickets"] == __version__  # a built-in: the portal's distribution
