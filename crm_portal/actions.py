"""What a profile's actions mean to the staff member granting them: a label and a one-line explanation.

A module describes its own actions with :attr:`crm_portal.api.Module.action_labels`; any action it
leaves undescribed falls back to the host's text for the common ones below, then to its name.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask_babel import lazy_gettext as _l


@dataclasses.dataclass(frozen=True)
class ActionLabel:
    """How the profile editor shows one action of a module: ``label`` (a short verb phrase) and
    ``explanation`` (one line saying what a contact granted it can do). Both are usually lazily
    translated strings (``_l``)."""

    label: Any
    explanation: Any = None


#: The host's text for the actions modules commonly declare.
DEFAULT_ACTION_LABELS: dict[str, ActionLabel] = {
    "view": ActionLabel(_l("See records"), _l("Open the module: its list and each record within the scope.")),
    "create": ActionLabel(_l("Create records"), _l("Add new records.")),
    "edit": ActionLabel(_l("Edit records"), _l("Change existing records.")),
    "delete": ActionLabel(_l("Delete records"), _l("Remove records.")),
    "comment": ActionLabel(_l("Write comments"), _l("Write comments on records.")),
    "close": ActionLabel(_l("Close records"), _l("Mark records as done.")),
    "reopen": ActionLabel(_l("Reopen records"), _l("Open closed records again.")),
    "export": ActionLabel(_l("Export"), _l("Download the list as a CSV spreadsheet.")),
    "accept": ActionLabel(_l("Accept or reject"), _l("Decide on what is proposed.")),
    "approve": ActionLabel(_l("Approve"), _l("Approve what is waiting for approval.")),
    "upload": ActionLabel(_l("Upload files"), _l("Add files.")),
    "download": ActionLabel(_l("Download files"), _l("Download attached files.")),
    "print": ActionLabel(_l("Print records"), _l("Print records or save them as PDF.")),
}


def describe_action(own: Mapping[str, ActionLabel] | None, name: str) -> ActionLabel:
    """The label of action ``name``: the module's own (``own``), else the host's, else its name."""
    found = own.get(name) if own else None
    if found is None:
        found = DEFAULT_ACTION_LABELS.get(name)
    if found is None:
        found = ActionLabel(name.replace("_", " ").capitalize())
    return found
