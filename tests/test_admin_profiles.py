"""The profile editor in the admin: it offers exactly what the installed modules declare, saves a
profile whole or not at all (every kind of forged input refused with a message in the staff member's
language), audits each change with a readable diff, refuses to delete a profile in use, and is for
admins only, behind CSRF, with a constant number of queries."""
from __future__ import annotations

import json
import re

import pytest
from conftest import login, make_app, staff_login
from werkzeug.datastructures import MultiDict

from crm_portal.api import Module
from crm_portal.db import db
from crm_portal.models import AuditEntry, Button, Contact, Profile, ProfileButton, ProfileModule
from crm_portal.testing.database import load_demo

EDIT = "/admin/core_profile/edit/?id={}"


def profile_id(app, name: str = "user") -> int:
    with app.app_context(), db.connection_context():
        return Profile.get(Profile.name == name).id


def snapshot(app, pid: int) -> tuple:
    """Everything the editor can change of a profile, plus how many profile changes were audited."""
    with app.app_context(), db.connection_context():
        profile = Profile.get_by_id(pid)
        grants = sorted((g.module, g.scope, g.actions, g.position)
                        for g in ProfileModule.select().where(ProfileModule.profile == pid))
        buttons = [(b.button.key, b.position) for b in ProfileButton.select(ProfileButton, Button).join(Button)
                   .where(ProfileButton.profile == pid).order_by(ProfileButton.position)]
        return ((profile.name, profile.label_en, profile.label_it, profile.description, profile.assignable),
                grants, buttons, AuditEntry.select().where(AuditEntry.object_type == "core_profile").count())


def editor_form(name: str = "user", label_en: str = "Portal user", label_it: str = "Utente",
                modules: dict[str, tuple[str, list[str]]] | None = None, buttons: list[str] | None = None,
                assignable: bool = False, raw: tuple[tuple[str, str], ...] = ()) -> MultiDict:
    """The form the editor page posts: ``modules`` maps each enabled module to (scope, actions);
    ``raw`` adds fields as they are (forged ones)."""
    data: list[tuple[str, str]] = [("name", name), ("label_en", label_en), ("label_it", label_it),
                                   ("description", "Own records in every module."), ("_continue_editing", "1")]
    for module, (scope, actions) in (modules or {}).items():
        data.append(("modules", module))
        data.append((f"scope-{module}", scope))
        data += [(f"actions-{module}", a) for a in actions]
    data += [("buttons", key) for key in buttons or []]
    if assignable:
        data.append(("assignable", "y"))
    data += list(raw)
    return MultiDict(data)


VALID = {"tickets": ("company", ["view", "create", "close"]), "quotes": ("own", ["view", "accept"])}


def test_every_installed_module_is_a_row_with_translated_actions(app, demo, client):
    staff_login(client)
    pid = profile_id(app)
    page = client.get(EDIT.format(pid), headers={"Accept-Language": "en"})
    assert page.status_code == 200
    registry = app.extensions["crm_portal"]
    rows = re.findall(r'<li class="list-group-item profile-module[^"]*" data-module="([a-z_]+)"', page.text)
    assert rows == list(registry.modules)
    # The module's own labels and explanations, the host's scope labels.
    assert "Accept or reject quotes" in page.text
    assert "Decide on quotes that are sent and still valid, with a comment." in page.text
    assert "Own records" in page.text and "Whole company" in page.text
    # The stored grants are shown: tickets on, with exactly the actions granted.
    assert re.search(r'id="module-tickets" name="modules" value="tickets"\s+checked', page.text)
    assert re.search(r'value="close"\s+checked', page.text)
    assert not re.search(r'id="action-tickets-comment_others"[^>]*checked', page.text)
    italian = client.get(EDIT.format(pid), headers={"Accept-Language": "it"})
    for text in ("Accettare o rifiutare i preventivi", "Solo i propri dati", "Tutta l'azienda",
                 "Pulsanti della dashboard",
                 "Contatti con questo profilo", "Assegnabile", "Etichetta inglese"):
        assert text in italian.text, text


def test_a_save_writes_exactly_the_form_and_audits_the_diff(app, demo, client):
    staff_login(client)
    pid = profile_id(app)
    form = editor_form(modules=VALID, buttons=["quotes.list", "tickets.list", "portal.me"], assignable=False)
    response = client.post(EDIT.format(pid), data=form)
    assert response.status_code == 302 and f"id={pid}" in response.location
    (fields, grants, buttons, _count) = snapshot(app, pid)
    assert fields[4] is False  # the shipped "user" profile is assignable
    assert [(g[0], g[1], g[2]) for g in grants] == [("quotes", "own", "view,accept"),
                                                     ("tickets", "company", "view,create,close")]
    assert buttons == [("quotes.list", 0), ("tickets.list", 1), ("portal.me", 2)]
    with app.app_context(), db.connection_context():
        entry = AuditEntry.select().where(AuditEntry.object_type == "core_profile").order_by(AuditEntry.id.desc()).get()
        details = json.loads(entry.details)
    assert entry.action == "admin-updated" and entry.object_id == str(pid) and entry.actor_label == "admin@example.com"
    assert details["fields"] == {"assignable": [True, False]}
    assert details["modules"]["tickets"] == {"scope": ["own", "company"], "actions_removed": ["comment", "export"]}
    assert details["modules"]["faq"] == {"enabled": False}
    assert "quotes" in details["modules"] and details["modules"]["quotes"] == {"actions_removed": ["export"]}
    assert details["buttons"][1] == ["quotes.list", "tickets.list", "portal.me"]

    # The audit log's entry reads as sentences, in the reader's language.
    page = client.get(f"/admin/core_audit/details/?id={entry.id}", headers={"Accept-Language": "en"}).text
    assert "Support requests: scope Own records → Whole company" in page
    assert "Support requests: actions removed: Reply, Export requests" in page
    assert "FAQ disabled" in page
    assert "Dashboard buttons: " in page and "→ quotes.list, tickets.list, portal.me" in page
    italian = client.get(f"/admin/core_audit/details/?id={entry.id}", headers={"Accept-Language": "it"}).text
    assert "Richieste di assistenza: ambito Solo i propri dati → Tutta l&#39;azienda" in italian

    # Saving again unchanged writes nothing and audits nothing.
    before = snapshot(app, pid)
    assert client.post(EDIT.format(pid), data=form).status_code == 302
    assert snapshot(app, pid) == before


def test_create_a_profile(app, demo, client):
    staff_login(client)
    form = editor_form(name="viewer", label_en="Read only", label_it="Sola lettura",
                       modules={"faq": ("own", ["view"])}, buttons=["faq.list"])
    response = client.post("/admin/core_profile/new/", data=form)
    assert response.status_code == 302
    pid = profile_id(app, "viewer")
    fields, grants, buttons, _ = snapshot(app, pid)
    assert fields[:3] == ("viewer", "Read only", "Sola lettura")
    assert [g[:3] for g in grants] == [("faq", "own", "view")] and buttons == [("faq.list", 0)]
    with app.app_context(), db.connection_context():
        entry = AuditEntry.get((AuditEntry.action == "admin-created") & (AuditEntry.object_id == str(pid)))
        assert json.loads(entry.details)["modules"] == {"faq": {"enabled": True, "scope": "own", "actions": ["view"]}}
    assert client.get("/admin/core_profile/new/").status_code == 200


FORGED = {
    "unknown module": ({"modules": {**VALID, "payroll": ("own", ["view"])}},
                       "Unknown module “payroll”: it is not installed.",
                       "Modulo sconosciuto “payroll”: non è installato."),
    "unknown module switched on alone": ({"modules": VALID, "raw": (("modules", "payroll"),)},
                                         "Unknown module “payroll”: it is not installed.",
                                         "Modulo sconosciuto “payroll”: non è installato."),
    "unknown module in a field name": ({"modules": VALID, "raw": (("actions-payroll", "view"),)},
                                       "Unknown module “payroll”: it is not installed.",
                                       "Modulo sconosciuto “payroll”: non è installato."),
    "unknown action": ({"modules": {**VALID, "tickets": ("own", ["view", "exprot"])}},
                       "Support requests does not offer the action “exprot”.",
                       "non prevede l&#39;azione “exprot”."),
    "action of another module": ({"modules": {**VALID, "quotes": ("own", ["view", "upload"])}},
                                 "Quotes does not offer the action “upload”.",
                                 "non prevede l&#39;azione “upload”."),
    "bad scope": ({"modules": {**VALID, "tickets": ("everyone", ["view"])}},
                  "Support requests: “everyone” is not a scope (own records or whole company).",
                  "“everyone” non è un ambito (propri record o tutta l&#39;azienda)."),
    "button of a disabled module": ({"modules": VALID, "buttons": ["tickets.list", "documents.list"]},
                                    "The button “Documents” belongs to Documents, which this profile does not enable.",
                                    "che questo profilo non attiva."),
    "unknown button": ({"modules": VALID, "buttons": ["tickets.list", "nope.nothing"]},
                       "Unknown dashboard button “nope.nothing”.",
                       "Pulsante della dashboard sconosciuto “nope.nothing”."),
    "enabled without view": ({"modules": {**VALID, "quotes": ("own", ["accept"])}},
                             "Quotes: “See quotes” is needed to use the module at all.",
                             "è necessaria per usare il modulo."),
    "no name": ({"name": "", "modules": VALID}, "Name: required.", "Nome: obbligatorio."),
    "name of another profile": ({"name": "company", "modules": VALID},
                                "Name: another profile is already called “company”.",
                                "Nome: esiste già un profilo chiamato “company”."),
}


@pytest.mark.parametrize("case", FORGED)
def test_forged_or_bad_input_is_refused_whole(app, demo, client, case):
    staff_login(client)
    pid = profile_id(app)
    before = snapshot(app, pid)
    overrides, english, italian = FORGED[case]
    for language, message in (("en", english), ("it", italian)):
        response = client.post(EDIT.format(pid), data=editor_form(**overrides), headers={"Accept-Language": language})
        assert response.status_code == 400
        assert message in response.text, (language, response.text[:3000])
        assert 'data-testid="editor-errors"' in response.text
        assert snapshot(app, pid) == before  # nothing saved, nothing audited
    # The same form without the bad part saves (the refusal was about that part only).
    if case not in ("no name", "name of another profile"):
        assert client.post(EDIT.format(pid), data=editor_form(modules=VALID)).status_code == 302


def test_a_failure_while_saving_leaves_nothing_behind(app, demo, client, monkeypatch):
    from crm_portal.admin import profiles

    def broken_audit(*args, **kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(profiles, "audit", broken_audit)
    staff_login(client)
    pid = profile_id(app)
    before = snapshot(app, pid)
    response = client.post(EDIT.format(pid), data=editor_form(modules=VALID, buttons=["quotes.list"]))
    assert response.status_code == 400 and "Failed to update record." in response.text
    assert snapshot(app, pid) == before


def test_a_module_installed_later_is_a_row_switched_off(tmp_path):
    class SiteVisits(Module):
        """A partner module that says nothing about its actions' labels."""

        name = "sitevisits"
        label = "Site visits"
        actions = ("view", "export", "sign_off")

    app = make_app(tmp_path, EXTRA_MODULES=[SiteVisits])
    load_demo(app)
    client = app.test_client()
    staff_login(client)
    pid = profile_id(app)
    page = client.get(EDIT.format(pid), headers={"Accept-Language": "en"}).text
    row = page.split('data-module="sitevisits"')[1].split("</li>")[0]
    assert 'class="list-group-item profile-module is-off" data-module="sitevisits"' in page
    assert 'value="sitevisits" checked' not in row
    # The host's labels for common actions; the action's name, readable, for the rest.
    assert "See records" in row and "Download the list as a CSV spreadsheet." in row and "Sign off" in row
    before = snapshot(app, pid)
    assert client.post(EDIT.format(pid), data=editor_form(modules={"sitevisits": ("own", ["view", "sign_off"])})
                       ).status_code == 302
    assert ("sitevisits", "own", "view,sign_off", list(app.extensions["crm_portal"].modules).index("sitevisits")
            ) in snapshot(app, pid)[1]
    assert snapshot(app, pid) != before
    db.close()


def test_grants_of_modules_not_installed_are_kept(app, demo, client):
    staff_login(client)
    pid = profile_id(app)
    with app.app_context(), db.connection_context():
        ProfileModule.create(profile=pid, module="retired", scope="own", actions="view")
        ProfileModule.update(actions="view,create,exprot").where(
            (ProfileModule.profile == pid) & (ProfileModule.module == "tickets")).execute()
    page = client.get(EDIT.format(pid)).text
    assert "retired" in page.split('data-testid="kept-modules"')[1][:300]
    assert "exprot" in page.split('data-testid="undeclared"')[1][:300]
    assert client.post(EDIT.format(pid), data=editor_form(modules=VALID)).status_code == 302
    grants = {g[0]: g for g in snapshot(app, pid)[1]}
    assert grants["retired"][:3] == ("retired", "own", "view")
    assert grants["tickets"][2] == "view,create,close"  # the typo is gone


def test_a_profile_in_use_cannot_be_deleted(app, demo, client):
    staff_login(client)
    pid = profile_id(app, "company")
    page = client.get(EDIT.format(pid), headers={"Accept-Language": "en"}).text
    assert "give them another profile before deleting it" in page.split('data-testid="delete-refusal"')[1][:300]
    before = snapshot(app, pid)
    for response in (client.post("/admin/core_profile/delete/", data={"id": str(pid)}, follow_redirects=True),
                     client.post("/admin/core_profile/action/", data={"action": "delete", "rowid": str(pid)},
                                 follow_redirects=True)):
        assert "“Company user” is given to 3 contacts: give them another profile before deleting it." in response.text
        assert snapshot(app, pid) == before
    italian = client.post("/admin/core_profile/delete/", data={"id": str(pid)}, follow_redirects=True,
                          headers={"Accept-Language": "it"})
    assert "“Aziendale” è assegnato a 3 contatti" in italian.text

    # Once nobody has it, it can go, and the audit log says what it granted.
    with app.app_context(), db.connection_context():
        Contact.update(profile=None).where(Contact.profile == pid).execute()
    assert 'data-testid="delete-refusal"' not in client.get(EDIT.format(pid)).text
    response = client.post("/admin/core_profile/delete/", data={"id": str(pid)})
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        assert Profile.get_or_none(Profile.id == pid) is None
        assert not ProfileModule.select().where(ProfileModule.profile == pid).exists()
        entry = AuditEntry.get((AuditEntry.action == "admin-deleted") & (AuditEntry.object_id == str(pid)))
        details = json.loads(entry.details)
    assert details["modules"]["tickets"] == {"enabled": False} and details["buttons"][1] == []


def test_the_self_registration_profile_keeps_its_name_and_stays(app, demo, client):
    assert app.config["REGISTRATION_PROFILE"] == "user"
    staff_login(client)
    pid = profile_id(app, "user")
    with app.app_context(), db.connection_context():
        Contact.update(profile=None).where(Contact.profile == pid).execute()
    before = snapshot(app, pid)
    response = client.post(EDIT.format(pid), data=editor_form(name="customer", modules=VALID))
    assert response.status_code == 400 and "(setting REGISTRATION_PROFILE), so it keeps its name." in response.text
    response = client.post("/admin/core_profile/delete/", data={"id": str(pid)}, follow_redirects=True)
    assert "(setting REGISTRATION_PROFILE): it cannot be deleted." in response.text
    assert snapshot(app, pid) == before


def test_csrf_guard(app, demo, client):
    staff_login(client)
    pid = profile_id(app)
    before = snapshot(app, pid)
    response = client.post(EDIT.format(pid), data=editor_form(modules=VALID), csrf=False)
    assert response.status_code == 400
    assert snapshot(app, pid) == before
    response = client.post("/admin/core_profile/new/", data=editor_form(name="x1", modules=VALID), csrf=False)
    assert response.status_code == 400
    with app.app_context(), db.connection_context():
        assert not Profile.select().where(Profile.name == "x1").exists()


def test_only_admins_edit_profiles(app, demo, client):
    pid = profile_id(app)
    before = snapshot(app, pid)
    # Anonymous: the staff login.
    response = client.get(EDIT.format(pid))
    assert response.status_code == 302 and "/admin/login" in response.location
    assert client.post(EDIT.format(pid), data=editor_form(modules=VALID)).status_code == 302
    # A portal contact: nothing there.
    login(client, "anna@acme.example")
    assert client.get(EDIT.format(pid)).status_code == 404
    assert client.post(EDIT.format(pid), data=editor_form(modules=VALID)).status_code == 404
    client.post("/logout")
    # An operator works on customers' requests, never on what customers may do.
    staff_login(client, "operatore@example.com")
    for url in (EDIT.format(pid), "/admin/core_profile/new/", "/admin/core_profile/"):
        assert client.get(url).status_code == 403
    assert client.post(EDIT.format(pid), data=editor_form(modules=VALID)).status_code == 403
    assert client.post("/admin/core_profile/new/", data=editor_form(name="op", modules=VALID)).status_code == 403
    assert client.post("/admin/core_profile/delete/", data={"id": str(pid)}).status_code == 403
    assert snapshot(app, pid) == before
    assert client.get("/admin/core_profile/edit/?id=999999").status_code == 403
    client.post("/admin/logout")
    staff_login(client)
    assert client.get("/admin/core_profile/edit/?id=999999").status_code == 404
    assert client.get("/admin/core_profile/edit/?id=abc").status_code == 404


def test_contacts_of_the_profile_are_listed_with_constant_queries(app, demo, client, queries):
    staff_login(client)
    pid = profile_id(app)
    url = EDIT.format(pid)
    client.get(url)  # warm-up: translations, templates
    with queries:
        page = client.get(url)
    few = queries.count
    emails = re.findall(r'<li class="list-group-item d-flex flex-wrap align-items-center profile-contact" '
                        r'data-contact="(\d+)">', page.text)
    with app.app_context(), db.connection_context():
        expected = [str(c.id) for c in Contact.select().where(Contact.profile == pid)
                    .order_by(Contact.last_name, Contact.first_name, Contact.id)]
        bruno = Contact.get(Contact.email == "bruno@acme.example")
    assert emails == expected and len(expected) == 4
    assert f'href="/admin/core_contact/edit/?id={bruno.id}"' in page.text
    assert f'href="/admin/view-as/{bruno.id}/"' in page.text  # admins may view the portal as each of them
    with app.app_context(), db.connection_context():
        Contact.insert_many([{"first_name": f"N{i}", "last_name": "Molti", "email": f"n{i}@molti.example",
                              "profile": pid, "company": bruno.company_id} for i in range(150)]).execute()
    with queries:
        page = client.get(url)
    assert queries.count == few
    assert 'data-testid="contacts-total">154<' in page.text
    assert page.text.count("profile-contact\"") == 100  # the first hundred by name, and the total


def test_every_built_in_action_has_a_translated_label_and_explanation(app):
    from flask_babel import force_locale

    with app.test_request_context():
        for module in app.extensions["crm_portal"].modules.values():
            for action in module.actions:
                assert action in module.action_labels, (module.name, action)
                text = module.action_label(action)
                assert text.explanation, (module.name, action)
                with force_locale("en"):
                    english = (str(text.label), str(text.explanation))
                with force_locale("it"):
                    italian = (str(text.label), str(text.explanation))
                assert english[0] != italian[0] and english[1] != italian[1], (module.name, action, italian)


def test_action_labels_must_name_declared_actions():
    from crm_portal.api import ActionLabel
    from crm_portal.registry import ModuleError, validate

    class Typo(Module):
        name = "typo"
        label = "Typo"
        actions = ("view", "export")
        action_labels = {"exprot": ActionLabel("Export")}

    class BadAction(Module):
        name = "badaction"
        label = "Bad"
        actions = ("view", "view,export")

    class Fine(Module):
        name = "fine"
        label = "Fine"
        actions = ("view", "sign_off", "close")
        action_labels = {"sign_off": ActionLabel("Sign the report off", "Confirm the visit happened.")}

    with pytest.raises(ModuleError, match="exprot"):
        validate(Typo)
    with pytest.raises(ModuleError, match="invalid action"):
        validate(BadAction)
    fine = validate(Fine)
    assert fine.action_label("sign_off") == ActionLabel("Sign the report off", "Confirm the visit happened.")
    assert str(fine.action_label("close").label) == "Close records"  # the host's text for a common action
    assert fine.action_label("view").explanation is not None


def test_a_save_over_someone_else_s_change_is_refused(app, demo, client):
    staff_login(client)
    pid = profile_id(app)
    page = client.get(EDIT.format(pid))
    assert page.status_code == 200, page.text[-3000:]
    shown = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page.text).group(1)
    # Another staff member saves meanwhile.
    with app.app_context(), db.connection_context():
        Profile.update(label_en="Customer").where(Profile.id == pid).execute()
    before = snapshot(app, pid)
    form = editor_form(modules=VALID, raw=(("fingerprint", shown),))
    response = client.post(EDIT.format(pid), data=form, headers={"Accept-Language": "en"})
    assert response.status_code == 400
    assert "Someone else saved this profile while you were editing it, so nothing was saved." in response.text
    assert f'name="fingerprint" value="{shown}"' in response.text  # still the page's: a retry is refused too
    assert snapshot(app, pid) == before
    # From the page as it is now, the save goes through.
    fresh = re.search(r'name="fingerprint" value="([0-9a-f]+)"', client.get(EDIT.format(pid)).text).group(1)
    assert fresh != shown
    response = client.post(EDIT.format(pid), data=editor_form(modules=VALID, raw=(("fingerprint", fresh),)))
    assert response.status_code == 302
    assert snapshot(app, pid)[0][1] == "Portal user"


def test_a_grants_actions_follow_its_actions_column():
    """``action_set`` is parsed once per value, and again when the actions change."""
    from crm_portal.models import ProfileModule

    grant = ProfileModule(module="tickets", actions="view, create,")
    assert grant.action_set == {"view", "create"} and grant.action_set is grant.action_set
    grant.actions = "view"
    assert grant.action_set == {"view"}
    grant.actions = None
    assert grant.action_set == frozenset()
