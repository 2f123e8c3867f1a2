"""Prepared queries: SQL written once per database, rows read as peewee reads them."""
from __future__ import annotations

import pytest

from crm_portal.auth import _contact_query, load_contact
from crm_portal.db import db
from crm_portal.models import Company, Contact
from crm_portal.prepared import PreparedSelect


def test_the_contact_is_the_plain_querys_with_its_company_and_profile(app, demo, queries):
    with app.app_context(), db.connection_context():
        for contact in Contact.select():
            plain = _contact_query(contact.id).first()
            loaded = load_contact(contact.id)
            assert loaded.__data__ == plain.__data__
            assert loaded.company.__data__ == plain.company.__data__ if plain.company_id else loaded.company is None
            if plain.profile_id:
                assert loaded.profile.__data__ == plain.profile.__data__
        with queries:
            assert load_contact(-1) is None and load_contact(10**9) is None
        assert queries.count == 2


def test_the_sql_is_written_once(app, demo):
    built = []

    def build(value: int):
        built.append(value)
        return Company.select().where(Company.id == value).limit(1)

    prepared = PreparedSelect[Company](build)
    with app.app_context(), db.connection_context():
        names = {c.id: c.name for c in Company.select()}
        for company_id, name in names.items():
            assert prepared.first(company_id).name == name
    assert len(built) == 1


def test_a_query_must_take_its_value_once(app):
    prepared = PreparedSelect[Company](lambda value: Company.select().where(Company.id == 1))
    with app.app_context(), db.connection_context(), pytest.raises(ValueError):
        prepared.first(1)
