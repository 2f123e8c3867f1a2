"""The dashboard, the side menu and the template hooks shared by every portal page."""
from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, url_for
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.routing import BuildError

from ..models import Button, ProfileButton

bp = Blueprint("portal", __name__)


def visible_modules() -> list[Any]:
    """The enabled modules the current user's profile shows, in menu order."""
    registry = current_app.extensions["crm_portal"]
    grants = current_user.grants if current_user.is_authenticated else {}
    return [m for name, m in registry.modules.items() if name in grants and grants[name].action_set]


def button_url(button: Button) -> str | None:
    if button.url:
        return button.url
    if not button.endpoint:
        return None
    try:
        args = json.loads(button.args) if button.args else {}
        return url_for(button.endpoint, **args)
    except (BuildError, ValueError, TypeError):
        return None  # the module behind it is not installed


def dashboard_buttons() -> list[tuple[Button, str]]:
    profile_id = current_user.contact.profile_id
    if profile_id is None:
        return []
    rows = (Button.select().join(ProfileButton)
            .where(ProfileButton.profile == profile_id)
            .order_by(ProfileButton.position, ProfileButton.id))
    shown = {m.name for m in visible_modules()}
    out = []
    for button in rows:
        if button.module and button.module not in shown:
            continue
        url = button_url(button)
        if url:
            out.append((button, url))
    return out


@bp.route("/")
@login_required
def dashboard():
    if current_user.is_staff:
        from flask import redirect
        return redirect(url_for("admin.index"))
    return render_template("portal/dashboard.html", buttons=dashboard_buttons())


def hook(name: str, **context: Any) -> Markup:
    """Markup that visible modules contribute at a named place of a template."""
    if not current_user.is_authenticated or current_user.is_staff:
        return Markup("")
    parts = []
    for module in visible_modules():
        result = module.template_hook(name, **context)
        if result:
            parts.append(Markup(result) if not isinstance(result, Markup) else result)
    return Markup("\n").join(parts)


def resolve_field(record: Any, field: Any) -> Any:
    """The value of a detail :class:`~crm_portal.api.Field`: a dotted path from the record, then
    its formatter or choice label."""
    value = record
    for part in field.name.split("."):
        value = getattr(value, part, None) if value is not None else None
    if field.format is not None:
        return field.format(value, record)
    choices = field.choices
    if choices is None:
        model_field = record._meta.fields.get(field.name)
        choices = dict(model_field.choices) if model_field is not None and model_field.choices else None
    if choices and value in choices:
        return str(choices[value])
    return value


def init_app(app: Flask) -> None:
    from . import webapp

    app.register_blueprint(bp)
    webapp.init_app(app)

    @app.context_processor
    def _portal_context():
        return {
            "portal_name": app.config["PORTAL_NAME"],
            "visible_modules": visible_modules,
            "hook": hook,
            "languages": app.config["LANGUAGES"],
            "theme": app.config["THEME_META"],
            "has_endpoint": lambda endpoint: endpoint in app.view_functions,
            "resolve": resolve_field,
            "theme_color": webapp.theme_color,
        }

    from ..listing import display

    app.jinja_env.filters["display"] = display
