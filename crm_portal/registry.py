"""Module discovery, validation and enabling.

Modules come from the ``crm_portal.modules`` entry-point group (built-ins register there too) and
from the configured module folders. A module that fails to import or declares something invalid is
recorded with its reason, logged and skipped; with ``MODULES_STRICT`` it stops the application.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import logging
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import peewee as pw

from .api import API_VERSION, ActionLabel, Module

log = logging.getLogger("crm_portal.modules")

ENTRY_POINT_GROUP = "crm_portal.modules"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
#: An action is stored in a comma-separated list: a plain word.
ACTION_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
RESERVED = {"admin", "auth", "static", "theme", "login", "logout", "me", "lang", "core", "api", "portal"}


class ModuleError(Exception):
    pass


@dataclasses.dataclass
class ModuleState:
    """What discovery found: a module, where from, and whether it loaded."""

    name: str
    source: str
    module: Module | None = None
    error: str | None = None
    enabled: bool = False
    #: The version of the distribution that registers it (entry points), unless the module
    #: declares its own (``Module.version``); ``None`` when neither says.
    version: str | None = None

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        return "enabled" if self.enabled else "disabled"


def _version_ok(wanted: str) -> bool:
    try:
        w_major, w_minor = (int(x) for x in (wanted.split(".") + ["0"])[:2])
        h_major, h_minor = (int(x) for x in API_VERSION.split(".")[:2])
    except ValueError:
        return False
    return w_major == h_major and w_minor <= h_minor


def validate(cls: Any) -> Module:
    """Instantiate and check a module class; raise ModuleError saying what is wrong."""
    if not (inspect.isclass(cls) and issubclass(cls, Module)):
        raise ModuleError(f"{cls!r} is not a crm_portal.api.Module subclass")
    name = cls.name
    if not isinstance(name, str) or not NAME_RE.match(name) or name in RESERVED:
        raise ModuleError(f"invalid module name {name!r} (lowercase letters, digits, '_'; not reserved)")
    if not _version_ok(str(cls.api_version)):
        raise ModuleError(f"needs API {cls.api_version}, host provides {API_VERSION}")
    if not cls.label:
        raise ModuleError("label is required")
    for model in cls.models:
        if not (inspect.isclass(model) and issubclass(model, pw.Model)):
            raise ModuleError(f"models: {model!r} is not a peewee model")
        table = model._meta.table_name
        if not table.startswith(f"{name}_"):
            raise ModuleError(f"table {table!r} of {model.__name__} must be named '{name}_<entity>'")
    record = cls.record
    if record is not None:
        from .models import CORE_MODELS

        if record not in cls.models and record not in CORE_MODELS:
            raise ModuleError("record must be one of the module's models or a core model")
        for attr in ("contact_field", "company_field"):
            fld = getattr(cls, attr)
            if fld is not None and getattr(fld, "model", None) is not record:
                raise ModuleError(f"{attr} must be a field of {record.__name__}")
        if (cls.contact_field is None and cls.company_field is None
                and cls.scope_query is Module.scope_query):
            raise ModuleError("declare contact_field, company_field or a scope_query of its own")
        names = set()
        for column in cls.columns:
            if column.field.model is not record:
                raise ModuleError(f"column {column.name!r} is not a field of {record.__name__}")
            if column.is_relation and column.display is None and (column.search or column.sort):
                raise ModuleError(f"column {column.name!r}: a relation needs display= to search or sort")
            names.add(column.name)
        if cls.default_sort and cls.default_sort.lstrip("-") not in names | set(record._meta.fields):
            raise ModuleError(f"default_sort {cls.default_sort!r} names no column")
    if "view" not in cls.actions:
        raise ModuleError("actions must include 'view'")
    for action in cls.actions:
        if not isinstance(action, str) or not ACTION_RE.match(action):
            raise ModuleError(f"invalid action {action!r} (lowercase letters, digits, '_')")
    for action, text in dict(cls.action_labels).items():
        if action not in cls.actions:
            raise ModuleError(f"action_labels: {action!r} is not one of actions")
        if not isinstance(text, ActionLabel):
            raise ModuleError(f"action_labels: {action!r} must be an ActionLabel")
    for mig in cls.migrations:
        if not getattr(mig, "name", None) or not callable(getattr(mig, "apply", None)):
            raise ModuleError(f"invalid migration {mig!r}")
    return cls()


def _entry_point_candidates() -> list[tuple[str, str, Any, str | None]]:
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.append((ep.name, f"entry point {ep.value}", ep.load, ep.dist.version if ep.dist else None))
    return found


def _package_name(folder: Path) -> str | None:
    """The dotted name ``folder`` is importable as, if any: the built-in ``crm_portal.modules``, or
    a folder that is itself a package on the path."""
    for name in ("crm_portal.modules", folder.name):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        locations = {str(_resolve(p)) for p in (spec.submodule_search_locations or ())} if spec else set()
        if str(_resolve(str(folder))) in locations:
            return name
    return None


def _import_folder_package(folder: Path, sub: Path) -> Any:
    """Import ``folder/sub`` as a package. A folder that is itself an importable package (the
    built-in modules) keeps its real dotted name, so entry points and folder agree; any other
    folder's modules are imported as ``crm_portal_plugins.<name>``."""
    if (folder / "__init__.py").exists():
        parent = _package_name(folder)
        if parent:
            return importlib.import_module(f"{parent}.{sub.name}")
    mod_name = f"crm_portal_plugins.{sub.name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    if "crm_portal_plugins" not in sys.modules:
        namespace = importlib.util.module_from_spec(
            importlib.machinery.ModuleSpec("crm_portal_plugins", None, is_package=True))
        namespace.__path__ = []
        sys.modules["crm_portal_plugins"] = namespace
    spec = importlib.util.spec_from_file_location(mod_name, sub / "__init__.py",
                                                  submodule_search_locations=[str(sub)])
    assert spec and spec.loader
    package = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return package


def _resolve(p: str) -> Path:
    try:
        return Path(p or ".").resolve()
    except OSError:
        return Path(p)


def _module_class_in(package: Any) -> Any:
    explicit = getattr(package, "module", None) or getattr(package, "Module", None)
    if inspect.isclass(explicit) and issubclass(explicit, Module) and explicit is not Module:
        return explicit
    classes = [obj for obj in vars(package).values()
               if inspect.isclass(obj) and issubclass(obj, Module) and obj is not Module
               and obj.__module__.startswith(package.__name__)]
    if len(classes) != 1:
        raise ModuleError(f"{package.__name__} must define exactly one Module subclass (found {len(classes)})")
    return classes[0]


class Registry:
    """The modules of one application: ``modules`` (enabled, by name, in menu order) and ``states``."""

    def __init__(self) -> None:
        self.modules: dict[str, Module] = {}
        self.states: list[ModuleState] = []

    def _add(self, state: ModuleState, strict: bool) -> None:
        self.states.append(state)
        if state.error:
            log.error("module %s (%s) skipped: %s", state.name, state.source, state.error)
            if strict:
                raise ModuleError(f"module {state.name} ({state.source}): {state.error}")

    def discover(self, folders: list[Path], *, enabled: list[str] | None = None,
                 disabled: list[str] | None = None, strict: bool = False,
                 extra: list[type[Module]] | None = None) -> Registry:
        seen: set[str] = set()
        candidates: list[tuple[str, str, Any, str | None]] = list(_entry_point_candidates())
        for folder in folders:
            if not folder.is_dir():
                continue
            for sub in sorted(folder.iterdir()):
                if sub.is_dir() and (sub / "__init__.py").exists() and not sub.name.startswith(("_", ".")):
                    candidates.append((sub.name, f"folder {sub}",
                                       lambda f=folder, s=sub: _module_class_in(_import_folder_package(f, s)),
                                       None))
        for cls in extra or ():
            candidates.append((cls.name, f"class {cls.__module__}.{cls.__qualname__}", lambda c=cls: c, None))

        for name, source, loader, dist_version in candidates:
            if name in seen:
                continue  # a built-in is both in modules/ and an entry point: first one wins
            seen.add(name)
            state = ModuleState(name=name, source=source, version=dist_version)
            try:
                module = validate(loader())
                if module.name != name:
                    raise ModuleError(f"declares name {module.name!r} but is registered as {name!r}")
                state.module = module
                state.version = module.version or dist_version
            except Exception as exc:  # a broken plugin must not take the portal down
                state.error = f"{type(exc).__name__}: {exc}"
                log.debug("".join(traceback.format_exception(exc)))
            if state.module is not None:
                state.enabled = (enabled is None or name in enabled) and name not in (disabled or ())
            self._add(state, strict)

        ordered = sorted((s.module for s in self.states if s.enabled and s.module is not None),
                         key=lambda m: (m.position, m.name))
        self.modules = {m.name: m for m in ordered}
        return self

    def fail(self, name: str, exc: BaseException, strict: bool = False) -> None:
        """Take a module that broke while being set up out of service, recording why."""
        self.modules.pop(name, None)
        for state in self.states:
            if state.name == name:
                state.error = f"{type(exc).__name__}: {exc}"
                state.enabled = False
                log.error("module %s (%s) skipped: %s", name, state.source, state.error)
        if strict:
            raise ModuleError(f"module {name}: {exc}") from exc

    def get(self, name: str) -> Module | None:
        return self.modules.get(name)


def init_app(app: Any) -> Registry:
    """Discover the modules for ``app`` and keep them in ``app.extensions['crm_portal']``."""
    from . import i18n, signals

    registry = Registry().discover(
        [Path(f) for f in app.config["MODULE_FOLDERS"]],
        enabled=app.config["MODULES_ENABLED"],
        disabled=app.config["MODULES_DISABLED"],
        strict=app.config["MODULES_STRICT"],
        extra=app.config.get("EXTRA_MODULES"),
    )
    app.extensions["crm_portal"] = registry
    for module in registry.modules.values():
        package_dir = Path(inspect.getfile(type(module))).parent
        i18n.add_translation_directory(app, package_dir / "translations")
        module.connect_signals()
    signals.modules_loaded.send(app, registry=registry)
    return registry
