"""Working hours: deadlines counted in office time (response-time targets, SLAs).

``WORKING_HOURS`` in the configuration describes the office week::

    WORKING_HOURS = {"days": [0, 1, 2, 3, 4],      # Monday = 0
                     "start": "09:00", "end": "18:00",
                     "timezone": "Europe/Rome",
                     "holidays": ["2025-12-25"]}    # ISO dates, local

Every key is optional (the values above, without holidays, are the defaults). All datetimes going in
and out are naive UTC, like every timestamp in the database.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_WORKING_HOURS: dict[str, Any] = {
    "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00", "timezone": "Europe/Rome", "holidays": [],
}


def _time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    hours, _, minutes = str(value).partition(":")
    return dt.time(int(hours), int(minutes or 0))


@dataclasses.dataclass(frozen=True)
class WorkingHours:
    """An office week: working ``days`` (0 = Monday), daily ``start``–``end`` in ``timezone``."""

    days: frozenset[int] = frozenset(range(5))
    start: dt.time = dt.time(9)
    end: dt.time = dt.time(18)
    timezone: str = "Europe/Rome"
    holidays: frozenset[dt.date] = frozenset()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> WorkingHours:
        """Build from ``config["WORKING_HOURS"]`` (default: the current app's configuration)."""
        if config is None:
            from flask import current_app

            config = current_app.config
        spec = {**DEFAULT_WORKING_HOURS, **(config.get("WORKING_HOURS") or {})}
        hours = cls(days=frozenset(int(d) for d in spec["days"]), start=_time(spec["start"]),
                    end=_time(spec["end"]), timezone=str(spec["timezone"]),
                    holidays=frozenset(dt.date.fromisoformat(str(d)) for d in spec["holidays"] or ()))
        if not hours.days or hours.end <= hours.start:
            raise ValueError("WORKING_HOURS needs at least one day and start < end")
        return hours

    def _is_workday(self, day: dt.date) -> bool:
        return day.weekday() in self.days and day not in self.holidays

    def add(self, start_utc: dt.datetime, hours: float) -> dt.datetime:
        """The naive-UTC moment ``hours`` working hours after ``start_utc``."""
        zone = ZoneInfo(self.timezone)
        local = start_utc.replace(tzinfo=dt.UTC).astimezone(zone)
        remaining = dt.timedelta(hours=hours)
        day = local.date()
        cursor = local
        for _ in range(3660):  # ten years of days: a bound, never reached with sane input
            if self._is_workday(day):
                opens = dt.datetime.combine(day, self.start, zone)
                closes = dt.datetime.combine(day, self.end, zone)
                begin = max(cursor, opens)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        end = begin + remaining
                        return end.astimezone(dt.UTC).replace(tzinfo=None)
                    remaining -= available
            day += dt.timedelta(days=1)
            cursor = dt.datetime.combine(day, dt.time(0), zone)
        raise ValueError("working-hours deadline out of range")

    def between(self, start_utc: dt.datetime, end_utc: dt.datetime) -> float:
        """Working hours elapsed from ``start_utc`` to ``end_utc`` (0 if end is not after start)."""
        if end_utc <= start_utc:
            return 0.0
        zone = ZoneInfo(self.timezone)
        a = start_utc.replace(tzinfo=dt.UTC).astimezone(zone)
        b = end_utc.replace(tzinfo=dt.UTC).astimezone(zone)
        total = dt.timedelta()
        day = a.date()
        while day <= b.date():
            if self._is_workday(day):
                opens = max(dt.datetime.combine(day, self.start, zone), a)
                closes = min(dt.datetime.combine(day, self.end, zone), b)
                if closes > opens:
                    total += closes - opens
            day += dt.timedelta(days=1)
        return total.total_seconds() / 3600


def add_working_hours(start_utc: dt.datetime, hours: float, config: Mapping[str, Any] | None = None) -> dt.datetime:
    """Shortcut: ``WorkingHours.from_config(config).add(start_utc, hours)``."""
    return WorkingHours.from_config(config).add(start_utc, hours)
