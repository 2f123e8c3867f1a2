"""Form fields for the admin views of profiles."""
from __future__ import annotations

from flask import current_app
from wtforms import SelectField, SelectMultipleField

from ..models import ACTIONS


def module_choices() -> list[tuple[str, str]]:
    registry = current_app.extensions["crm_portal"]
    return [(name, f"{module.label} ({name})") for name, module in registry.modules.items()]


def action_choices() -> list[tuple[str, str]]:
    registry = current_app.extensions["crm_portal"]
    names = list(ACTIONS)
    for module in registry.modules.values():
        names += [a for a in module.actions if a not in names]
    return [(a, a) for a in names]


class ModuleSelectField(SelectField):
    """A module among the installed ones (a grant for a module not installed stays selectable)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", module_choices)
        super().__init__(*args, **kwargs)

    def pre_validate(self, form):
        if self.data not in {v for v, _ in module_choices()} and self.data != self.object_data:
            raise ValueError(self.gettext("Not a valid choice."))


class ActionsField(SelectMultipleField):
    """Stored as a comma-separated string, edited as a multiple choice."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", action_choices)
        super().__init__(*args, **kwargs)

    def process_data(self, value):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        super().process_data(value)

    def populate_obj(self, obj, name):
        setattr(obj, name, ",".join(self.data or []))
