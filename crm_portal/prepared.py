"""Queries of a fixed shape whose SQL is written once per process and database.

peewee writes a query's SQL anew each time it runs: for the contact loaded on every request
(three tables, forty columns) that is three quarters of the query's cost, the database's work
included. A :class:`PreparedSelect` builds its query once per database, with a marker value for
its one parameter, keeps the SQL, and afterwards only swaps the value and reads the rows through
peewee's own row reader (the same model instances, joined rows attached).
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import peewee as pw

from .db import db

M = TypeVar("M", bound=pw.Model)
#: Stands for the parameter while the SQL is written: an id no row has.
_MARKER = -7_318_205_991_204


class PreparedSelect(Generic[M]):
    """``build(value)`` returns the query for ``value`` (an integer compared with a column);
    :meth:`first` runs it for a value with the SQL written the first time."""

    def __init__(self, build: Callable[[int], pw.ModelSelect]) -> None:
        self._build = build
        self._written: weakref.WeakKeyDictionary[pw.Database, tuple[pw.ModelSelect, str, list[Any], int]] = \
            weakref.WeakKeyDictionary()

    def _prepare(self, database: pw.Database) -> tuple[pw.ModelSelect, str, list[Any], int]:
        query = self._build(_MARKER)
        sql, params = query.sql()
        places = [n for n, value in enumerate(params) if value == _MARKER]
        if len(places) != 1:
            raise ValueError("a prepared query takes its value exactly once")
        written = self._written[database] = (query, sql, list(params), places[0])
        return written

    def first(self, value: int) -> M | None:
        """The first row for ``value``, or None."""
        database = db.obj
        written = self._written.get(database) or self._prepare(database)
        query, sql, params, place = written
        params = params.copy()
        params[place] = int(value)
        cursor = database.execute_sql(sql, params)
        return next(iter(query._get_cursor_wrapper(cursor)), None)
