"""A frozen clock: every "now" of the portal stands still until the test moves it."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager


class FrozenClock:
    """Naive UTC time that only moves when told to.

    Installed (:meth:`installed`, or the ``frozen_clock`` fixture) it is the time of
    ``crm_portal.db.utcnow`` and of everything reading it — timestamps written by the host and the
    modules, the login throttle (``ratelimit.now``), the tickets workflow (``workflow.clock``),
    outbox scheduling — and of the one-time account links (``account.tokens.now``, seconds since
    the epoch). Local calendar dates (``date.today()``, due-date badges) keep the real day.
    """

    def __init__(self, start: dt.datetime | None = None) -> None:
        from crm_portal.db import system_utcnow

        self.now: dt.datetime = start or system_utcnow().replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta | None = None, **kwargs: float) -> dt.datetime:
        """Move forward by ``delta`` or by ``timedelta(**kwargs)`` (``days=2``, ``minutes=1`` …)."""
        self.now += delta if delta is not None else dt.timedelta(**kwargs)
        return self.now

    def set(self, moment: dt.datetime) -> dt.datetime:
        """Jump to ``moment`` (naive UTC), backwards too."""
        self.now = moment
        return self.now

    def timestamp(self) -> float:
        """The frozen time as seconds since the epoch."""
        return self.now.replace(tzinfo=dt.UTC).timestamp()

    @contextmanager
    def installed(self) -> Iterator[FrozenClock]:
        """Make this the portal's clock until the block ends."""
        from crm_portal import db
        from crm_portal.account import tokens

        saved = db.clock, tokens.now
        db.clock, tokens.now = self, self.timestamp
        try:
            yield self
        finally:
            db.clock, tokens.now = saved
