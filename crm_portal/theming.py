"""Themes: ``themes/<name>/templates`` overrides host and module templates by name, ``static/`` its assets.

Templates resolve: active theme → default theme → host templates → module templates (blueprints).
A theme template can extend the one it replaces as ``host/<name>``.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from flask import Flask, abort, current_app, send_from_directory
from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader


def theme_dirs(app: Flask) -> list[Path]:
    root = Path(app.config["THEMES_FOLDER"])
    names = [app.config["THEME"]] + ([] if app.config["THEME"] == "default" else ["default"])
    return [root / name for name in names]


def init_app(app: Flask) -> None:
    dirs = theme_dirs(app)
    if not dirs[0].is_dir():
        raise RuntimeError(f"THEME {app.config['THEME']!r}: no folder {dirs[0]}")
    loaders = [FileSystemLoader(str(d / "templates")) for d in dirs if (d / "templates").is_dir()]
    host = FileSystemLoader(str(Path(app.root_path) / "templates"))
    # "host/<name>" always reaches the host template, so a theme can extend the page it overrides.
    app.jinja_loader = ChoiceLoader([*loaders, host, PrefixLoader({"host": host})])
    meta = dirs[0] / "theme.toml"
    app.config["THEME_META"] = tomllib.loads(meta.read_text()) if meta.exists() else {}

    @app.route("/theme/<path:filename>", endpoint="theme_static")
    def theme_static(filename: str):
        folder = next((d for d in theme_dirs(current_app) if (d / "static" / filename).is_file()), None)
        if folder is None:
            abort(404)
        return send_from_directory(folder / "static", filename, max_age=3600)
