"""Italian and English everywhere: every string in the source has an Italian translation."""
from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from conftest import login

ROOT = Path(__file__).resolve().parent.parent
METHOD_MAP = [("**.py", "python"), ("**/templates/**.html", "jinja2"), ("**/templates/**.txt", "jinja2")]
KEYWORDS = {"_": None, "_l": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2),
            "lazy_ngettext": (1, 2), "pgettext": ((1, "c"), 2)}


def _catalogues() -> list[Path]:
    return sorted(p for p in ROOT.glob("**/translations/it/LC_MESSAGES/messages.po")
                  if ".venv" not in p.parts and "examples" not in p.parts)


def _translated() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in _catalogues():
        with path.open("rb") as f:
            for message in read_po(f):
                if message.id and message.string and "fuzzy" not in message.flags:
                    key = message.id if isinstance(message.id, str) else message.id[0]
                    value = message.string if isinstance(message.string, str) else message.string[0]
                    if value:
                        merged[key] = value
    return merged


def _source_messages() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in ("crm_portal", "modules", "themes"):
        for filename, lineno, message, _comments, _context in extract_from_dir(
                ROOT / folder, METHOD_MAP, keywords=KEYWORDS,
                options_map={"**/templates/**": {"extensions": "jinja2.ext.do"}}):
            key = message if isinstance(message, str) else message[0]
            if key:
                found.setdefault(key, f"{folder}/{filename}:{lineno}")
    return found


def test_every_message_has_an_italian_translation():
    translated = _translated()
    missing = {msg: where for msg, where in _source_messages().items() if msg not in translated}
    assert not missing, "untranslated (add them to the Italian catalogue):\n" + "\n".join(
        f"  {where}: {msg!r}" for msg, where in sorted(missing.items(), key=lambda x: x[1]))


def test_catalogues_have_no_fuzzy_entries():
    for path in _catalogues():
        with path.open("rb") as f:
            catalog = read_po(f)
        fuzzy = [m.id for m in catalog if m.id and "fuzzy" in m.flags]
        assert not fuzzy, f"{path}: fuzzy entries {fuzzy[:5]}"


@pytest.mark.parametrize("accept,expected", [("it-IT,it;q=0.9", "Accedi al portale clienti"),
                                             ("en-GB,en;q=0.9", "Log in to the customer portal")])
def test_browser_language_picks_the_page_language(client, app, accept, expected):
    assert expected in client.get("/login", headers={"Accept-Language": accept}).text


def test_user_language_wins_over_browser(app, demo, client):
    login(client, "bruno@acme.example")  # language: it
    page = client.get("/", headers={"Accept-Language": "en"}).text
    assert "Benvenuto, Bruno" in page and 'lang="it"' in page


def test_language_switch_remembers_choice(app, demo, client):
    client.post("/lang/en")
    assert "Log in to the customer portal" in client.get("/login", headers={"Accept-Language": "it"}).text
    assert client.post("/lang/xx").status_code == 404
    login(client, "bruno@acme.example")
    client.post("/lang/en", data={"next": "https://evil.example/"})
    page = client.get("/").text
    assert "Welcome, Bruno" in page  # stored on his contact


def test_default_locale_when_browser_says_nothing(tmp_path):
    from conftest import make_app

    app = make_app(tmp_path, BABEL_DEFAULT_LOCALE="it")
    assert "Accedi al portale clienti" in app.test_client().get("/login").text


def test_catalogues_agree_on_shared_messages():
    """Module catalogues are merged into one: a message translated two ways would show either."""
    seen: dict[str, dict[str, str]] = {}
    for path in _catalogues():
        with path.open("rb") as f:
            for message in read_po(f):
                if message.id and message.string:
                    key = message.id if isinstance(message.id, str) else message.id[0]
                    value = message.string if isinstance(message.string, str) else message.string[0]
                    seen.setdefault(key, {}).setdefault(value, str(path.relative_to(ROOT)))
    clashes = {k: v for k, v in seen.items() if len(v) > 1}
    assert not clashes, f"translated differently in different catalogues: {clashes}"


def test_file_sizes_follow_the_language(app):
    from crm_portal.api import human_size

    with app.test_request_context(headers={"Accept-Language": "it"}):
        assert [human_size(n) for n in (0, 512, 1536, 1572864, 5 * 1024**3)] == \
            ["0 B", "512 B", "1,5 KB", "1,5 MB", "5 GB"]
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert human_size(1572864) == "1.5 MB" and human_size(2048) == "2 KB"
