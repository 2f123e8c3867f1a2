"""What ``crm-portal --version`` prints: the portal's release, the libraries it runs on and every
discovered module with its version and state."""
from __future__ import annotations

import importlib.metadata
import platform
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from .registry import Registry

#: The libraries whose versions matter when reading a report or an upgrade note.
LIBRARIES = ("Flask", "Flask-Admin", "peewee", "huey")


def library_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"not installed"``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe(registry: Registry | None) -> list[str]:
    """Lines naming the release, Python and :data:`LIBRARIES`, then (with a ``registry``) each
    discovered module: name, version (``-`` when unknown) and state."""
    lines = [f"CRM Portal {__version__}",
             f"Python {platform.python_version()}, "
             + ", ".join(f"{name} {library_version(name)}" for name in LIBRARIES)]
    if registry is not None:
        lines.append("modules:")
        lines += [f"  {state.name:<16} {state.version or '-':<10} {state.status}" for state in registry.states]
    return lines
