"""The change log behind ``GET /api/v1/changes``: one row per change of a module's record
(``upsert`` or ``delete``), written in the change's transaction by the receivers of
:mod:`crm_portal.webhook_events`, kept ``CHANGES_KEEP_DAYS`` days (the daily job ``core.prune``).

A reader must never skip a row that commits after it read past it. Rows are therefore read in
``(txid, id)`` order, and on PostgreSQL only rows of transactions older than every transaction
still running (``txid < xmin`` of the reader's snapshot): no row can ever appear before the last
one handed out. SQLite commits one writer at a time (``BEGIN IMMEDIATE``), so its ids already
follow the commits (``txid`` stays 0).

Ids are never given twice (``AUTOINCREMENT`` on SQLite, a sequence on PostgreSQL), and a cursor
past the last id ever given (or, on PostgreSQL, past the transactions started so far) is refused
as expired: it comes from another database or one restored from an older copy, and following it
would silently skip the changes written under the ids it claims to have seen.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from peewee import SQL, OperationalError

from .db import db, is_postgres, utcnow
from .models import ChangeEntry

KINDS = ("upsert", "delete")
#: Rows are pruned this long after a cursor of their time stops being accepted: a row may sort
#: after a cursor yet be a little older (its transaction started first), never by a day.
PRUNE_MARGIN = dt.timedelta(days=1)


class CursorExpired(ValueError):
    """The cursor is older than the log keeps: the reader must resynchronise."""


class CursorAhead(CursorExpired):
    """The cursor points past the last change ever recorded: the database was restored from a
    backup or replaced since it was handed out, so the reader must resynchronise too."""


class CursorInvalid(ValueError):
    """Not a cursor this API handed out."""


def keep_for() -> dt.timedelta:
    return dt.timedelta(days=float(current_app.config["CHANGES_KEEP_DAYS"]))


def record(module: str, record_id: Any, change: str = "upsert") -> None:
    """Log a change of ``module``'s record ``record_id`` (call inside the change's transaction)."""
    assert change in KINDS, change
    try:
        key = int(record_id)
    except (TypeError, ValueError):
        return  # the feed names records by their integer id, as the API's addresses do
    values: dict[Any, Any] = {ChangeEntry.type: module, ChangeEntry.record_id: key, ChangeEntry.change: change,
                              ChangeEntry.at: utcnow()}
    if is_postgres():
        values[ChangeEntry.txid] = SQL("txid_current()")
    ChangeEntry.insert(values).execute()


def prune(now: dt.datetime | None = None) -> int:
    """Forget rows no accepted cursor can reach any more; how many were deleted."""
    cutoff = (now or utcnow()) - keep_for() - PRUNE_MARGIN
    with db.atomic():
        return ChangeEntry.delete().where(ChangeEntry.at < cutoff).execute()


def _last_given() -> tuple[int, int | None]:
    """(the largest id ever given, the first txid not started yet: None on SQLite)."""
    table = ChangeEntry._meta.table_name
    if is_postgres():
        row = db.execute_sql(
            f"SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('{table}', 'id')::regclass), 0), "
            "txid_snapshot_xmax(txid_current_snapshot())").fetchone()
        return int(row[0]), int(row[1])
    biggest = f'SELECT COALESCE(MAX(id), 0) FROM "{table}"'
    try:  # the counter outlives the rows; a table not rebuilt with AUTOINCREMENT yet has none
        row = db.execute_sql(f"SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), "
                             f"({biggest}))").fetchone()
    except OperationalError:  # no sqlite_sequence at all
        row = db.execute_sql(biggest).fetchone()
    return int(row[0]), None


# --- cursors ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """A place in the log: after the row (txid, id); ``at`` says how old the place is."""

    txid: int
    id: int
    at: dt.datetime

    def encode(self) -> str:
        raw = json.dumps([self.txid, self.id, self.at.replace(microsecond=0).isoformat()], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            txid, row_id, at = json.loads(raw)
            for number in (txid, row_id):
                if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 2**63:
                    raise ValueError("number")
            when = dt.datetime.fromisoformat(at)
            if when.tzinfo is not None:
                raise ValueError("zone")
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise CursorInvalid(str(exc)) from exc
        return cls(txid, row_id, when)


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool


def page(types: Iterable[str], since: str | None, limit: int, now: dt.datetime | None = None) -> Page:
    """Up to ``limit`` changes of ``types`` after ``since``, oldest first, in one query.

    Raises :class:`CursorInvalid` or :class:`CursorExpired`. With nothing new, the cursor comes
    back (renewed: an idle reader's cursor does not age out)."""
    now = now or utcnow()
    cursor = Cursor.decode(since) if since else None
    if cursor is not None and cursor.at < now - keep_for():
        raise CursorExpired(since)
    if cursor is not None:
        last_id, next_txid = _last_given()
        if cursor.id > last_id or (next_txid is not None and cursor.txid >= next_txid):
            raise CursorAhead(since)
    wanted = sorted(set(types))
    rows: list[ChangeEntry] = []
    if wanted:
        query = ChangeEntry.select().where(ChangeEntry.type.in_(wanted))
        if cursor is not None:
            query = query.where((ChangeEntry.txid > cursor.txid)
                                | ((ChangeEntry.txid == cursor.txid) & (ChangeEntry.id > cursor.id)))
        if is_postgres():
            # Only transactions that can no longer commit anything before the rows handed out.
            query = query.where(ChangeEntry.txid < SQL("txid_snapshot_xmin(txid_current_snapshot())"))
        rows = list(query.order_by(ChangeEntry.txid, ChangeEntry.id).limit(limit + 1))
    has_more = len(rows) > limit
    rows = rows[:limit]
    items = [{"type": r.type, "id": r.record_id, "change": r.change, "at": r.at} for r in rows]
    if rows:
        last = rows[-1]
        # Read to the end: nothing older is left to lose, the cursor is as fresh as the read.
        next_cursor: str | None = Cursor(last.txid, last.id, last.at if has_more else now).encode()
    elif cursor is not None:
        next_cursor = Cursor(cursor.txid, cursor.id, now).encode()
    else:
        next_cursor = None
    return Page(items, next_cursor, has_more)
