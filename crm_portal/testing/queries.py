"""Counting the SQL statements a piece of code runs (to keep list pages free of N+1 queries)."""
from __future__ import annotations

import logging
from typing import Any


class QueryCounter(logging.Handler):
    """Counts SQL statements run inside ``with counter:`` (peewee logs each one at DEBUG)::

        with queries:
            client.get("/visits/")
        assert queries.count <= 12
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.queries: list[str] = []

    @property
    def count(self) -> int:
        """How many statements ran in the last ``with`` block."""
        return len(self.queries)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != "peewee":  # "peewee.pool" and the like log no statement
            return
        msg = record.msg
        self.queries.append(msg[0] if isinstance(msg, tuple) else str(msg))

    def __enter__(self) -> QueryCounter:
        self.queries = []
        logger = logging.getLogger("peewee")
        self._level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logger = logging.getLogger("peewee")
        logger.removeHandler(self)
        logger.setLevel(self._level)
