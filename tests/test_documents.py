"""Documents: visibility rules, downloads, customer uploads and their refusals, admin."""
from __future__ import annotations

import io
import os
from pathlib import Path

from conftest import login, staff_login

from crm_portal.db import db
from crm_portal.models import Contact, OutboxMessage, ProfileModule
from crm_portal.modules.documents.models import Document, Folder

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def _stored(app) -> list[str]:
    folder = Path(app.instance_path) / "uploads" / "documents"
    return sorted(n for n in os.listdir(folder)) if folder.exists() else []


def _titles(client, url="/documents/?per_page=100") -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.text


def test_own_scope_sees_public_own_and_company_wide(app, demo, client):
    login(client, "bruno@acme.example")
    text = _titles(client)
    for visible in ("Manuale utente del gestionale", "Come configurare la VPN", "Contratto di assistenza 2025",
                    "Rapporto intervento server"):
        assert visible in text
    for hidden in ("Verifica backup trimestrale", "Contract summary", "Intervento Initech"):
        assert hidden not in text


def test_company_scope_sees_the_whole_company(app, demo, client):
    login(client, "anna@acme.example")
    text = _titles(client)
    assert "Verifica backup trimestrale" in text and "Rapporto intervento server" in text
    assert "Manuale utente del gestionale" in text
    assert "Contract summary" not in text and "Intervento Initech" not in text


def test_download_counts_and_serves_the_file(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        doc = Document.get(Document.title == "Come configurare la VPN")
        before = doc.download_count
    response = client.get(f"/documents/{doc.id}/download")
    assert response.status_code == 200
    assert response.data.startswith(b"Come configurare la VPN")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "attachment;" in response.headers["Content-Disposition"]
    assert "guida-vpn.txt" in response.headers["Content-Disposition"]
    with app.app_context(), db.connection_context():
        assert Document.get_by_id(doc.id).download_count == before + 1


def test_folder_filter(app, demo, client):
    login(client, "anna@acme.example")
    with app.app_context(), db.connection_context():
        manuals = Folder.get(Folder.label_en == "Manuals")
    text = _titles(client, f"/documents/?f_folder={manuals.id}")
    assert "Manuale utente del gestionale" in text and "Rapporto intervento server" not in text
    assert ">Manuali</option>" in text  # anna reads Italian folder names


def test_sizes_in_the_users_language(app, demo, client):
    with app.app_context(), db.connection_context():
        doc = Document.create(title="Big manual", public=True, stored_name="missing-file-name-size",
                              original_name="big.pdf", size=1536 * 1024)
    login(client, "anna@acme.example")  # Italian
    assert "1,5 MB" in _titles(client) and "1,5 MB" in client.get(f"/documents/{doc.id}").text
    with app.app_context(), db.connection_context():
        Contact.update(language="en").where(Contact.email == "anna@acme.example").execute()
    assert "1.5 MB" in _titles(client) and "1,5 MB" not in _titles(client)


def test_upload_by_customer(app, demo, client):
    login(client, "bruno@acme.example")
    assert client.get("/documents/upload").status_code == 200
    assert 'data-testid="upload-document"' in client.get("/documents/").text
    response = client.post("/documents/upload", data={
        "title": "Log <script>alert(1)</script>", "description": "see attachment",
        "file": (io.BytesIO(PDF), "errore stampante.pdf"),
    }, content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        doc = Document.get(Document.uploaded_by_customer == True)  # noqa: E712
        assert doc.contact_id == demo["contacts"]["bruno"].id
        assert doc.company_id == demo["companies"]["acme"].id
        assert not doc.public and doc.kind == "pdf" and doc.size == len(PDF)
        assert doc.original_name == "errore stampante.pdf"
        mail = OutboxMessage.select().order_by(OutboxMessage.id.desc()).first()
        assert mail.template == "documents_uploaded" and mail.to_address == app.config["SUPPORT_EMAIL"]
        assert "Acme S.p.A." in mail.subject  # the company, looked up before the template renders
        # one email, however many applications connected the module's receiver
        assert OutboxMessage.select().where(OutboxMessage.template == "documents_uploaded").count() == 1
        assert "&lt;script&gt;" in mail.body_html
    detail = client.get(response.headers["Location"])
    assert "Log &lt;script&gt;alert(1)&lt;/script&gt;" in detail.text
    assert "<script>alert(1)" not in detail.text
    # a colleague with company scope sees it; one of another company does not
    client.post("/logout")
    login(client, "carla@globex.example")
    assert client.get(f"/documents/{doc.id}").status_code == 404
    assert client.get(f"/documents/{doc.id}/download").status_code == 404


def test_upload_too_large_is_refused_and_nothing_stored(app, demo, client):
    app.config["UPLOAD_MAX_BYTES"] = 100
    login(client, "bruno@acme.example")
    before_files = _stored(app)
    with app.app_context(), db.connection_context():
        before = Document.select().count()
    response = client.post("/documents/upload", data={
        "title": "Big", "file": (io.BytesIO(b"x" * 101), "big.txt")}, content_type="multipart/form-data")
    assert response.status_code == 413
    assert "troppo grande" in response.text and "is-invalid" in response.text
    assert 'value="Big"' in response.text  # the form keeps what was typed
    assert _stored(app) == before_files
    with app.app_context(), db.connection_context():
        assert Document.select().count() == before


def test_upload_of_refused_type(app, demo, client):
    login(client, "bruno@acme.example")
    before_files = _stored(app)
    response = client.post("/documents/upload", data={
        "title": "Trojan", "file": (io.BytesIO(b"MZ\x90\x00" + b"\x00" * 60), "invoice.pdf")},
        content_type="multipart/form-data")
    assert response.status_code == 415
    assert "non corrisponde" in response.text
    assert _stored(app) == before_files
    with app.app_context(), db.connection_context():
        assert Document.get_or_none(Document.title == "Trojan") is None


def test_upload_form_errors(app, demo, client):
    login(client, "bruno@acme.example")
    response = client.post("/documents/upload", data={"title": "", "file": (io.BytesIO(PDF), "a.pdf")},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and "invalid-feedback" in response.text
    response = client.post("/documents/upload", data={"title": "No file"}, content_type="multipart/form-data")
    assert response.status_code == 400
    with app.app_context(), db.connection_context():
        assert Document.select().where(Document.uploaded_by_customer == True).count() == 0  # noqa: E712


def test_upload_needs_the_action(app, demo, client):
    with app.app_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        ProfileModule.update(actions="view").where((ProfileModule.profile == bruno.profile_id)
                                                  & (ProfileModule.module == "documents")).execute()
    login(client, "bruno@acme.example")
    assert client.get("/documents/upload").status_code == 403
    response = client.post("/documents/upload", data={"title": "x", "file": (io.BytesIO(PDF), "a.pdf")},
                           content_type="multipart/form-data")
    assert response.status_code == 403
    assert 'data-testid="upload-document"' not in client.get("/documents/").text


def test_list_query_count_is_constant(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/documents/?per_page=100")  # the first request fills the process's caches (profiles)
    with queries:
        client.get("/documents/?per_page=100")
    few = queries.count
    with app.app_context(), db.connection_context():
        folder = Folder.select().first()
        for n in range(30):
            Document.create(title=f"Extra {n}", folder=folder, company=demo["companies"]["acme"],
                            stored_name=f"missing-file-name-{n:04d}", original_name="x.pdf", size=n)
    with queries:
        page = client.get("/documents/?per_page=100")
    assert "Extra 29" in page.text
    assert queries.count == few


def add_in_admin(client, company) -> None:
    """Staff (logged in on ``client``) add the PDF "Price list" (listino.pdf) for ``company``."""
    response = client.post("/admin/documents_document/new/", data={
        "title": "Price list", "description": "", "public": "", "company": str(company.id), "contact": "__None",
        "folder": "__None", "product_code": "", "upload": (io.BytesIO(PDF), "listino.pdf"),
    }, content_type="multipart/form-data")
    assert response.status_code == 302


def test_admin_crud_with_file(app, demo, client):
    staff_login(client)
    acme = demo["companies"]["acme"]
    add_in_admin(client, acme)
    with app.app_context(), db.connection_context():
        doc = Document.get(Document.title == "Price list")
        assert doc.kind == "pdf" and doc.original_name == "listino.pdf"
        first_file = doc.stored_name
    assert first_file in _stored(app)
    # a refused file keeps the record as it was
    response = client.post(f"/admin/documents_document/edit/?id={doc.id}", data={
        "title": "Price list 2", "company": str(acme.id), "upload": (io.BytesIO(b"MZ" + b"\x00" * 50), "x.pdf"),
    }, content_type="multipart/form-data")
    with app.app_context(), db.connection_context():
        assert Document.get_by_id(doc.id).title == "Price list"
    response = client.post(f"/admin/documents_document/edit/?id={doc.id}", data={
        "title": "Price list 2", "company": str(acme.id), "upload": (io.BytesIO(b"a;b\n"), "listino.csv"),
    }, content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        doc = Document.get_by_id(doc.id)
        assert doc.title == "Price list 2" and doc.kind == "csv"
    assert first_file not in _stored(app) and doc.stored_name in _stored(app)
    # creating without a file is refused
    client.post("/admin/documents_document/new/", data={"title": "No file", "company": str(acme.id)},
                content_type="multipart/form-data")
    with app.app_context(), db.connection_context():
        assert Document.get_or_none(Document.title == "No file") is None
    assert client.post("/admin/documents_document/delete/", data={"id": str(doc.id)}).status_code == 302
    assert doc.stored_name not in _stored(app)
    assert client.get("/admin/documents_folder/").status_code == 200


def test_the_list_links_each_title_to_its_download(app, demo, client, queries):
    import re as _re

    login(client, "bruno@acme.example")
    page = client.get("/documents/")
    assert page.status_code == 200
    links = dict(_re.findall(r'href="/documents/(\d+)/download" data-testid="document-download" download>'
                             r'<i[^>]*></i>([^<]+)</a>', page.text))
    with app.app_context(), db.connection_context():
        vpn = Document.get(Document.title == "Come configurare la VPN")
        hidden = Document.get(Document.title == "Intervento Initech")  # another company's
    assert links[str(vpn.id)] == "Come configurare la VPN"
    assert str(hidden.id) not in links and f"/documents/{hidden.id}/" not in page.text
    # The link is the file itself, through the gate; outside scope it is a 404 like any record.
    download = client.get(f"/documents/{vpn.id}/download")
    assert download.status_code == 200 and download.data.startswith(b"Come configurare la VPN")
    assert client.get(f"/documents/{hidden.id}/download").status_code == 404
    # The details stay one click away.
    assert f'href="/documents/{vpn.id}" data-testid="document-details"' in page.text

    def count(url: str) -> int:
        with queries:
            assert client.get(url).status_code == 200
        return queries.count

    assert count("/documents/?per_page=10") == count("/documents/?per_page=100")
