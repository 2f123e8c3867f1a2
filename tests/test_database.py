"""The database layer: SQLite write transactions start IMMEDIATE on every path (checked on the SQL that
reaches SQLite), lock contention is waited out and retried, and only a real outage is a 503."""
from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator

import peewee as pw
import pytest
from conftest import PG_URL, login, staff_login

from crm_portal.db import PortalSqliteDatabase, close_all, db, is_lock_contention, retry_on_lock
from crm_portal.models import Company

sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="SQLite's locking: the PostgreSQL run has no BEGIN IMMEDIATE")


@pytest.fixture
def sql(monkeypatch) -> Iterator[list[str]]:
    """Every statement SQLite receives on connections opened from now on (sqlite3's trace callback)."""
    statements: list[str] = []
    original = PortalSqliteDatabase._add_conn_hooks

    def traced(self, conn):
        original(self, conn)
        conn.set_trace_callback(statements.append)

    monkeypatch.setattr(PortalSqliteDatabase, "_add_conn_hooks", traced)
    close_all()  # pooled connections were opened before the trace
    yield statements


def _begins(statements: list[str]) -> list[str]:
    return [s.strip().upper() for s in statements if s.strip().upper().startswith(("BEGIN", "SAVEPOINT"))]


@sqlite_only
def test_every_transaction_path_begins_immediate(app, sql):
    with app.app_context(), db.connection_context():
        paths = {
            "proxy atomic": db.atomic,
            "database atomic": db.obj.atomic,
            "proxy transaction": db.transaction,
            "database transaction": db.obj.transaction,
            "proxy savepoint outside a transaction": db.savepoint,
            "database savepoint outside a transaction": db.obj.savepoint,
        }
        for name, open_transaction in paths.items():
            sql.clear()
            with open_transaction():
                Company.create(name=f"Company via {name}")
            assert _begins(sql) == ["BEGIN IMMEDIATE"], name
        sql.clear()
        with db.atomic():
            with db.atomic():  # nested: a savepoint inside the IMMEDIATE transaction
                Company.create(name="Nested")
        begins = _begins(sql)
        assert begins[0] == "BEGIN IMMEDIATE" and begins[1].startswith("SAVEPOINT") and len(begins) == 2


@sqlite_only
def test_request_admin_cli_and_worker_transactions_begin_immediate(app, demo, client, sql):
    from crm_portal.mail import deliver_pending
    from crm_portal.models import OutboxMessage

    login(client, "anna@acme.example")
    sql.clear()
    client.post("/me/request", data=CHANGE)
    assert "BEGIN IMMEDIATE" in _begins(sql) and "BEGIN" not in _begins(sql)

    admin = app.test_client()
    staff_login(admin)
    sql.clear()
    response = admin.post("/admin/core_company/new/", data={"name": "Traced Srl", "country": "IT"})
    assert response.status_code == 302
    assert "BEGIN" not in _begins(sql)

    runner = app.test_cli_runner()
    sql.clear()
    result = runner.invoke(args=["migrate"])
    assert result.exit_code == 0, result.output
    assert "BEGIN" not in _begins(sql)

    with app.app_context(), db.connection_context():
        OutboxMessage.create(to_address="someone@example.com", template="test", language="en",
                             subject="Queued without a kick", body_text="Hello")
        sql.clear()
        deliver_pending()
    savepoints = {s for s in _begins(sql) if s.startswith("SAVEPOINT")}
    assert _begins(sql) and set(_begins(sql)) <= {"BEGIN IMMEDIATE"} | savepoints


def test_lock_contention_is_recognised_and_retried(app):  # app: retry_on_lock asks the database about transactions
    assert is_lock_contention(pw.OperationalError("database is locked"))
    assert not is_lock_contention(pw.OperationalError('near "AS": syntax error'))
    assert not is_lock_contention(pw.OperationalError("unable to open database file"))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise pw.OperationalError("database is locked")
        return "done"

    assert retry_on_lock(flaky, attempts=3, delay=0) == "done" and len(calls) == 3
    calls.clear()
    with pytest.raises(pw.OperationalError):
        retry_on_lock(flaky, attempts=2, delay=0)
    assert len(calls) == 2

    def bug():
        calls.append(1)
        raise pw.OperationalError('near "AS": syntax error')

    calls.clear()
    with pytest.raises(pw.OperationalError):
        retry_on_lock(bug, attempts=3, delay=0)
    assert len(calls) == 1  # a bug is not retried


def _busy_timeout(monkeypatch, milliseconds: int) -> None:
    pragmas = [(k, milliseconds if k == "busy_timeout" else v) for k, v in db.obj._pragmas]
    monkeypatch.setattr(db.obj, "_pragmas", pragmas)
    monkeypatch.setattr(db.obj, "_timeout", milliseconds / 1000)
    close_all()  # pooled connections were opened with the longer timeout


CHANGE = {"req-field": "office", "req-message": "Sede di Bologna"}


def _hold_write_lock(path: str) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


@sqlite_only
def test_a_request_waits_for_a_writer_holding_the_lock(app, demo, client, monkeypatch):
    """Another writer holds the lock longer than the busy timeout: the request is retried and stored."""
    from crm_portal.models import AuditEntry

    _busy_timeout(monkeypatch, 100)  # give up waiting quickly, so the retry is what saves the request
    login(client, "anna@acme.example")
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    other = _hold_write_lock(path)
    threading.Timer(0.15, other.rollback).start()
    with app.app_context(), db.connection_context():
        before = AuditEntry.select().where(AuditEntry.action == "change-requested").count()
    response = client.post("/me/request", data=CHANGE)
    other.close()
    assert response.status_code == 302
    with app.app_context(), db.connection_context():
        assert AuditEntry.select().where(AuditEntry.action == "change-requested").count() == before + 1


@sqlite_only
def test_lock_contention_is_never_the_outage_page(app, demo, client, monkeypatch, caplog):
    _busy_timeout(monkeypatch, 50)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    login(client, "anna@acme.example")
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    other = _hold_write_lock(path)
    try:
        with caplog.at_level(logging.ERROR):
            response = client.post("/me/request", data=CHANGE, headers={"Accept-Language": "en"})
    finally:
        other.rollback()
        other.close()
    assert response.status_code == 500
    assert "cannot reach its database" not in response.text
    assert any(r.exc_info for r in caplog.records)


def test_an_outage_is_logged_with_its_traceback(tmp_path, caplog):
    from conftest import make_app

    from crm_portal.db import bind

    app = make_app(tmp_path)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    bind(f"sqlite:///{tmp_path / 'missing' / 'folder' / 'portal.db'}")
    try:
        with caplog.at_level(logging.ERROR):
            response = app.test_client().get("/login")
    finally:
        bind(app.config["DATABASE_URL"])
    assert response.status_code == 503
    outage = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert outage and outage[0].exc_info is not None


def test_a_request_that_committed_is_not_run_again_on_contention(app, demo):
    """Retrying a whole request would repeat what its first transactions committed: only a request
    that has committed nothing yet is run again."""
    calls = []

    def two_transactions():
        calls.append(1)
        with db.atomic():
            Company.update(city="Bologna").where(Company.name == "Acme S.p.A.").execute()
        if len(calls) == 1:
            raise pw.OperationalError("database is locked")  # the second transaction finds it busy
        return "done"

    def read_then_busy():
        calls.append(2)
        if calls.count(2) == 1:
            raise pw.OperationalError("database is locked")
        return "done"

    app.add_url_rule("/_two", view_func=two_transactions)
    app.add_url_rule("/_busy", view_func=read_then_busy)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    assert client.get("/_two").status_code == 500 and calls == [1]
    assert client.get("/_busy").status_code == 200 and calls == [1, 2, 2]
