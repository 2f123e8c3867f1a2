"""The profile editor's rules: what a profile may grant (the catalogue the installed modules declare),
reading a profile, checking a submitted form against the catalogue, saving it in one transaction and
describing the change for the audit log.

Nothing a module does not declare is ever saved: an unknown module, action or button, a scope other
than the declared ones, or a button of a module the profile does not enable refuses the whole form.
Grants of modules that are not installed (switched off in the configuration, or removed) are kept as
they are: the editor neither shows them as rows nor drops them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from peewee import JOIN, fn

from ..models import SCOPES, Button, Company, Contact, Profile, ProfileButton, ProfileModule

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: How many contacts of a profile its page lists (the total is always shown).
CONTACTS_SHOWN = 100

SCOPE_LABELS: dict[str, Any] = {"own": _l("Own records"), "company": _l("Whole company")}
SCOPE_HELP: dict[str, Any] = {
    "own": _l("The contact's own records only."),
    "company": _l("Every record of the contact's company."),
}


@dataclasses.dataclass(frozen=True)
class ActionOption:
    name: str
    label: Any
    explanation: Any


@dataclasses.dataclass(frozen=True)
class ModuleOption:
    """An installed module as the editor offers it."""

    name: str
    label: Any
    description: Any
    icon: str
    actions: tuple[ActionOption, ...]

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.actions)


@dataclasses.dataclass(frozen=True)
class ButtonOption:
    """A dashboard button the editor offers: module-less, or of an installed module."""

    key: str
    id: int
    label: str
    description: str
    icon: str
    module: str | None


@dataclasses.dataclass(frozen=True)
class Catalog:
    """What a profile can grant in this installation, in menu order."""

    modules: dict[str, ModuleOption]
    buttons: dict[str, ButtonOption]

    @classmethod
    def build(cls, registry: Any) -> Catalog:
        """The catalogue of ``registry``'s modules and the buttons they (and the host) offer: one query."""
        modules = {}
        for name, module in registry.modules.items():
            actions = []
            for action in module.actions:
                text = module.action_label(action)
                actions.append(ActionOption(action, text.label, text.explanation))
            modules[name] = ModuleOption(name, module.label, module.description, module.icon, tuple(actions))
        buttons = {}
        for b in Button.select().order_by(Button.key):
            if b.module is None or b.module in modules:
                buttons[b.key] = ButtonOption(b.key, b.id, b.label, b.description, b.icon, b.module)
        return cls(modules, buttons)


@dataclasses.dataclass(frozen=True)
class Grant:
    scope: str
    actions: tuple[str, ...]


@dataclasses.dataclass
class ProfileState:
    """Everything the editor edits of one profile (modules and buttons of installed modules only)."""

    name: str = ""
    label_en: str = ""
    label_it: str = ""
    description: str = ""
    assignable: bool = False
    second_factor_required: bool = False
    grants: dict[str, Grant] = dataclasses.field(default_factory=dict)
    buttons: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Stored:
    """A profile as stored: its editable state plus what the editor keeps but does not edit."""

    state: ProfileState
    rows: dict[str, ProfileModule]
    links: dict[str, ProfileButton]
    #: Actions granted in the database that the module no longer declares (saving drops them).
    undeclared: dict[str, list[str]]
    #: Grants of modules that are not installed, kept untouched.
    kept_modules: list[str]


def load(profile: Profile, catalog: Catalog) -> Stored:
    """The stored state of ``profile`` (two queries)."""
    state = ProfileState(profile.name, profile.label_en or "", profile.label_it or "", profile.description or "",
                         bool(profile.assignable), bool(profile.second_factor_required))
    rows, undeclared, kept = {}, {}, []
    for row in ProfileModule.select().where(ProfileModule.profile == profile.id).order_by(ProfileModule.id):
        option = catalog.modules.get(row.module)
        if option is None:
            kept.append(row.module)
            continue
        rows[row.module] = row
        granted = row.action_set
        state.grants[row.module] = Grant(row.scope, tuple(a for a in option.action_names if a in granted))
        extra = sorted(granted - set(option.action_names))
        if extra:
            undeclared[row.module] = extra
    links = {}
    query = (ProfileButton.select(ProfileButton, Button).join(Button)
             .where(ProfileButton.profile == profile.id).order_by(ProfileButton.position, ProfileButton.id))
    for link in query:
        if link.button.key in catalog.buttons:
            links[link.button.key] = link
            state.buttons.append(link.button.key)
    return Stored(state, rows, links, undeclared, kept)


def fingerprint(state: ProfileState) -> str:
    """A short digest of ``state``: the editor page carries the one it showed, and a save whose
    profile has changed since (another staff member saved meanwhile) is refused."""
    raw = json.dumps(dataclasses.asdict(state), sort_keys=True, default=list)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _text(form: Mapping[str, Any], key: str) -> str:
    return (form.get(key) or "").strip()


def parse(form: Any, catalog: Catalog) -> tuple[ProfileState, list[str]]:
    """The state a submitted editor form asks for, and what is wrong with it (translated messages).

    ``form`` is a werkzeug ``MultiDict``: ``modules`` (the enabled modules), ``scope-<module>``,
    ``actions-<module>`` (repeated), ``buttons`` (repeated, in dashboard order) and the profile's
    own fields. The returned state holds only what the catalogue knows, so the page can be shown
    again with the user's choices.
    """
    errors: list[str] = []
    state = ProfileState(_text(form, "name"), _text(form, "label_en"), _text(form, "label_it"),
                         _text(form, "description"), form.get("assignable") in ("y", "on", "1", "true"),
                         form.get("second_factor_required") in ("y", "on", "1", "true"))
    if not state.name:
        errors.append(_("Name: required."))
    elif not NAME_RE.match(state.name):
        errors.append(_("Name: lowercase letters, digits, “-” and “_” only (at most 64)."))
    if not state.label_en:
        errors.append(_("English label: required."))
    for value, what in ((state.label_en, _("English label")), (state.label_it, _("Italian label"))):
        if len(value) > 100:
            errors.append(_("%(field)s: at most %(max)d characters.", field=what, max=100))
    if len(state.description) > 2000:
        errors.append(_("%(field)s: at most %(max)d characters.", field=_("Description"), max=2000))

    unknown: list[str] = []
    enabled: list[str] = []
    for name in form.getlist("modules"):
        if name not in catalog.modules:
            unknown.append(name)
        elif name not in enabled:
            enabled.append(name)
    for key in form:
        prefix, _sep, name = key.partition("-")
        if prefix in ("scope", "actions") and _sep and name not in catalog.modules:
            unknown.append(name)
    for name in dict.fromkeys(unknown):
        errors.append(_("Unknown module “%(module)s”: it is not installed.", module=name))

    for name, option in catalog.modules.items():
        scope = form.get(f"scope-{name}")
        actions = form.getlist(f"actions-{name}")
        if scope is not None and scope not in SCOPES:
            errors.append(_("%(module)s: “%(scope)s” is not a scope (own records or whole company).",
                            module=option.label, scope=scope))
        bad = [a for a in dict.fromkeys(actions) if a not in option.action_names]
        for action in bad:
            errors.append(_("%(module)s does not offer the action “%(action)s”.", module=option.label,
                            action=action))
        if name not in enabled:
            continue  # a switched-off module's choices are checked above, and not kept
        granted = tuple(a for a in option.action_names if a in actions)
        if scope is None:
            errors.append(_("%(module)s: choose a scope.", module=option.label))
        if "view" not in granted and not bad:
            errors.append(_("%(module)s: “%(action)s” is needed to use the module at all.",
                            module=option.label, action=next(a.label for a in option.actions if a.name == "view")))
        state.grants[name] = Grant(scope if scope in SCOPES else "own", granted)

    for key in dict.fromkeys(form.getlist("buttons")):
        button = catalog.buttons.get(key)
        if button is None:
            errors.append(_("Unknown dashboard button “%(button)s”.", button=key))
            continue
        if button.module is not None and button.module not in state.grants:
            errors.append(_("The button “%(button)s” belongs to %(module)s, which this profile does not enable.",
                            button=button.label, module=catalog.modules[button.module].label))
            continue
        state.buttons.append(key)
    return state, errors


def name_taken(name: str, profile: Profile | None) -> bool:
    """Whether another profile already has ``name``."""
    query = Profile.select().where(Profile.name == name)
    if profile is not None:
        query = query.where(Profile.id != profile.id)
    return query.exists()


def save(profile: Profile | None, stored: Stored | None, state: ProfileState, catalog: Catalog) -> Profile:
    """Write ``state`` to ``profile`` (a new one when ``None``), touching only what changed. Run it
    inside a transaction: the caller's, with the audit entry."""
    if profile is None:
        profile = Profile()
    changed = []
    for field in ("name", "label_en", "label_it", "description", "assignable", "second_factor_required"):
        value = getattr(state, field)
        if field in ("label_it", "description") and not value:
            value = None
        if getattr(profile, field) != value or profile.id is None:
            setattr(profile, field, value)
            changed.append(getattr(Profile, field))
    if profile.id is None:
        profile.save(force_insert=True)
    elif changed:
        profile.save(only=changed)

    rows = stored.rows if stored else {}
    order = list(catalog.modules)
    for name, grant in state.grants.items():
        actions = ",".join(grant.actions)
        position = order.index(name)
        row = rows.get(name)
        if row is None:
            ProfileModule.create(profile=profile, module=name, scope=grant.scope, actions=actions, position=position)
        elif (row.scope, row.actions, row.position) != (grant.scope, actions, position):
            ProfileModule.update(scope=grant.scope, actions=actions, position=position).where(
                ProfileModule.id == row.id).execute()
    gone = [row.id for name, row in rows.items() if name not in state.grants]
    if gone:
        ProfileModule.delete().where(ProfileModule.id.in_(gone)).execute()

    links = stored.links if stored else {}
    dropped = [link.id for key, link in links.items() if key not in state.buttons]
    if dropped:
        ProfileButton.delete().where(ProfileButton.id.in_(dropped)).execute()
    for position, key in enumerate(state.buttons):
        link = links.get(key)
        if link is None:
            ProfileButton.create(profile=profile, button=catalog.buttons[key].id, position=position)
        elif link.position != position:
            ProfileButton.update(position=position).where(ProfileButton.id == link.id).execute()
    return profile


def diff(before: ProfileState | None, after: ProfileState | None) -> dict[str, Any]:
    """What changed between two states, as stored in the audit log (names, not labels: the log is
    read in any language; :func:`describe` turns it into sentences)."""
    old = before or ProfileState()
    new = after or ProfileState()
    out: dict[str, Any] = {}
    fields = {f: [getattr(old, f), getattr(new, f)] for f in ("name", "label_en", "label_it", "description",
                                                             "assignable", "second_factor_required")
              if getattr(old, f) != getattr(new, f)}
    if fields:
        out["fields"] = fields
    modules: dict[str, Any] = {}
    for name in dict.fromkeys([*old.grants, *new.grants]):
        was, now = old.grants.get(name), new.grants.get(name)
        if was is None and now is not None:
            modules[name] = {"enabled": True, "scope": now.scope, "actions": list(now.actions)}
        elif now is None and was is not None:
            modules[name] = {"enabled": False}
        elif was is not None and now is not None and was != now:
            change: dict[str, Any] = {}
            if was.scope != now.scope:
                change["scope"] = [was.scope, now.scope]
            added = [a for a in now.actions if a not in was.actions]
            removed = [a for a in was.actions if a not in now.actions]
            if added:
                change["actions_added"] = added
            if removed:
                change["actions_removed"] = removed
            modules[name] = change
    if modules:
        out["modules"] = modules
    if old.buttons != new.buttons:
        out["buttons"] = [list(old.buttons), list(new.buttons)]
    return out


def describe(details: Mapping[str, Any], registry: Any = None) -> list[str]:
    """Sentences, in the reader's language, saying what an audited profile change did."""
    modules = getattr(registry, "modules", {}) if registry is not None else {}

    def module_label(name: str) -> str:
        module = modules.get(name)
        return str(module.label) if module is not None else name

    def action_labels(name: str, actions: Iterable[str]) -> str:
        module = modules.get(name)
        return ", ".join(str(module.action_label(a).label) if module is not None else a for a in actions)

    def scope_label(scope: str) -> str:
        return str(SCOPE_LABELS.get(scope, scope))

    field_names = {"name": _("Name"), "label_en": _("English label"), "label_it": _("Italian label"),
                   "description": _("Description"), "assignable": _("Assignable by customers' administrators"),
                   "second_factor_required": _("Second factor required")}
    lines = []
    for field, (old, new) in (details.get("fields") or {}).items():
        if field in ("assignable", "second_factor_required"):
            old, new = (_("yes") if v else _("no") for v in (old, new))
        lines.append(_("%(field)s: “%(old)s” → “%(new)s”", field=field_names.get(field, field), old=old or "",
                       new=new or ""))
    for name, change in (details.get("modules") or {}).items():
        label = module_label(name)
        if change.get("enabled") is True:
            lines.append(_("%(module)s enabled: %(scope)s; %(actions)s", module=label,
                           scope=scope_label(change.get("scope", "")),
                           actions=action_labels(name, change.get("actions", ()))))
        elif change.get("enabled") is False:
            lines.append(_("%(module)s disabled", module=label))
        else:
            if "scope" in change:
                lines.append(_("%(module)s: scope %(old)s → %(new)s", module=label,
                               old=scope_label(change["scope"][0]), new=scope_label(change["scope"][1])))
            if change.get("actions_added"):
                lines.append(_("%(module)s: actions added: %(actions)s", module=label,
                               actions=action_labels(name, change["actions_added"])))
            if change.get("actions_removed"):
                lines.append(_("%(module)s: actions removed: %(actions)s", module=label,
                               actions=action_labels(name, change["actions_removed"])))
    if "buttons" in details:
        old_buttons, new_buttons = details["buttons"]
        lines.append(_("Dashboard buttons: %(old)s → %(new)s", old=", ".join(old_buttons) or "—",
                       new=", ".join(new_buttons) or "—"))
    return lines


@dataclasses.dataclass(frozen=True)
class ContactsPage:
    """The first contacts of a profile and how many it has."""

    contacts: list[Contact]
    total: int


def contacts_of(profile: Profile) -> ContactsPage:
    """The contacts that have ``profile``, with their companies: two queries, whatever their number."""
    query = (Contact.select(Contact, Company)
             .join(Company, JOIN.LEFT_OUTER, on=(Contact.company == Company.id))
             .where(Contact.profile == profile.id))
    shown = list(query.order_by(Contact.last_name, Contact.first_name, Contact.id).limit(CONTACTS_SHOWN))
    total = Contact.select(fn.COUNT(Contact.id)).where(Contact.profile == profile.id).scalar() or 0
    return ContactsPage(shown, total)


@dataclasses.dataclass(frozen=True)
class ModuleRow:
    option: ModuleOption
    enabled: bool
    scope: str
    actions: frozenset[str]
    undeclared: Sequence[str]


@dataclasses.dataclass(frozen=True)
class ButtonRow:
    option: ButtonOption
    picked: bool
    module_label: Any


def rows(state: ProfileState, catalog: Catalog, stored: Stored | None = None
         ) -> tuple[list[ModuleRow], list[ButtonRow]]:
    """What the page shows: every installed module (in menu order) and every offered button (the
    picked ones first, in dashboard order)."""
    undeclared = stored.undeclared if stored else {}
    module_rows = []
    for name, option in catalog.modules.items():
        grant = state.grants.get(name)
        module_rows.append(ModuleRow(option, grant is not None, grant.scope if grant else "own",
                                     frozenset(grant.actions) if grant else frozenset({"view"}),
                                     undeclared.get(name, ())))
    keys = [k for k in state.buttons if k in catalog.buttons]
    keys += [k for k in catalog.buttons if k not in keys]
    button_rows = []
    for key in keys:
        option = catalog.buttons[key]
        module = catalog.modules.get(option.module) if option.module else None
        button_rows.append(ButtonRow(option, key in state.buttons, module.label if module else None))
    return module_rows, button_rows
