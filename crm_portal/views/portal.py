"""The dashboard, the side menu and the template hooks shared by every portal page."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, url_for
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.routing import BuildError

from ..api import DueItem
from ..cache import ProcessCache
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


def _load_buttons(profile_id: Any) -> tuple[Button, ...]:
    return tuple(Button.select().join(ProfileButton)
                 .where(ProfileButton.profile == profile_id)
                 .order_by(ProfileButton.position, ProfileButton.id))


#: A profile's dashboard buttons by profile id, kept in the process until buttons change.
profile_buttons: ProcessCache[tuple[Button, ...]] = ProcessCache(
    "profiles.buttons", (Button._meta.table_name, ProfileButton._meta.table_name), _load_buttons)


def dashboard_buttons() -> list[tuple[Button, str]]:
    profile_id = current_user.contact.profile_id
    if profile_id is None:
        return []
    rows = profile_buttons.get(profile_id)
    shown = {m.name for m in visible_modules()}
    out = []
    for button in rows:
        if button.module and button.module not in shown:
            continue
        url = button_url(button)
        if url:
            out.append((button, url))
    return out


@dataclasses.dataclass(frozen=True)
class DueSoon:
    """The dashboard's "due soon" widget: what the user's modules say falls due within ``DUE_DAYS``
    (overdue first, then by date), whether there was more than ``DUE_LIMIT``, and ``today``."""

    items: list[DueItem]
    more: bool
    today: dt.date


#: The widget's horizon and length.
DUE_DAYS = 30
DUE_LIMIT = 12


def due_soon() -> DueSoon | None:
    """Gather every visible module's :meth:`~crm_portal.api.Module.due_items` (one or two queries
    each, through the scoping gate) and sort them by date, overdue first. ``None`` when no module
    the user can view has due dates to offer: the dashboard then shows no widget."""
    today = dt.date.today()
    until = today + dt.timedelta(days=DUE_DAYS)
    items: list[DueItem] = []
    contributed = False
    for module in visible_modules():
        if not current_user.can(module.name, "view"):
            continue
        try:
            found = module.due_items(current_user, today, until, DUE_LIMIT + 1)
        except Exception:  # one module's failure must not take the dashboard down
            current_app.logger.exception("dashboard: due_items of %s failed", module.name)
            continue
        if found is not None:
            contributed = True
            items += list(found)[:DUE_LIMIT + 1]
    if not contributed:
        return None
    items.sort(key=lambda item: (item.due, str(item.title)))
    return DueSoon(items=items[:DUE_LIMIT], more=len(items) > DUE_LIMIT, today=today)


@bp.route("/")
@login_required
def dashboard():
    if current_user.is_staff:
        from flask import redirect
        return redirect(url_for("admin.index"))
    return render_template("portal/dashboard.html", buttons=dashboard_buttons(), due=due_soon(),
                           due_days=DUE_DAYS)


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
