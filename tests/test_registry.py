"""Module discovery: folders and entry points, validation, broken plugins named and skipped."""
from __future__ import annotations

import textwrap

import pytest
from conftest import make_app

from crm_portal.api import Column, Module
from crm_portal.registry import ModuleError, validate


def _write_module(folder, name, body):
    pkg = folder / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(body))


GOOD = '''
import peewee as pw
from crm_portal.api import BaseModel, Column, Contact, Module, _l

class Note(BaseModel):
    contact = pw.ForeignKeyField(Contact, index=True)
    text = pw.CharField()
    class Meta:
        table_name = "notes_note"

class NotesModule(Module):
    name = "notes"
    label = _l("Notes")
    models = [Note]
    record = Note
    contact_field = Note.contact
    columns = [Column(Note.text, "Text", search=True)]
'''


def test_folder_module_discovered_and_broken_ones_skipped(tmp_path, caplog):
    folder = tmp_path / "plugins"
    _write_module(folder, "notes", GOOD)
    _write_module(folder, "broken", "raise RuntimeError('boom at import')\n")
    _write_module(folder, "badtable", GOOD.replace('"notes_note"', '"note"').replace('"notes"', '"badtable"'))
    app = make_app(tmp_path, MODULE_FOLDERS=[str(folder)])
    registry = app.extensions["crm_portal"]
    states = {s.name: s for s in registry.states}
    assert states["notes"].status == "enabled"
    assert "notes" in registry.modules
    assert states["broken"].status == "error" and "boom at import" in states["broken"].error
    assert states["badtable"].status == "error"
    assert "must be named 'badtable_<entity>'" in states["badtable"].error
    assert "broken" not in registry.modules and "badtable" not in registry.modules
    assert "module broken" in caplog.text and "boom at import" in caplog.text

    result = app.test_cli_runner().invoke(args=["modules"])
    assert result.exit_code == 0
    assert "broken" in result.output and "error" in result.output and "boom at import" in result.output
    assert "notes" in result.output and "enabled" in result.output


def test_strict_mode_makes_a_broken_module_fatal(tmp_path):
    folder = tmp_path / "plugins"
    _write_module(folder, "broken", "raise RuntimeError('boom')\n")
    with pytest.raises(ModuleError, match="boom"):
        make_app(tmp_path, MODULE_FOLDERS=[str(folder)], MODULES_STRICT=True)


def test_enable_and_disable_settings(tmp_path):
    app = make_app(tmp_path, MODULES_DISABLED=["contacts"])
    states = {s.name: s for s in app.extensions["crm_portal"].states}
    assert states["contacts"].status == "disabled"
    assert "contacts" not in app.extensions["crm_portal"].modules
    assert "/contacts/" not in {r.rule for r in app.url_map.iter_rules()}


@pytest.mark.parametrize("change,reason", [
    ({"name": "Bad-Name"}, "invalid module name"),
    ({"name": "admin"}, "invalid module name"),
    ({"api_version": "2.0"}, "needs API 2.0"),
    ({"api_version": "1.99"}, "needs API 1.99"),
    ({"label": ""}, "label is required"),
    ({"actions": ("edit",)}, "actions must include 'view'"),
    ({"default_sort": "nope"}, "default_sort"),
])
def test_invalid_declarations_are_rejected_with_a_reason(change, reason):
    from crm_portal.models import Contact

    attrs = {"name": "people", "label": "People", "record": Contact, "contact_field": Contact.id,
             "columns": [Column(Contact.email, "Email")]}
    attrs.update(change)
    cls = type("People", (Module,), attrs)
    with pytest.raises(ModuleError, match=reason):
        validate(cls)


def test_relation_column_needs_display_to_search():
    from crm_portal.models import Contact

    cls = type("People", (Module,), {"name": "people", "label": "People", "record": Contact,
                                     "contact_field": Contact.id,
                                     "columns": [Column(Contact.company, "Company", search=True)]})
    with pytest.raises(ModuleError, match="needs display="):
        validate(cls)


def test_record_without_scope_is_rejected():
    from crm_portal.models import Contact

    cls = type("People", (Module,), {"name": "people", "label": "People", "record": Contact})
    with pytest.raises(ModuleError, match="contact_field, company_field or a scope_query"):
        validate(cls)
