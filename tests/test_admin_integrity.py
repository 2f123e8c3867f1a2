"""Staff writes are all-or-nothing, files follow their rows, exports are safe text, and numbers no
column can hold never reach the database (404 for an id, 400 for a list parameter)."""
from __future__ import annotations

import csv
import io
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import login, staff_login

import crm_portal.audit
from crm_portal.db import db
from crm_portal.models import AuditEntry, Company, Contact
from crm_portal.modules.documents import Document
from crm_portal.modules.quotes import Quote, QuoteLine
from crm_portal.modules.tickets.models import Ticket

HUGE = "99999999999999999999"  # beyond 64 bits
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def _stored(app) -> set[str]:
    folder = Path(app.instance_path) / "uploads" / "documents"
    return set(os.listdir(folder)) if folder.exists() else set()


def _broken_audit(monkeypatch, fail_on: int = 1) -> None:
    """The ``fail_on``-th audit entry of the request fails (after the rows were written)."""
    real = crm_portal.audit.audit
    calls = {"n": 0}

    def audit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= fail_on:
            raise RuntimeError("audit log unavailable")
        return real(*args, **kwargs)

    monkeypatch.setattr(crm_portal.audit, "audit", audit)


def _flat(text: str) -> str:
    return " ".join(text.split())


# --- one transaction per write ------------------------------------------------------------------
def test_failed_create_leaves_nothing(app, demo, client, monkeypatch):
    staff_login(client)
    _broken_audit(monkeypatch)
    response = client.post("/admin/core_company/new/", data={"name": "Half Written S.r.l."})
    assert response.status_code == 200
    assert "Failed to create record" in response.text and "audit log unavailable" in response.text
    with app.app_context(), db.connection_context():
        assert not Company.select().where(Company.name == "Half Written S.r.l.").exists()


def test_failed_create_speaks_italian(app, demo, client, monkeypatch):
    staff_login(client)
    _broken_audit(monkeypatch)
    response = client.post("/admin/core_company/new/", data={"name": "Mezza S.r.l."},
                           headers={"Accept-Language": "it"})
    assert "Impossibile creare la riga. audit log unavailable" in response.text


def test_failed_update_and_delete_change_nothing(app, demo, client, monkeypatch):
    staff_login(client)
    acme = demo["companies"]["acme"]
    _broken_audit(monkeypatch)
    response = client.post(f"/admin/core_company/edit/?id={acme.id}", data={"name": "Renamed"})
    assert "Failed to update record" in response.text
    response = client.post("/admin/core_company/delete/", data={"id": str(acme.id)}, follow_redirects=True)
    assert "Failed to delete record" in response.text
    with app.app_context(), db.connection_context():
        assert Company.get_by_id(acme.id).name == acme.name
        assert Quote.select().where(Quote.company == acme.id).exists()  # nothing cascaded


def test_bulk_delete_is_all_or_nothing(app, demo, client, monkeypatch):
    staff_login(client)
    with app.app_context(), db.connection_context():
        ids = [Company.create(name=f"Bulk {n}").id for n in range(3)]
    _broken_audit(monkeypatch, fail_on=3)  # the third record's audit entry fails
    response = client.post("/admin/core_company/action/", data={"action": "delete", "rowid": [str(i) for i in ids]},
                           follow_redirects=True)
    assert "Failed to perform action" in response.text
    assert "successfully deleted" not in response.text
    with app.app_context(), db.connection_context():
        assert Company.select().where(Company.id.in_(ids)).count() == 3
    monkeypatch.undo()
    client.post("/admin/core_company/action/", data={"action": "delete", "rowid": [str(i) for i in ids]})
    with app.app_context(), db.connection_context():
        assert not Company.select().where(Company.id.in_(ids)).exists()
        assert AuditEntry.select().where(AuditEntry.action == "admin-deleted").count() == 3


def test_bulk_action_rows_and_audit_commit_together(app, demo, client, monkeypatch):
    """A module's own @action runs in the same one transaction: its writes roll back on failure."""
    staff_login(client)
    anna = demo["contacts"]["anna"]
    from crm_portal.account import service

    def invitation_fails(contact):
        Contact.update(role="touched").where(Contact.id == contact.id).execute()
        raise RuntimeError("mail queue unavailable")

    monkeypatch.setattr(service, "send_invitation", invitation_fails)
    response = client.post("/admin/core_contact/action/", data={"action": "invite", "rowid": [str(anna.id)]},
                           follow_redirects=True)
    assert "Failed to perform action" in response.text
    with app.app_context(), db.connection_context():
        assert Contact.get_by_id(anna.id).role != "touched"


def _quote_form(quote: Quote, lines: list[QuoteLine], **changes) -> dict:
    form = {"number": quote.number, "company": str(quote.company_id),
            "contact": str(quote.contact_id) if quote.contact_id else "__None", "subject": quote.subject,
            "date": quote.date.isoformat(), "valid_until": quote.valid_until.isoformat(), "status": quote.status,
            "currency": quote.currency, "notes": quote.notes or ""}
    for n, line in enumerate(lines):
        form.update({f"lines-{n}-id": str(line.id), f"lines-{n}-position": str(line.position),
                     f"lines-{n}-product_code": line.product_code or "", f"lines-{n}-description": line.description,
                     f"lines-{n}-quantity": str(line.quantity), f"lines-{n}-unit_price": str(line.unit_price),
                     f"lines-{n}-discount": str(line.discount), f"lines-{n}-vat_rate": str(line.vat_rate)})
    form.update(changes)
    return form


def test_quote_lines_and_totals_are_one_transaction(app, demo, client, monkeypatch):
    staff_login(client)
    with app.app_context(), db.connection_context():
        quote = Quote.get(Quote.number == "P-2025-001")
        lines = quote.ordered_lines()
        before = (quote.gross_total, [(line.quantity, line.unit_price) for line in lines])

    def totals_fail(self):
        raise RuntimeError("totals unavailable")

    monkeypatch.setattr(Quote, "recompute_totals", totals_fail)
    form = _quote_form(quote, lines, subject="Changed", **{"lines-0-quantity": "50", "lines-1-unit_price": "1"})
    response = client.post(f"/admin/quotes_quote/edit/?id={quote.id}", data=form)
    assert "Failed to update record" in response.text
    with app.app_context(), db.connection_context():
        quote = Quote.get_by_id(quote.id)
        assert quote.subject != "Changed"
        assert (quote.gross_total, [(line.quantity, line.unit_price) for line in quote.ordered_lines()]) == before


@pytest.mark.parametrize("status", ["accepted", "rejected"])
def test_decided_quote_cannot_be_edited(app, demo, client, status):
    staff_login(client)
    with app.app_context(), db.connection_context():
        quote = Quote.get(Quote.number == "P-2025-002")
        Quote.update(status=status).where(Quote.id == quote.id).execute()
        quote = Quote.get_by_id(quote.id)
        lines = quote.ordered_lines()
        before = [(line.description, line.quantity) for line in lines]
    form = _quote_form(quote, lines, subject="Sneaky change", **{"lines-0-quantity": "99"})
    response = client.post(f"/admin/quotes_quote/edit/?id={quote.id}", data=form)
    assert "it can no longer be changed" in _flat(response.text)
    italian = client.post(f"/admin/quotes_quote/edit/?id={quote.id}", data=form, headers={"Accept-Language": "it"})
    assert "non può più essere modificato" in _flat(italian.text)
    with app.app_context(), db.connection_context():
        quote = Quote.get_by_id(quote.id)
        assert quote.subject != "Sneaky change" and quote.status == status
        assert [(line.description, line.quantity) for line in quote.ordered_lines()] == before


def test_sent_quote_is_still_editable(app, demo, client):
    staff_login(client)
    with app.app_context(), db.connection_context():
        quote = Quote.get(Quote.number == "P-2025-002")
        lines = quote.ordered_lines()
    response = client.post(f"/admin/quotes_quote/edit/?id={quote.id}",
                           data=_quote_form(quote, lines, **{"lines-0-quantity": "2"}))
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        assert Quote.get_by_id(quote.id).net_total > Decimal("3500")


# --- files follow their rows, after the commit --------------------------------------------------
def _new_document(app, client, company_id: int, contact_id: int | None = None) -> Document:
    response = client.post("/admin/documents_document/new/", data={
        "title": "Listino", "company": str(company_id), "contact": str(contact_id) if contact_id else "__None",
        "folder": "__None", "upload": (io.BytesIO(PDF), "listino.pdf"),
    }, content_type="multipart/form-data")
    assert response.status_code == 302, response.text[:500]
    with app.app_context(), db.connection_context():
        return Document.select().order_by(Document.id.desc()).first()


def test_failed_file_replacement_keeps_the_old_file(app, demo, client, monkeypatch):
    staff_login(client)
    acme = demo["companies"]["acme"]
    doc = _new_document(app, client, acme.id)
    files_before = _stored(app)
    _broken_audit(monkeypatch)
    response = client.post(f"/admin/documents_document/edit/?id={doc.id}", data={
        "title": "Listino 2", "company": str(acme.id), "upload": (io.BytesIO(b"a;b\n"), "listino.csv"),
    }, content_type="multipart/form-data")
    assert "Failed to update record" in response.text
    assert _stored(app) == files_before  # the old file is there, the new one was not left behind
    with app.app_context(), db.connection_context():
        assert Document.get_by_id(doc.id).stored_name == doc.stored_name
    anna = app.test_client()
    login(anna, "anna@acme.example")
    assert anna.get(f"/documents/{doc.id}/download").status_code == 200


def test_file_replacement_removes_the_old_file_after_commit(app, demo, client):
    staff_login(client)
    acme = demo["companies"]["acme"]
    doc = _new_document(app, client, acme.id)
    response = client.post(f"/admin/documents_document/edit/?id={doc.id}", data={
        "title": "Listino 2", "company": str(acme.id), "upload": (io.BytesIO(b"a;b\n"), "listino.csv"),
    }, content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        new_name = Document.get_by_id(doc.id).stored_name
    assert new_name in _stored(app) and doc.stored_name not in _stored(app)


def test_failed_delete_keeps_the_file(app, demo, client, monkeypatch):
    staff_login(client)
    doc = _new_document(app, client, demo["companies"]["acme"].id)
    _broken_audit(monkeypatch)
    client.post("/admin/documents_document/delete/", data={"id": str(doc.id)})
    assert doc.stored_name in _stored(app)
    monkeypatch.undo()
    client.post("/admin/documents_document/delete/", data={"id": str(doc.id)})
    assert doc.stored_name not in _stored(app)


def test_deleting_a_company_removes_the_files_of_its_documents(app, demo, client):
    staff_login(client)
    with app.app_context(), db.connection_context():
        company = Company.create(name="Short Lived S.p.A.")
    doc = _new_document(app, client, company.id)
    assert doc.stored_name in _stored(app)
    response = client.post("/admin/core_company/delete/", data={"id": str(company.id)})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        assert Document.get_or_none(Document.id == doc.id) is None
    assert doc.stored_name not in _stored(app)


def test_contact_with_tickets_is_never_deleted(app, demo, client):
    staff_login(client)
    anna = demo["contacts"]["anna"]
    with app.app_context(), db.connection_context():
        tickets = Ticket.select().where(Ticket.contact == anna.id).count()
    assert tickets > 0
    response = client.post("/admin/core_contact/delete/", data={"id": str(anna.id)}, follow_redirects=True)
    assert "switch off their portal access" in _flat(response.text)
    italian = client.post("/admin/core_contact/delete/", data={"id": str(anna.id)}, follow_redirects=True,
                          headers={"Accept-Language": "it"})
    assert "disattiva" in _flat(italian.text).lower()
    # nor in a bulk delete, which keeps every selected contact
    bruno = demo["contacts"]["bruno"]
    with app.app_context(), db.connection_context():
        lonely = Contact.create(first_name="No", last_name="Tickets", email="none@acme.example")
    client.post("/admin/core_contact/action/",
                data={"action": "delete", "rowid": [str(lonely.id), str(anna.id), str(bruno.id)]})
    with app.app_context(), db.connection_context():
        assert Contact.get_or_none(Contact.id == anna.id) is not None
        assert Contact.get_or_none(Contact.id == lonely.id) is not None
        assert Ticket.select().where(Ticket.contact == anna.id).count() == tickets


def test_contact_without_tickets_goes_with_their_private_documents_and_files(app, demo, client):
    staff_login(client)
    acme = demo["companies"]["acme"]
    with app.app_context(), db.connection_context():
        contact = Contact.create(first_name="Temp", last_name="Worker", email="temp@acme.example", company=acme.id)
    doc = _new_document(app, client, acme.id, contact.id)
    response = client.post("/admin/core_contact/delete/", data={"id": str(contact.id)})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        assert Contact.get_or_none(Contact.id == contact.id) is None
        # deleted with the contact, never turned into a document of the whole company
        assert Document.get_or_none(Document.id == doc.id) is None
    assert doc.stored_name not in _stored(app)


# --- exports ------------------------------------------------------------------------------------
def _csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.status_code
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_ticket_queue_export_is_plain_safe_text(app, demo, client):
    with app.app_context(), db.connection_context():
        ticket = Ticket.select().order_by(Ticket.id).first()
        Ticket.update(title='=HYPERLINK("http://evil.example","x")', requester_name="@SUM(A1)").where(
            Ticket.id == ticket.id).execute()
    staff_login(client)
    rows = _csv(client.get("/admin/tickets_queue/export/csv/"))
    body = "\n".join(",".join(r) for r in rows)
    assert "<a " not in body and "<span" not in body and "&lt;" not in body
    row = next(r for r in rows if r[0] == ticket.number)  # the number column is a link in the list
    assert '\'=HYPERLINK("http://evil.example","x")' in row and "'@SUM(A1)" in row


def test_contact_export_is_plain_safe_text(app, demo, client):
    bruno = demo["contacts"]["bruno"]
    with app.app_context(), db.connection_context():
        Contact.update(first_name="=1+2", last_name="+39 02 1234").where(Contact.id == bruno.id).execute()
    staff_login(client)
    rows = _csv(client.get("/admin/core_contact/export/csv/"))
    row = next(r for r in rows if "bruno@acme.example" in r)
    assert "'=1+2" in row and "+39 02 1234" in row  # a phone-like number stays as it is


# --- numbers no column can hold -----------------------------------------------------------------
def _substituted(rule, value: str) -> str:
    url = rule.rule
    for name, converter in rule._converters.items():
        replacement = value if type(converter).__name__ in ("IdConverter", "IntegerConverter") else (
            "csv" if name == "export_type" else "x")
        url = re.sub(rf"<[^>]*\b{re.escape(name)}>", replacement, url)
    return url


def _walk(app, client) -> list[str]:
    failures = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint.endswith("static") or "logout" in rule.rule:
            continue
        for path_value in (HUGE, "1"):
            url = _substituted(rule, path_value)
            for query in ("", f"?page={HUGE}", f"?id={HUGE}", f"?per_page={HUGE}", f"?page_size={HUGE}"):
                if path_value == "1" and not query:
                    continue
                response = client.get(url + query)
                response.get_data()
                response.close()
                if response.status_code >= 500:
                    failures.append(f"{response.status_code} {url}{query}")
    return failures


def test_huge_numbers_never_fail_for_a_contact(app, demo, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    login(client, "anna@acme.example")
    assert _walk(app, client) == []


def test_huge_numbers_never_fail_for_staff(app, demo, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    staff_login(client)
    assert _walk(app, client) == []


def test_huge_numbers_in_admin_filters(app, demo, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    staff_login(client)
    admin = app.extensions["admin"][0]
    failures = []
    for view in admin._views:
        filter_args = getattr(view, "_filter_args", None) or {}
        for arg in filter_args:
            for value in (HUGE, f"1,{HUGE}", "3000000000"):
                response = client.get(f"/admin/{view.endpoint}/?flt0_{arg}={value}")
                if response.status_code >= 500 or response.status_code not in (200, 400):
                    failures.append(f"{response.status_code} {view.endpoint} {arg}={value}")
    assert failures == []


def test_huge_numbers_answer_404_or_400(app, demo, client):
    staff_login(client)
    assert client.get(f"/admin/core_company/details/?id={HUGE}").status_code == 404
    assert client.get(f"/admin/quotes_quote/edit/?id={HUGE}").status_code == 404
    assert client.get("/admin/quotes_quote/edit/?id=3000000000").status_code == 404  # beyond an id column
    assert client.post("/admin/core_company/delete/", data={"id": HUGE}).status_code == 404
    assert client.get(f"/admin/core_company/?page={HUGE}").status_code == 400
    assert client.get("/admin/core_company/?page=-1").status_code == 400
    assert client.get(f"/admin/core_company/export/csv/?page={HUGE}").status_code == 400
    assert client.get("/admin/core_company/?page=1").status_code == 200
    assert client.get(f"/admin/tickets_queue/work/{HUGE}/").status_code == 404
    assert client.post("/admin/core_company/action/", data={"action": "delete", "rowid": [HUGE]}).status_code == 400
    # integer filters ("equals", "in list") with numbers their column cannot hold
    downloads = _filter_args(app, "documents_document", Document.download_count)
    assert len(downloads) >= 2
    for arg in downloads:
        assert client.get(f"/admin/documents_document/?flt0_{arg}={HUGE}").status_code == 400
        assert client.get(f"/admin/documents_document/?flt0_{arg}=3000000000").status_code == 400
        assert client.get(f"/admin/documents_document/?flt0_{arg}=5").status_code == 200


def _filter_args(app, endpoint: str, column) -> list[str]:
    view = next(v for v in app.extensions["admin"][0]._views if v.endpoint == endpoint)
    return [arg for arg, (_idx, flt) in view._filter_args.items() if getattr(flt, "column", None) is column
            and "Empty" not in type(flt).__name__]


def test_huge_numbers_in_portal_lists(app, demo, client):
    login(client, "anna@acme.example")
    assert client.get(f"/documents/{HUGE}").status_code == 404
    assert client.get(f"/documents/{HUGE}/download").status_code == 404
    for url in (f"/documents/?f_folder={HUGE}", f"/faq/?f_category={HUGE}", "/documents/?f_folder=3000000000"):
        assert client.get(url).status_code == 200
    export = _csv(client.get(f"/documents/export.csv?f_folder={HUGE}"))
    assert len(export) == 1  # the header: no folder has that id
    # a page beyond the last shows the last page
    with app.app_context(), db.connection_context():
        for n in range(60):
            Contact.create(first_name="Extra", last_name=f"Worker {n:02}", email=f"extra{n}@acme.example",
                           company=demo["companies"]["acme"].id)
    last = client.get("/contacts/?page=999", headers={"Accept-Language": "en"})
    assert _rows(last.text) != _rows(client.get("/contacts/", headers={"Accept-Language": "en"}).text)
    huge = client.get(f"/contacts/?page={HUGE}&per_page={HUGE}", headers={"Accept-Language": "en"})
    assert huge.status_code == 200 and _rows(huge.text) == _rows(last.text)


def _rows(html: str) -> list[str]:
    return re.findall(r"<tr[^>]*>.*?</tr>", html, re.S)


def test_path_ids_beyond_an_id_column_match_no_route(app):
    """Every ``<int:…>`` of the portal and the admin stops at the largest id: a module's own route
    never receives a number its database cannot compare."""
    from werkzeug.exceptions import NotFound

    adapter = app.url_map.bind("portal.test")
    assert adapter.match("/quotes/2147483647")[0] == "quotes.detail"
    for path in (f"/quotes/{HUGE}", "/quotes/2147483648", f"/admin/tickets_queue/work/{HUGE}/"):
        with pytest.raises(NotFound):
            adapter.match(path)
