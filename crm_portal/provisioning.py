"""Default profiles and dashboard buttons: loaded from ``profiles/*.toml`` and ``buttons/*.toml`` and
from what the modules offer. Loading is idempotent and never overwrites an admin's changes to an
existing profile or button."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from flask import Flask
from flask_babel import force_locale

from .db import db
from .models import SCOPES, Button, Profile, ProfileButton, ProfileModule


class ProvisioningError(ValueError):
    pass


def _read(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
        try:
            out.append((path, tomllib.loads(path.read_text(encoding="utf-8"))))
        except tomllib.TOMLDecodeError as exc:
            raise ProvisioningError(f"{path}: {exc}") from exc
    return out


def _translations(text: Any) -> tuple[str, str]:
    """English and Italian text of a lazily translated string."""
    with force_locale("en"):
        en = str(text)
    with force_locale("it"):
        it = str(text)
    return en, it


def install_buttons(app: Flask) -> list[str]:
    lines = []
    specs: list[dict[str, Any]] = []
    for module in app.extensions["crm_portal"].modules.values():
        for b in module.buttons():
            label_en, label_it = _translations(b.label)
            desc_en, desc_it = _translations(b.description) if b.description is not None else (None, None)
            specs.append({"key": b.key, "label_en": label_en, "label_it": label_it, "description_en": desc_en,
                          "description_it": desc_it, "icon": b.icon, "module": module.name,
                          "endpoint": b.endpoint, "url": b.url, "style": b.style,
                          "args": json.dumps(dict(b.args)) if b.args else None})
    for path, data in _read(Path(app.config["BUTTONS_FOLDER"])):
        for raw in data.get("button", []):
            if "key" not in raw or "label_en" not in raw:
                raise ProvisioningError(f"{path}: every [[button]] needs key and label_en")
            spec = dict(raw)
            if isinstance(spec.get("args"), dict):
                spec["args"] = json.dumps(spec["args"])
            specs.append(spec)
    allowed = set(Button._meta.fields) - {"id"}
    for spec in specs:
        unknown = set(spec) - allowed
        if unknown:
            raise ProvisioningError(f"button {spec['key']}: unknown keys {sorted(unknown)}")
        if Button.get_or_none(Button.key == spec["key"]) is None:
            Button.create(**spec)
            lines.append(f"button {spec['key']}")
    return lines


def install_profiles(app: Flask) -> list[str]:
    lines = []
    for path, data in _read(Path(app.config["PROFILES_FOLDER"])):
        name = data.get("name") or path.stem
        if Profile.get_or_none(Profile.name == name) is not None:
            continue
        profile = Profile.create(name=name, label_en=data.get("label_en", name), label_it=data.get("label_it"),
                                 description=data.get("description"),
                                 assignable=bool(data.get("assignable", False)))
        for position, (module, grant) in enumerate(data.get("modules", {}).items()):
            scope = grant.get("scope", "own")
            if scope not in SCOPES:
                raise ProvisioningError(f"{path}: module {module}: scope must be one of {SCOPES}")
            actions = grant.get("actions", ["view"])
            ProfileModule.create(profile=profile, module=module, scope=scope, actions=",".join(actions),
                                 position=position)
        for position, key in enumerate(data.get("buttons", [])):
            button = Button.get_or_none(Button.key == key)
            if button is not None:  # a button of a module that is not installed is left out
                ProfileButton.create(profile=profile, button=button, position=position)
        lines.append(f"profile {name}")
    return lines


def install_defaults(app: Flask) -> list[str]:
    with db.atomic():
        return install_buttons(app) + install_profiles(app)
