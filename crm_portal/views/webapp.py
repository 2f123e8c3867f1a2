"""What a browser asks of any site besides its pages: the web app manifest (so that a phone can add
the portal to its home screen) and ``/favicon.ico``. Both are public: browsers fetch them without
the session cookie."""
from __future__ import annotations

import json

from flask import Blueprint, Flask, Response, current_app, send_from_directory, url_for

bp = Blueprint("webapp", __name__)

#: The brand colour of the bundled icons and of the default theme (Bootstrap's primary).
DEFAULT_THEME_COLOR = "#0d6efd"

#: The manifest's icons, in ``static/icons/`` (PNG for every platform, SVG for those that scale it).
ICONS = (
    {"file": "icon-192.png", "sizes": "192x192", "type": "image/png", "purpose": "any"},
    {"file": "icon-512.png", "sizes": "512x512", "type": "image/png", "purpose": "any"},
    {"file": "icon-maskable-512.png", "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
    {"file": "favicon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
)


def theme_color() -> str:
    """The browser's toolbar colour: the active theme's ``theme_color``, else the brand blue."""
    return str(current_app.config.get("THEME_META", {}).get("theme_color") or DEFAULT_THEME_COLOR)


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    """The web app manifest: the portal's name, start page, icons and colours."""
    name = current_app.config["PORTAL_NAME"]
    body = {
        "name": name,
        "short_name": name,
        "start_url": url_for("portal.dashboard"),
        "scope": url_for("portal.dashboard"),
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": theme_color(),
        "icons": [{"src": url_for("static", filename=f"icons/{icon['file']}"), "sizes": icon["sizes"],
                   "type": icon["type"], "purpose": icon["purpose"]} for icon in ICONS],
    }
    return Response(json.dumps(body, ensure_ascii=False), content_type="application/manifest+json")


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for ``/favicon.ico`` wherever the page names no icon (downloads, error pages)."""
    return send_from_directory(current_app.static_folder or "static", "icons/favicon.ico",
                               mimetype="image/vnd.microsoft.icon", max_age=86400)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
