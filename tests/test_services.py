"""Services under contract: list, detail, services_for() for the tickets wizard, admin."""
from __future__ import annotations

from decimal import Decimal

from conftest import login, staff_login
from flask import current_app

from crm_portal.api import PortalUser
from crm_portal.auth import profile_grants
from crm_portal.db import db
from crm_portal.models import Contact, ProfileModule
from crm_portal.modules.services import Service, ServiceChoice, ServiceSubcategory


def _user(email):
    return PortalUser(Contact.get(Contact.email == email))


def services_for(user):
    """What the tickets wizard asks: the services module of the application, through the registry."""
    return current_app.extensions["crm_portal"].modules["services"].services_for(user)


def test_services_for_goes_through_the_gate(app, demo):
    with app.test_request_context(), db.connection_context():
        choices = services_for(_user("bruno@acme.example"))
        assert [c.name for c in choices] == ["Assistenza sistemistica", "Assistenza gestionale",
                                             "Manutenzione postazioni di lavoro"]
        assert all(isinstance(c, ServiceChoice) for c in choices)
        first = choices[0]
        assert [name for _, name in first.subcategories] == ["Server", "Rete e firewall", "Posta elettronica",
                                                             "Backup"]
        assert all(ServiceSubcategory.get_by_id(sid).service_id == first.id for sid, _ in first.subcategories)
        assert [c.name for c in services_for(_user("carla@globex.example"))] == ["Help desk"]


def test_services_for_skips_inactive_and_hidden(app, demo):
    with app.test_request_context(), db.connection_context():
        Service.update(active=False).where(Service.name == "Assistenza gestionale").execute()
        names = [c.name for c in services_for(_user("anna@acme.example"))]
        assert "Assistenza gestionale" not in names and "Assistenza sistemistica" in names
        bruno = _user("bruno@acme.example")
        ProfileModule.delete().where((ProfileModule.profile == bruno.contact.profile_id)
                                     & (ProfileModule.module == "services")).execute()
        profile_grants.clear()  # changed and read again in the same request
        assert services_for(_user("bruno@acme.example")) == []


def test_service_choice_validates_ids(app, demo):
    with app.test_request_context(), db.connection_context():
        module = current_app.extensions["crm_portal"].modules["services"]
        bruno = _user("bruno@acme.example")
        mine = services_for(bruno)[0]
        sub_id = mine.subcategories[0][0]
        assert module.service_choice(bruno, mine.id, sub_id) == mine
        assert module.service_choice(bruno, str(mine.id)) == mine
        globex = Service.get(Service.name == "Help desk")
        assert module.service_choice(bruno, globex.id) is None
        foreign_sub = ServiceSubcategory.get(ServiceSubcategory.service == globex.id).id
        assert module.service_choice(bruno, mine.id, foreign_sub) is None
        assert module.service_choice(bruno, "abc") is None


def test_services_for_query_count(app, demo, queries):
    with app.test_request_context(), db.connection_context():
        user = _user("anna@acme.example")
        assert user.grants  # loaded once per request in real use
        with queries:
            services_for(user)
        assert queries.count == 2


def test_list_and_detail(app, demo, client):
    login(client, "anna@acme.example")
    page = client.get("/services/")
    assert page.status_code == 200
    assert "Assistenza sistemistica" in page.text and "Help desk" not in page.text
    assert "72,5" in page.text  # 120 - 47.5 hours left, Italian format
    with app.app_context(), db.connection_context():
        service = Service.get(Service.name == "Assistenza sistemistica")
    detail = client.get(f"/services/{service.id}")
    assert "Rete e firewall" in detail.text and "Sottocategorie" in detail.text


def test_list_query_count_is_constant(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/services/?per_page=100")  # the first request fills the process's caches (profiles)
    with queries:
        client.get("/services/?per_page=100")
    few = queries.count
    with app.app_context(), db.connection_context():
        for n in range(30):
            Service.create(company=demo["companies"]["acme"], name=f"Extra {n}", contracted_hours=Decimal(n))
    with queries:
        page = client.get("/services/?per_page=100")
    assert "Extra 29" in page.text
    assert queries.count == few


def test_admin_crud(app, demo, client):
    staff_login(client)
    acme = demo["companies"]["acme"]
    form = {"company": str(acme.id), "name": "Cloud backup", "description": "", "contract_reference": "C-9",
            "start_date": "", "end_date": "", "contracted_hours": "10", "used_hours": "1.5", "active": "y",
            "position": "0", "subcategories-0-id": "", "subcategories-0-name": "Restore",
            "subcategories-0-position": "0"}
    assert client.post("/admin/services_service/new/", data=form).status_code == 302
    with app.app_context(), db.connection_context():
        service = Service.get(Service.name == "Cloud backup")
        assert [s.name for s in service.subcategories] == ["Restore"]
    form["name"] = "Cloud backup plus"
    form["subcategories-0-id"] = str(service.subcategories[0].id)
    assert client.post(f"/admin/services_service/edit/?id={service.id}", data=form).status_code == 302
    with app.app_context(), db.connection_context():
        assert Service.get_by_id(service.id).name == "Cloud backup plus"
        assert ServiceSubcategory.select().where(ServiceSubcategory.service == service.id).count() == 1
    assert client.post("/admin/services_service/delete/", data={"id": str(service.id)}).status_code == 302
    with app.app_context(), db.connection_context():
        assert Service.get_or_none(Service.id == service.id) is None


def test_detail_lists_subcategories_in_order_with_fixed_queries(app, demo, client, queries):
    login(client, "anna@acme.example")
    with app.app_context(), db.connection_context():
        service = Service.get(Service.name == "Assistenza gestionale")
    client.get(f"/services/{service.id}")  # the first request fills the process's caches (profiles, workflow)
    with queries:
        page = client.get(f"/services/{service.id}")
    few = queries.count
    assert page.text.index("Contabilità") < page.text.index("Magazzino") < page.text.index("Paghe")
    with app.app_context(), db.connection_context():
        for n in range(10):
            ServiceSubcategory.create(service=service, name=f"Extra {n}", position=10 + n)
    with queries:
        page = client.get(f"/services/{service.id}")
    assert "Extra 9" in page.text and queries.count == few
