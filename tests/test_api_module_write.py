"""REST API writes of any module that declares portal forms (``Module.create_form`` /
``edit_form``), shown with a partner-style module loaded from a modules folder: the module's own
form validates, ``record_created`` / ``record_updated`` carry the acting principal, every write is
audited with the integration as actor, If-Match guards updates, and acting as a contact gives
exactly that contact's grants and scope. The built-in modules declare no portal forms besides the
tickets' own wizard (covered by test_api_tickets_write.py)."""
from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest
from api_helpers import bearer, make_key, openapi

from crm_portal import signals
from crm_portal.auth import PortalUser
from crm_portal.db import db
from crm_portal.models import AuditEntry
from crm_portal.scoping import IntegrationPrincipal

NOTES = '''
import peewee as pw
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, DecimalField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from crm_portal.api import BaseModel, Column, Company, Contact, Field, Module, Section, _l, utcnow


class Note(BaseModel):
    contact = pw.ForeignKeyField(Contact, index=True)
    company = pw.ForeignKeyField(Company, null=True, index=True)
    text = pw.CharField(max_length=50)
    done = pw.BooleanField(default=False)
    due = pw.DateField(null=True)
    level = pw.CharField(max_length=10, default="low")
    hours = pw.DecimalField(max_digits=6, decimal_places=2, default=0)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "memos_note"

    def save(self, *args, **kwargs):
        self.updated_at = utcnow()
        return super().save(*args, **kwargs)


class NoteForm(FlaskForm):
    text = StringField("Text", validators=[DataRequired(), Length(max=50)])
    done = BooleanField("Done")
    due = DateField("Due", validators=[Optional()])
    level = SelectField("Level", choices=[SelectChoice("low", "Low"), SelectChoice("high", "High")], default="low")
    hours = DecimalField("Hours", places=2, validators=[Optional()])


class MemosModule(Module):
    name = "memos"
    label = _l("Memos")
    models = [Note]
    record = Note
    contact_field = Note.contact
    company_field = Note.company
    actions = ("view", "create", "edit")
    create_form = NoteForm
    edit_form = NoteForm
    columns = [Column(Note.text, "Text", search=True), Column(Note.done, "Done")]
    detail = [Section("Note", [Field("due", "Due"), Field("level", "Level"), Field("hours", "Hours")])]

    def demo_data(self, ctx):
        from crm_portal.models import Profile, ProfileModule

        for profile in Profile.select():
            company = profile.name == "company"
            ProfileModule.create(profile=profile, module="memos", scope="company" if company else "own",
                                 actions="view,create,edit" if company else "view")
        for key in ("anna", "bruno", "carla"):
            contact = ctx.contacts[key]
            Note.create(contact=contact, company=contact.company_id, text=f"{key}'s note", level="high",
                        hours="1.5", due="2030-01-31")
'''


@pytest.fixture(scope="session")
def memos_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "memos").mkdir()
    (folder / "memos" / "__init__.py").write_text(textwrap.dedent(NOTES))
    return folder


@pytest.fixture
def app(tmp_path, memos_folder):
    from crm_portal.testing import make_app

    application = make_app(tmp_path, MODULE_FOLDERS=[str(memos_folder)], MODULES_STRICT=True)
    yield application
    if not db.is_closed():
        db.close()


def _note_of(app, contact):
    Note = app.extensions["crm_portal"].modules["memos"].record
    with app.app_context(), db.connection_context():
        return Note.get(Note.contact == contact.id)


def _notes(app) -> int:
    Note = app.extensions["crm_portal"].modules["memos"].record
    with app.app_context(), db.connection_context():
        return Note.select().count()


@pytest.fixture
def write(app):
    return bearer(make_key(app, ["memos:read", "memos:write"]).token)


@pytest.fixture
def received():
    got: list[tuple[str, dict]] = []

    def created(sender, **kwargs):
        got.append(("created", kwargs))

    def updated(sender, **kwargs):
        got.append(("updated", kwargs))

    signals.record_created.connect(created)
    signals.record_updated.connect(updated)
    yield got
    signals.record_created.disconnect(created)
    signals.record_updated.disconnect(updated)


def test_only_modules_with_forms_get_write_routes(app):
    rules = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods if r.endpoint.startswith("api_v1.")}
    assert ("/api/v1/memos", "POST") in rules and ("/api/v1/memos/<int(signed=True):record_id>", "PATCH") in rules
    # Companies and contacts have their own write endpoints (crm_portal/rest/companies_contacts.py).
    for name in ("quotes", "documents", "products", "services", "deadlines", "faq"):
        assert not {m for r, m in rules if r.startswith(f"/api/v1/{name}")} & {"POST", "PATCH"}, name


def test_scope_matrix(app, demo, client):
    anna = demo["contacts"]["anna"]
    note = _note_of(app, anna)
    for scopes in (["tickets:write"], ["memos:read"]):
        headers = bearer(make_key(app, scopes).token)
        created = client.post("/api/v1/memos", json={"text": "x", "contact_id": anna.id}, headers=headers)
        changed = client.patch(f"/api/v1/memos/{note.id}", json={"text": "y"}, headers=headers)
        assert (created.status_code, changed.status_code) == (403, 403), scopes
        assert "memos:write" in created.get_json()["message"]
    headers = bearer(make_key(app, ["memos:write"]).token)
    new = {"text": "x", "hours": 0, "contact_id": anna.id}
    assert client.post("/api/v1/memos", json=new, headers=headers).status_code == 201
    assert client.patch(f"/api/v1/memos/{note.id}", json={"text": "y"}, headers=headers).status_code == 200


def test_integration_creates_for_a_named_contact(app, demo, client, write, received):
    carla = demo["contacts"]["carla"]
    response = client.post("/api/v1/memos", json={"text": "Call back", "due": "2030-05-01", "done": True, "hours": 2,
                                                  "contact_email": carla.email}, headers=write)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["text"] == "Call back" and body["done"] is True and body["due"] == "2030-05-01"
    assert response.headers["ETag"] and response.headers["Location"].endswith(f"/api/v1/memos/{body['id']}")
    Note = app.extensions["crm_portal"].modules["memos"].record
    with app.app_context(), db.connection_context():
        note = Note.get_by_id(body["id"])
        assert (note.contact_id, note.company_id) == (carla.id, carla.company_id)
        entry = AuditEntry.get((AuditEntry.action == "created") & (AuditEntry.object_id == str(note.id)))
        assert entry.actor_type == "integration" and entry.actor_label == "crm"
    (kind, kwargs), = received
    assert kind == "created" and isinstance(kwargs["user"], IntegrationPrincipal) and kwargs["record"].id == note.id
    missing = client.post("/api/v1/memos", json={"text": "For whom?"}, headers=write)
    assert missing.status_code == 422 and "contact_id" in missing.get_json()["errors"]


def test_the_modules_form_validates_and_nothing_is_written(app, demo, client, write):
    anna = demo["contacts"]["anna"]
    before = _notes(app)
    for body, field in [({"contact_id": anna.id}, "text"), ({"contact_id": anna.id, "text": "x" * 51}, "text"),
                        ({"contact_id": anna.id, "text": "x", "due": "soon"}, "due"),
                        ({"contact_id": anna.id, "text": "x", "colour": "red"}, "colour"),
                        ({"contact_id": anna.id, "text": ["x"]}, "text"),
                        ({"contact_id": anna.id, "text": True}, "text"),
                        ({"contact_id": anna.id, "text": "x", "done": "yes"}, "done"),
                        ({"contact_id": anna.id, "text": "x", "level": "urgent"}, "level"),
                        ({"contact_id": anna.id, "text": "x", "hours": "many"}, "hours"),
                        ({"contact_id": "1", "text": "x"}, "contact_id")]:
        response = client.post("/api/v1/memos", json=body, headers=write)
        assert response.status_code == 422, (body, response.get_json())
        assert field in response.get_json()["errors"], (body, response.get_json())
    # The form accepts no hours, the table does not (NOT NULL): refused, never a server error.
    refused = client.post("/api/v1/memos", json={"contact_id": anna.id, "text": "x"}, headers=write)
    assert refused.status_code == 422 and refused.get_json()["message"]
    bad = client.post("/api/v1/memos", data=b'{"text": ', headers={**write, "Content-Type": "application/json"})
    assert bad.status_code == 422 and bad.get_json()["message"]
    assert _notes(app) == before


def test_acting_as_the_demo_contacts(app, demo, client, write, received):
    anna, bruno, carla = (demo["contacts"][k] for k in ("anna", "bruno", "carla"))
    # anna (company profile: view, create, edit over the company)
    as_anna = {**write, "X-Act-As-Contact": anna.email}
    created = client.post("/api/v1/memos", json={"text": "Mine", "hours": "0.5"}, headers=as_anna)
    assert created.status_code == 201
    assert client.post("/api/v1/memos", json={"text": "x", "contact_id": bruno.id}, headers=as_anna).status_code == 422
    brunos = f"/api/v1/memos/{_note_of(app, bruno).id}"
    assert client.patch(brunos, json={"done": True}, headers=as_anna).status_code == 200
    assert client.patch(f"/api/v1/memos/{_note_of(app, carla).id}", json={"done": True},
                        headers=as_anna).status_code == 404
    assert isinstance(received[0][1]["user"], PortalUser) and received[0][1]["user"].contact_id == anna.id
    # bruno (user profile: view only, own scope)
    as_bruno = {**write, "X-Act-As-Contact": bruno.email}
    assert client.post("/api/v1/memos", json={"text": "x"}, headers=as_bruno).status_code == 403
    assert client.patch(f"/api/v1/memos/{_note_of(app, bruno).id}", json={"done": False},
                        headers=as_bruno).status_code == 403
    assert client.patch(f"/api/v1/memos/{_note_of(app, anna).id}", json={"done": False},
                        headers=as_bruno).status_code == 404
    # carla (company profile at another company)
    as_carla = {**write, "X-Act-As-Contact": carla.email}
    annas, carlas = (f"/api/v1/memos/{_note_of(app, c).id}" for c in (anna, carla))
    assert client.patch(annas, json={"text": "x"}, headers=as_carla).status_code == 404
    assert client.patch(carlas, json={"text": "x"}, headers=as_carla).status_code == 200


def test_patch_is_partial_guarded_by_if_match_and_audited(app, demo, client, write, received):
    note = _note_of(app, demo["contacts"]["anna"])
    url = f"/api/v1/memos/{note.id}"
    etag = client.get(url, headers=write).headers["ETag"]
    stale = client.patch(url, json={"done": True}, headers={**write, "If-Match": '"0000"'})
    assert stale.status_code == 412
    response = client.patch(url, json={"done": True}, headers={**write, "If-Match": etag})
    assert response.status_code == 200, response.get_json()
    kept = response.get_json()
    assert (kept["text"], kept["level"], kept["due"]) == (note.text, "high", "2030-01-31")
    assert Decimal(kept["hours"]) == Decimal("1.5")
    assert kept["done"] is True
    assert response.headers["ETag"] != etag
    assert client.get(url, headers=write).headers["ETag"] == response.headers["ETag"]
    assert client.patch(url, json={"text": "New"}, headers={**write, "If-Match": etag}).status_code == 412
    (kind, kwargs), = received
    assert kind == "updated" and kwargs["changes"] == {"done": (False, True)}
    assert isinstance(kwargs["user"], IntegrationPrincipal)
    with app.app_context(), db.connection_context():
        entry = AuditEntry.get((AuditEntry.action == "updated") & (AuditEntry.object_id == str(note.id)))
        assert entry.actor_type == "integration"
    blank = client.patch(url, json={"text": ""}, headers=write)
    assert blank.status_code == 422 and "text" in blank.get_json()["errors"]
    assert client.get(url, headers=write).get_json()["text"] == note.text


def test_the_write_routes_are_documented(app, client):
    spec = openapi(app, client)
    post = spec["paths"]["/api/v1/memos"]["post"]
    patch = spec["paths"]["/api/v1/memos/{record_id}"]["patch"]
    for op in (post, patch):
        assert op["security"] == [{"bearer": ["memos:write"]}]
        assert {"401", "403", "404", "422"} <= set(op["responses"])
    assert "412" in patch["responses"]
    properties = post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"text", "done", "due", "contact_id", "contact_email"} <= set(properties)
