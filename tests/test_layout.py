"""The layout's small things: favicon and web app manifest, where the forced password change leads,
the calendar address messages, the list headers' sort state, Italian labels of the layout."""
from __future__ import annotations

import json
import re
import struct

import pytest
from conftest import login, staff_login

from crm_portal.auth import hash_password
from crm_portal.db import db
from crm_portal.models import Contact

NEW_PASSWORD = "correct horse battery staple"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (fails on anything that is not a PNG)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def links(html: str, rel: str) -> list[str]:
    return re.findall(rf'<link rel="{rel}" href="([^"]+)"', html)


# --- favicon and manifest --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/login", "/"])
def test_every_page_names_an_icon_that_exists(app, demo, client, path):
    if path != "/login":
        login(client, "anna@acme.example")
    page = client.get(path).text
    icons = links(page, "icon") + links(page, "apple-touch-icon")
    assert any(href.endswith(".svg") for href in icons) and any(href.endswith(".png") for href in icons)
    for href in icons:
        response = client.get(href)
        assert response.status_code == 200 and response.mimetype.startswith("image/"), href
        response.close()
    assert re.search(r'<meta name="theme-color" content="#[0-9a-f]{6}">', page)


def test_favicon_ico_answers_without_login(app, demo):
    response = app.test_client().get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/vnd.microsoft.icon"
    assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    response.close()


def test_admin_pages_name_the_icon_too(app, demo, client):
    staff_login(client)
    assert links(client.get("/admin/").text, "icon")


def test_manifest_lets_a_phone_install_the_portal(app, demo):
    anonymous = app.test_client()  # browsers fetch the manifest without cookies
    [href] = links(anonymous.get("/login").text, "manifest")
    response = anonymous.get(href)
    assert response.status_code == 200
    assert response.mimetype == "application/manifest+json"
    manifest = json.loads(response.data)
    assert manifest["name"] == app.config["PORTAL_NAME"]
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/"
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"])
    sizes = set()
    for icon in manifest["icons"]:
        data = anonymous.get(icon["src"]).data
        if icon["type"] == "image/png":
            width, height = png_size(data)
            assert icon["sizes"] == f"{width}x{height}", icon
            sizes.add(width)
    assert {192, 512} <= sizes


def test_theme_colour_follows_the_theme(tmp_path):
    from conftest import make_app

    app = make_app(tmp_path, THEME="contrast")
    manifest = json.loads(app.test_client().get("/manifest.webmanifest").data)
    assert manifest["theme_color"] == app.config["THEME_META"]["theme_color"] != "#0d6efd"


# --- password change --------------------------------------------------------------------------------

def test_forced_password_change_leads_to_the_dashboard(app, demo, client):
    with app.app_context(), db.connection_context():
        Contact.update(password_hash=hash_password("temporary-123"), must_change_password=True) \
            .where(Contact.email == "chiara@acme.example").execute()
    login(client, "chiara@acme.example", "temporary-123")
    response = client.post("/me/password", data={"current_password": "temporary-123", "password": NEW_PASSWORD,
                                                  "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and response.location == "/"
    assert client.get("/").status_code == 200


def test_chosen_password_change_goes_back_to_my_data(app, demo, client):
    login(client, "bruno@acme.example")
    response = client.post("/me/password", data={"current_password": "demo", "password": NEW_PASSWORD,
                                                  "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and response.location == "/me"


# --- calendar address -------------------------------------------------------------------------------

def test_only_a_new_calendar_address_says_the_old_one_stopped(app, demo, client):
    login(client, "carla@globex.example")  # English
    first = client.post("/deadlines/calendar/regenerate", follow_redirects=True).text
    assert "Your calendar address has been created." in first
    assert "no longer works" not in first
    again = client.post("/deadlines/calendar/regenerate", follow_redirects=True).text
    assert "the previous one no longer works" in again


def test_calendar_messages_in_italian(app, demo, client):
    login(client, "anna@acme.example")
    first = client.post("/deadlines/calendar/regenerate", follow_redirects=True).text
    assert "Il tuo indirizzo del calendario è stato creato." in first
    assert "non funziona più" not in first


# --- lists and pages --------------------------------------------------------------------------------

def test_sorted_column_header_carries_aria_sort(app, demo, client):
    login(client, "anna@acme.example")
    page = client.get("/contacts/?sort=last_name&dir=desc").text
    headers = re.findall(r"<th scope=\"col\"([^>]*)>", page)
    assert headers and sum('aria-sort="descending"' in h for h in headers) == 1
    assert not any("aria-sort" in h for h in headers if 'aria-sort="descending"' not in h)
    assert 'aria-sort="ascending"' in client.get("/contacts/?sort=last_name&dir=asc").text
    assert not re.search(r"<th>\s*</th>", page)  # the column search row holds cells, not empty headers


def test_login_fields_say_what_to_fill_in(app, demo):
    page = app.test_client().get("/login").text
    assert re.search(r'<input[^>]+autocomplete="username"[^>]+name="email"|<input[^>]+name="email"[^>]+'
                     r'autocomplete="username"', page)
    assert re.search(r'autocomplete="current-password"[^>]+name="password"|name="password"[^>]+'
                     r'autocomplete="current-password"', page)


def test_italian_layout_has_no_english_labels(app, demo, client):
    login(client, "anna@acme.example")  # Italian
    search = client.get("/faq/search?q=stampa").text
    assert "Cerca nelle domande frequenti" in search and "knowledge base" not in search
    detail = client.get("/contacts/1").text
    assert 'aria-label="Percorso di navigazione"' in detail and 'aria-label="breadcrumb"' not in detail
    dashboard = client.get("/").text
    assert 'title="Lingua"' in dashboard and '<span class="visually-hidden">Lingua:</span> IT' in dashboard
