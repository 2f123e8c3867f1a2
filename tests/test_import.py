"""``crm-portal import companies|contacts``: the first load through the sync's upsert, column
mapping, separators and byte-order marks, a dry run that writes nothing, a real run whose
repetition changes nothing, and a non-zero exit code for refused rows."""
from __future__ import annotations

import pytest

from crm_portal.db import db
from crm_portal.models import AuditEntry, Company, Contact, ExternalRef, Integration

COMPANIES = (
    "Codice;Ragione sociale;vat_number;City;email_domain\n"
    "C-1;Wayne Enterprises S.p.A.;IT55500011122;Gotham;wayne.example\n"
    "C-2;Acme S.p.A.;IT01234567890;Milano;\n"  # Acme's VAT number: linked, not created
    "C-3;Città Nuova S.r.l.;;Perugia;\n"
)
CONTACTS = (
    "external_id,first_name,last_name,email,company_external_id,portal_access\n"
    "P-1,Bruce,Wayne,bruce@wayne.example,C-1,yes\n"
    "P-2,Anna,Rossi,anna@acme.example,C-2,\n"
    "P-3,Nobody,Known,nobody@nowhere.example,C-404,\n"
    "P-4,,,not-an-email,,\n"
)


def _run(app, *args: str):
    return app.test_cli_runner().invoke(args=["import", *args])


def _write(tmp_path, name: str, text: str, bom: bool = False):
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return str(path)


def _state(app) -> tuple[int, int, int, int, int]:
    with app.app_context(), db.connection_context():
        return (Company.select().count(), Contact.select().count(), ExternalRef.select().count(),
                AuditEntry.select().count(), Integration.select().count())


def test_dry_run_reports_and_writes_nothing(app, demo, tmp_path):
    path = _write(tmp_path, "companies.csv", COMPANIES, bom=True)
    before = _state(app)
    result = _run(app, "companies", path, "--integration", "crm", "--dry-run",
                  "--map", "Codice=external_id", "--map", "Ragione sociale=name")
    assert result.exit_code == 0, result.output
    assert "dry run, nothing written: created 2, updated 0, unchanged 1, conflict 0, error 0" in result.output
    assert _state(app) == before


def test_real_run_then_nothing_changes(app, demo, tmp_path):
    path = _write(tmp_path, "companies.csv", COMPANIES, bom=True)
    args = ["companies", path, "--integration", "crm", "--map", "Codice=external_id", "--map",
            "Ragione sociale=name"]
    first = _run(app, *args)
    assert first.exit_code == 0 and "created 2, updated 0, unchanged 1" in first.output, first.output
    with app.app_context(), db.connection_context():
        wayne = Company.get(Company.name == "Wayne Enterprises S.p.A.")
        assert wayne.city == "Gotham" and Company.get(Company.name == "Città Nuova S.r.l.").vat_number is None
        refs = {r.external_id: r.record_id for r in ExternalRef.select().where(ExternalRef.type == "company")}
        assert refs["C-2"] == demo["companies"]["acme"].id and refs["C-1"] == wayne.id
    again = _run(app, *args)
    assert "created 0, updated 0, unchanged 3" in again.output, again.output


def test_contacts_with_refused_rows_exit_non_zero(app, demo, tmp_path):
    _run(app, "companies", _write(tmp_path, "c.csv", COMPANIES), "--integration", "crm",
         "--map", "Codice=external_id", "--map", "Ragione sociale=name")
    result = _run(app, "contacts", _write(tmp_path, "p.csv", CONTACTS), "--integration", "crm")
    assert result.exit_code == 1
    assert "ignored column 'portal_access'" in result.output
    assert "line 4 (P-3): error: company_external_id" in result.output
    assert "line 5 (P-4): error:" in result.output
    assert "created 1, updated 0, unchanged 1, conflict 0, error 2" in result.output
    with app.app_context(), db.connection_context():
        bruce = Contact.get(Contact.email == "bruce@wayne.example")
        assert not bruce.portal_access and bruce.company.name == "Wayne Enterprises S.p.A."
        anna = Contact.get(Contact.email == "anna@acme.example")
        assert ExternalRef.get(ExternalRef.external_id == "P-2").record_id == anna.id


@pytest.mark.parametrize(("content", "message"), [
    ("name;city\nX;Y\n", "no external_id column"),
    ("", "the file is empty"),
])
def test_unusable_files_are_refused(app, demo, tmp_path, content, message):
    result = _run(app, "companies", _write(tmp_path, "x.csv", content), "--integration", "crm")
    assert result.exit_code == 2 and message in result.output


def test_not_utf8_is_refused(app, demo, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("external_id;name\nC-1;Città\n".encode("latin-1"))
    result = _run(app, "companies", str(path), "--integration", "crm")
    assert result.exit_code == 2 and "not UTF-8" in result.output
    bad_map = _run(app, "companies", str(path), "--integration", "crm", "--map", "nothing")
    assert bad_map.exit_code == 2 and "CRM_COLUMN=field" in bad_map.output
