"""The admin in Italian, every page of it: an admin opens every list, create and edit page of every
registered view (built-in and modules', those added later included), reached from the menu, and
submits every create form empty; no label, column, filter, choice, button, placeholder or flash
may be left in English.

What counts as English: a text equal to a message of the catalogues (the portal's, its modules',
Flask-Admin's) that has an Italian translation, or a label made of words from :data:`ENGLISH`.
Record data (table cells, field values) is only compared whole against the messages, and the
``*_en`` columns (English labels on purpose) not at all.
"""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import flask_admin
import peewee as pw
import pytest
from admin_crawl import model_views
from babel.messages.pofile import read_po
from conftest import staff_login

import crm_portal
from crm_portal.db import db
from crm_portal.models import StaffUser

ROOT = Path(crm_portal.__file__).resolve().parent.parent

#: Words of the English labels the admin used to show; none may appear in an Italian label.
ENGLISH = set("""
name first last company contact profile language portal access must change password created updated
update status title number active public label labels description position key module icon role
phone mobile office city country province address notes subject template attempts error sent valid
until gross total net from state states service services open closed response overdue item items
search save cancel delete edit create list filter filters yes add new details selected with
kind done size count uploaded customer customers folder folders version quantity support end
serial only start hours contracted used category categories required final needs color actor types
published order priority requester assigned login user users staff settings setting article articles
document documents deadline deadlines quote quotes product products ticket tickets transition
transitions question questions english italian reference code discount unit price rate lines line
sort view home back reset apply expired invalid period days recipient next taken none true false
""".split()) - {"email", "password", "ticket", "tickets", "login", "staff"}


def _catalogue_files() -> list[Path]:
    found = list(ROOT.glob("crm_portal/**/translations/it/LC_MESSAGES/messages.po"))
    found += list(ROOT.glob("modules/*/translations/it/LC_MESSAGES/messages.po"))
    found.append(Path(flask_admin.__file__).parent / "translations/it/LC_MESSAGES/admin.po")
    return found


def _english_messages() -> set[str]:
    """Every msgid with an Italian translation that differs from it (an English text)."""
    messages: set[str] = set()
    for path in _catalogue_files():
        with path.open("rb") as handle:
            for message in read_po(handle):
                ids = message.id if isinstance(message.id, tuple) else (message.id,)
                strings = message.string if isinstance(message.string, tuple) else (message.string,)
                for msgid, msgstr in zip(ids, strings, strict=False):
                    if msgid and msgstr and msgid != msgstr and "%" not in msgid:
                        messages.add(" ".join(msgid.split()))
    return messages


class _Texts(HTMLParser):
    """What a person reads on a page, split into labels (UI text) and data (cells, values)."""

    SKIP = {"script", "style", "textarea", "pre"}
    VOID = {"input", "br", "img", "meta", "link", "hr", "col", "area", "base", "source", "wbr"}

    def __init__(self, record_fields: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        super().__init__(convert_charrefs=True)
        self.record_fields = record_fields
        self.labels: list[str] = []
        self.data: list[str] = []
        self.json_blobs: list[str] = []
        self._stack: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        for name in ("placeholder", "title", "aria-label"):
            if attributes.get(name):
                self.labels.append(attributes[name])
        if tag == "input" and attributes.get("type") in ("submit", "button", "reset") and attributes.get("value"):
            self.labels.append(attributes["value"])
        if attributes.get("data-confirm"):
            self.labels.append(attributes["data-confirm"])
        if tag not in self.VOID:
            self._stack.append((tag, attributes))
        if tag == "option":
            self._option_value = attributes.get("value", "")

    def handle_endtag(self, tag):
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break

    def handle_data(self, text):
        text = " ".join(text.split())
        if not text:
            return
        tags = [t for t, _ in self._stack]
        if any(t in self.SKIP for t in tags):
            return
        ids = {a.get("id") for _, a in self._stack}
        if ids & {"filter-groups-data", "actions-confirmation-data", "message-data"}:
            self.json_blobs.append(text)
            return
        if ids & {"active-filters-data"}:
            return
        classes = " ".join(a.get("class", "") for _, a in self._stack)
        if re.search(r"\bcol-\w+_en\b", classes):
            return  # English labels stored on purpose
        if "option" in tags and text == getattr(self, "_option_value", None) and re.fullmatch(r"[a-z_]{3,}", text):
            self.labels.append(f"stored value shown: {text}")  # a choice without a label
        elif "td" in tags and not {"b", "th"} & set(tags) or "option" in tags and self._record_select():
            self.data.append(text)
        else:
            self.labels.append(text)

    def _record_select(self) -> bool:
        """Options of a select of related records (companies, contacts …, time zones): record data."""
        for tag, attributes in self._stack:
            if tag == "select":
                return attributes.get("name", "").rpartition("-")[2] in self.record_fields
        return False


def _json_texts(blob: str) -> list[str]:
    texts: list[str] = []

    def walk(value):
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key in ("arg", "type", "index"):
                    continue
                if key == "options":  # [value, label] pairs: the label is what staff read
                    texts.extend(str(pair[1]) for pair in item or ())
                    continue
                if key != "operation" and not (key.isidentifier() and key.islower()):
                    texts.append(key)  # a filter group's name (not an action's: "delete")
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    try:
        walk(json.loads(blob))
    except ValueError:
        texts.append(blob)
    return texts


def english_left(html: str, messages: set[str], ignore: set[str], record_fields: set[str] = frozenset(),  # type: ignore[assignment]
                 check_data: bool = True) -> list[str]:
    """The English texts of an Italian admin page (``ignore``: names that are never translated)."""
    parser = _Texts(record_fields)
    parser.feed(html)
    labels = parser.labels + [t for blob in parser.json_blobs for t in _json_texts(blob)]
    found = []
    for text in labels:
        for name in ignore:
            text = text.replace(name, " ") if len(name.split()) > 1 else text
        text = " ".join(text.split())
        if not text or text in ignore:
            continue
        words = {w.lower() for w in re.findall(r"[A-Za-z]+", text)}
        raw_value = text.startswith("stored value shown: ")
        if raw_value or text in messages or (words & ENGLISH and not _reads_italian(text)):
            found.append(text)
    if check_data:
        found += [text for text in parser.data if text in messages and text not in ignore]
    return sorted(set(found))


def _reads_italian(text: str) -> bool:
    """A mixed text whose English word is a name or code inside an Italian label ("Pagina (endpoint)")."""
    return bool(re.search(r"[àèéìòù]|\b(il|lo|la|gli|le|di|da|del|della|per|con|un|una|nome|etichetta)\b",
                          text, re.IGNORECASE))


def _links(html: str) -> set[str]:
    return {href.replace("&amp;", "&") for href in re.findall(r'href="(/admin/[^"#]*)"', html)}


@pytest.fixture
def italian_admin(app, demo, client):
    with app.app_context(), db.connection_context():
        StaffUser.update(language="it").where(StaffUser.email == "admin@example.com").execute()
    staff_login(client)
    return client


def _record_fields(app) -> set[str]:
    """Fields whose select lists records (foreign keys), or time zones: their options are data."""
    names = {"timezone"}
    for view in model_views(app):
        models = [view.model] + [getattr(info, "model", info) for info in view.inline_models or ()]
        for model in models:
            names.update(f.name for f in model._meta.sorted_fields if isinstance(f, pw.ForeignKeyField))
    return names


def _ignore(app) -> set[str]:
    """Names that are not translated: the portal's name and the languages' own names."""
    return {app.config["PORTAL_NAME"], "English", "Italiano"}


def test_every_admin_page_speaks_italian(app, demo, italian_admin):
    client = italian_admin
    messages = _english_messages()
    assert {"Contacts", "Add Filter"} <= messages  # the catalogues were read
    ignore = _ignore(app)
    home = client.get("/admin/")
    assert home.status_code == 200 and '<html lang="it">' in home.text
    menu = _links(home.text)
    problems: dict[str, list[str]] = {}
    pages = ["/admin/", "/admin/preferences"]
    views = model_views(app)
    assert len(views) >= 20
    for view in views:
        list_url = f"{view.url}/"
        assert list_url in menu, f"{view.endpoint} is not reachable from the admin menu"
        listing = client.get(list_url)
        assert listing.status_code == 200, list_url
        pages.append(list_url)
        if view.can_create:
            pages.append(f"{view.url}/new/")
        edit = sorted(u for u in _links(listing.text) if u.startswith(f"{view.url}/edit/"))
        details = sorted(u for u in _links(listing.text) if u.startswith(f"{view.url}/details/"))
        pages += edit[:1] + details[:1]
        # A view's own pages linked from its list (the ticket queue's work page …): one of each.
        own: dict[str, str] = {}
        for url in sorted(_links(listing.text)):
            rest = url[len(view.url) + 1:] if url.startswith(f"{view.url}/") else ""
            kind = re.sub(r"\d+", "N", rest.split("?")[0])
            if rest and kind and not kind.startswith(("new", "edit", "details", "export", "delete", "action")):
                own.setdefault(kind, url)
        pages += list(own.values())
    # Pages of the menu that are not model views (a module's own admin pages) are read too.
    pages += sorted(u for u in menu if u not in pages and not u.startswith(("/admin/static", "/admin/logout")))
    records = _record_fields(app)
    for url in pages:
        page = client.get(url)
        assert page.status_code == 200, url
        # Details pages show the same values as the lists (checked there), English labels included.
        left = english_left(page.text, messages, ignore, records, check_data="/details/" not in url)
        if left:
            problems[url] = left
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)


def test_every_create_form_refusal_and_flash_speaks_italian(app, demo, italian_admin):
    """An empty create form comes back with its errors, or is saved with a flash: in Italian."""
    client = italian_admin
    messages = _english_messages()
    problems = {}
    for view in model_views(app):
        if not view.can_create:
            continue
        page = client.post(f"{view.url}/new/", data={}, follow_redirects=True)
        assert page.status_code in (200, 400), view.endpoint
        left = english_left(page.text, messages, _ignore(app), _record_fields(app))
        if left:
            problems[view.endpoint] = left
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)


def test_the_check_finds_english(app):
    """The checker itself: an untranslated label, filter or flash is found, an Italian one is not."""
    messages = _english_messages()
    page = ('<html><body><nav><a>Contatti</a></nav><table><tr><th>First Name</th><th>Cognome</th></tr>'
            '<tr><td>Company user</td><td class="col-label_en">Open</td></tr></table>'
            '<div id="filter-groups-data" class="d-none">{"Valid Until": [{"operation": "uguale"}]}</div>'
            '<input placeholder="None"><div class="alert">Record was successfully created.</div>'
            '<label>Pagina (endpoint)</label></body></html>')
    assert english_left(page, messages, set()) == sorted(
        {"First Name", "Valid Until", "None", "Record was successfully created."})
