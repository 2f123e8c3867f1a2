"""Pooled connections: requests reuse one connection (its settings applied once), a forked child
never uses its parent's, a test database file is never replaced under an open connection, and a
request that finds every connection busy is a 503."""
from __future__ import annotations

import os
import threading

import peewee as pw
import pytest
from conftest import login

from crm_portal.db import close_all, db
from crm_portal.models import Company
from crm_portal.testing import make_app


def _count_opened(monkeypatch) -> list[object]:
    """Every connection the driver opens from now on (SQLite's pragmas are set as it opens)."""
    driver = pw.PostgresqlDatabase if isinstance(db.obj, pw.PostgresqlDatabase) else pw.SqliteDatabase
    opened: list[object] = []
    original = driver._connect

    def counted(self):
        conn = original(self)
        opened.append(conn)
        return conn

    monkeypatch.setattr(driver, "_connect", counted)
    return opened


def test_requests_reuse_one_connection_with_its_settings_applied_once(app, demo, client, monkeypatch):
    login(client, "anna@acme.example")
    close_all()
    opened = _count_opened(monkeypatch)
    for _ in range(3):
        assert client.get("/tickets/").status_code == 200
        assert db.is_closed()  # given back to the pool at the end of each request
    assert len(opened) == 1


def test_a_forked_child_opens_its_own_connection(app):
    with app.app_context():
        db.connect()
        try:
            parent_conn = db.connection()
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: report, and leave without running the parent's cleanup
                try:
                    ok = db.is_closed()
                    db.connect()
                    ok = ok and db.connection() is not parent_conn and Company.select().count() >= 0
                    os.write(write, b"1" if ok else b"0")
                finally:
                    os._exit(0)
            os.close(write)
            answer = os.read(read, 1)
            os.waitpid(pid, 0)
            os.close(read)
            assert answer == b"1"
            assert Company.select().count() >= 0  # the parent's connection still works
            assert db.connection() is parent_conn
        finally:
            db.close()


def test_a_test_database_is_never_replaced_under_an_open_connection(tmp_path):
    first = make_app(tmp_path)
    with first.app_context(), db.connection_context():
        Company.create(name="Written by the first app")
    first_database = db.obj
    assert first_database._connections  # kept open in the first app's pool
    make_app(tmp_path)  # the same file again: the first app's connections are closed first
    assert not first_database._connections and not first_database._in_use
    with db.connection_context():
        assert Company.select().count() == 0


def test_every_connection_busy_is_a_503(tmp_path):
    app = make_app(tmp_path, DATABASE_POOL_SIZE=1, DATABASE_POOL_TIMEOUT=1)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.connection_context():
            taken.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(10)
        response = app.test_client().get("/login", headers={"Accept-Language": "en"})
    finally:
        release.set()
        holder.join()
    assert response.status_code == 503
    assert app.test_client().get("/login").status_code == 200  # free again


@pytest.mark.parametrize("size", [None, 3])
def test_the_pool_size_follows_the_setting(tmp_path, size):
    make_app(tmp_path, DATABASE_POOL_SIZE=size)
    assert db.obj._max_connections == size  # unset: no limit


def test_a_streamed_export_holds_its_connection_until_the_body_is_closed(app, demo, client):
    """The CSV is sent after Flask's teardown: its connection stays with the stream (its rows are
    read through it) and goes back to the pool when the server closes the body, as gunicorn does;
    the thread keeps none afterwards (a restart would leave it dead there)."""
    from werkzeug.test import EnvironBuilder

    login(client, "anna@acme.example")
    close_all()
    cookie = "; ".join(f"{c.key}={c.value}" for c in client._cookies.values())
    environ = EnvironBuilder(path="/tickets/export.csv", base_url="http://portal.test",
                             headers={"Cookie": cookie}).get_environ()
    statuses: list[str] = []
    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses == ["200 OK"]
    assert not db.is_closed() and len(db.obj._in_use) == 1  # the view returned: still the stream's
    assert b"".join(body).startswith("\ufeff".encode())
    body.close()
    assert db.is_closed() and db.obj._in_use == {}  # back in the pool
    assert client.get("/tickets/").status_code == 200


@pytest.fixture
def failing_database(app, tmp_path):
    """The application's database replaced by one that cannot be opened (every query fails as
    with the server down); the real one is bound again afterwards."""
    from crm_portal.db import bind

    app.config["PROPAGATE_EXCEPTIONS"] = False

    def fail() -> None:
        bind(f"sqlite:///{tmp_path / 'missing' / 'folder' / 'portal.db'}")

    yield fail
    bind(app.config["DATABASE_URL"])


def test_error_pages_need_no_database(app, demo, client, failing_database, caplog):
    """While the database is unreachable a signed-in person gets the 503 page in the language of
    the session or the browser (their own, stored in the database, cannot be read), with
    Retry-After, and no traceback; the API answers its own JSON error. Nothing but the outage
    itself is logged as an error: no hook of the error page tried the database again."""
    import logging

    from api_helpers import bearer, make_key

    login(client, "anna@acme.example")
    token = make_key(app).token
    failing_database()
    caplog.set_level(logging.ERROR)
    for path in ("/tickets/", "/tickets/export.csv", "/no-such-page", "/login"):
        response = client.get(path, headers={"Accept-Language": "it"})
        assert response.status_code == 503, (path, response.status_code)
        assert response.headers["Retry-After"].isdigit()
        assert response.mimetype == "text/html"
        assert "Servizio non disponibile" in response.text and "Traceback" not in response.text
    english = client.get("/tickets/", headers={"Accept-Language": "en"})
    assert english.status_code == 503 and "Service unavailable" in english.text
    posted = client.post("/me/request", data={"req-field": "office", "req-message": "x"})
    assert posted.status_code == 503 and posted.headers["Retry-After"].isdigit()
    api = client.get("/api/v1/tickets", headers=bearer(token, **{"Accept-Language": "en"}))
    assert api.status_code == 503 and api.headers["Retry-After"].isdigit()
    assert api.get_json()["code"] == "unavailable"
    assert "database" in api.get_json()["message"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all(m.startswith("database unavailable") for m in errors), errors


def test_an_export_whose_query_finds_the_database_gone_is_a_503(app, demo, client, failing_database, monkeypatch):
    """The export's query runs in the view: an unreachable database is the 503 page, not a
    download the server breaks off before its first byte."""
    from crm_portal.listing import ListQuery

    login(client, "anna@acme.example")
    query_all = ListQuery.all

    def gone(self, req):
        failing_database()  # the database goes away between the permission checks and the query
        return query_all(self, req)

    monkeypatch.setattr(ListQuery, "all", gone)
    response = client.get("/tickets/export.csv", headers={"Accept-Language": "en"})
    assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
    assert 'data-error-code="503"' in response.text  # the page, in anna's language (already loaded)
