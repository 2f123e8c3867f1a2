"""Products: serial visibility, related links, support highlighting, list cost, admin."""
from __future__ import annotations

import datetime as dt

from conftest import login, staff_login

from crm_portal.db import db
from crm_portal.models import Contact, ProfileModule
from crm_portal.modules.products.models import CompanySetting, Product

HIDDEN = "Visibile solo agli amministratori"  # Italian text for bruno and anna


def _product(code):
    return Product.get(Product.code == code)


def _set_scope(email, scope):
    contact = Contact.get(Contact.email == email)
    ProfileModule.update(scope=scope).where((ProfileModule.profile == contact.profile_id)
                                            & (ProfileModule.module == "products")).execute()


def test_serial_shown_to_own_scope_unless_flagged(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        mine = _product("GES-USR")
    page = client.get(f"/products/{mine.id}")
    assert "GES-ACME-5U-7781-2291" in page.text
    with app.app_context(), db.connection_context():
        Product.update(serial_company_only=True).where(Product.id == mine.id).execute()
    page = client.get(f"/products/{mine.id}")
    assert "GES-ACME-5U-7781-2291" not in page.text and HIDDEN in page.text


def test_company_setting_hides_every_serial_from_own_scope(app, demo, client):
    with app.app_context(), db.connection_context():
        CompanySetting.create(company=demo["companies"]["acme"], serial_company_only=True)
        mine = _product("GES-USR")
    login(client, "bruno@acme.example")
    assert "GES-ACME-5U-7781-2291" not in client.get(f"/products/{mine.id}").text
    client.post("/logout")
    login(client, "anna@acme.example")  # company scope sees them all
    assert "GES-ACME-5U-7781-2291" in client.get(f"/products/{mine.id}").text
    with app.app_context(), db.connection_context():
        fw = _product("FW-200")
    assert "FW200-SN-00A1B2C3" in client.get(f"/products/{fw.id}").text


def test_serial_never_in_list_or_export(app, demo, client):
    login(client, "anna@acme.example")
    assert "FW200-SN-00A1B2C3" not in client.get("/products/").text
    assert "FW200-SN-00A1B2C3" not in client.get("/products/export.csv").text


def test_links_to_documents_and_tickets_only_when_available(app, demo, client):
    login(client, "anna@acme.example")
    with app.app_context(), db.connection_context():
        fw = _product("FW-200")
    page = client.get(f"/products/{fw.id}")
    assert "/documents/?s_product_code=FW-200" in page.text
    has_tickets = "tickets.create" in app.view_functions
    assert ("/tickets/" in page.text and f"product={fw.id}" in page.text) == has_tickets
    docs = client.get("/documents/?s_product_code=FW-200")
    assert "Come configurare la VPN" in docs.text and "Manuale utente" not in docs.text


def test_no_documents_link_without_the_documents_module(app, demo, client):
    with app.app_context(), db.connection_context():
        anna = Contact.get(Contact.email == "anna@acme.example")
        ProfileModule.delete().where((ProfileModule.profile == anna.profile_id)
                                     & (ProfileModule.module == "documents")).execute()
        fw = _product("FW-200")
    login(client, "anna@acme.example")
    page = client.get(f"/products/{fw.id}")
    assert page.status_code == 200 and "Firewall FW-200" in page.text
    assert "s_product_code" not in page.text
    assert "products_links" not in app.jinja_env.globals  # the page gets its links from the view


def test_support_end_badges(app, demo, client):
    login(client, "anna@acme.example")
    page = client.get("/products/")
    assert "badge text-bg-danger" in page.text   # antivirus support ended
    assert "badge text-bg-warning" in page.text  # backup ends within 60 days


def test_own_scope_list(app, demo, client):
    login(client, "bruno@acme.example")
    page = client.get("/products/")
    assert "Gestionale ContaPiù" in page.text and "Firewall FW-200" not in page.text


def test_list_query_count_is_constant(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/products/?per_page=100")  # the first request fills the process's caches (profiles)
    with queries:
        client.get("/products/?per_page=100")
    few = queries.count
    with app.app_context(), db.connection_context():
        for n in range(30):
            Product.create(company=demo["companies"]["acme"], contact=demo["contacts"]["chiara"],
                           name=f"Extra {n}", support_end=dt.date.today())
    with queries:
        page = client.get("/products/?per_page=100")
    assert "Extra 29" in page.text and "Chiara Verdi" in page.text
    assert queries.count == few


def test_admin_crud(app, demo, client):
    staff_login(client)
    acme = demo["companies"]["acme"]
    form = {"company": str(acme.id), "contact": "__None", "name": "Switch 24p", "code": "SW-24", "version": "",
            "quantity": "3", "serial": "SW-XYZ", "serial_company_only": "y", "support_end": "2030-01-31",
            "notes": ""}
    assert client.post("/admin/products_product/new/", data=form).status_code == 302
    with app.app_context(), db.connection_context():
        product = _product("SW-24")
        assert product.quantity == 3 and product.serial_company_only
    form["quantity"] = "4"
    assert client.post(f"/admin/products_product/edit/?id={product.id}", data=form).status_code == 302
    with app.app_context(), db.connection_context():
        assert _product("SW-24").quantity == 4
    assert client.post("/admin/products_product/delete/", data={"id": str(product.id)}).status_code == 302
    with app.app_context(), db.connection_context():
        assert Product.get_or_none(Product.code == "SW-24") is None
    assert client.post("/admin/products_company_setting/new/",
                       data={"company": str(acme.id), "serial_company_only": "y"}).status_code == 302
