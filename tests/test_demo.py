"""The demo tells the portal's story: anna (company scope) sees her colleague bruno's records, bruno
sees only his own, carla (Globex) sees nothing of Acme — in every installed module."""
from __future__ import annotations

import pytest

from crm_portal.auth import PortalUser, load_contact
from crm_portal.db import db
from crm_portal.scoping import visible


def _users(app):
    from crm_portal.models import Contact

    return {key: PortalUser(load_contact(Contact.get(Contact.email == email).id))
            for key, email in (("anna", "anna@acme.example"), ("bruno", "bruno@acme.example"),
                               ("carla", "carla@globex.example"))}


def _modules(app):
    return [m for m in app.extensions["crm_portal"].modules.values() if m.record is not None]


def test_every_module_has_demo_records_for_acme_and_globex(app, demo):
    with app.test_request_context(), db.connection_context():
        users = _users(app)
        for module in _modules(app):
            anna_ids = {r.get_id() for r in visible(module, users["anna"])}
            carla_ids = {r.get_id() for r in visible(module, users["carla"])}
            assert anna_ids, f"{module.name}: no demo records for Acme"
            assert carla_ids, f"{module.name}: no demo records for Globex"


@pytest.mark.parametrize("viewer", ["bruno", "carla"])
def test_scopes_in_the_demo(app, demo, viewer):
    acme_id = demo["companies"]["acme"].id
    with app.test_request_context(), db.connection_context():
        users = _users(app)
        for module in _modules(app):
            anna_ids = {r.get_id() for r in visible(module, users["anna"])}
            rows = list(visible(module, users[viewer]))
            if viewer == "bruno":
                assert {r.get_id() for r in rows} <= anna_ids, f"{module.name}: bruno sees what anna doesn't"
                if module.contact_field is not None:
                    field = module.contact_field.name
                    own = [r for r in rows
                           if getattr(r, field + "_id", getattr(r, field, None)) == users["bruno"].contact_id]
                    assert own, f"{module.name}: bruno has no records of his own in the demo"
            elif module.company_field is not None:
                column = module.company_field.column_name
                leaked = [r for r in rows if getattr(r, column, None) == acme_id
                          or getattr(r, module.company_field.name + "_id", None) == acme_id]
                assert not leaked, f"{module.name}: carla sees Acme records {leaked[:3]}"
