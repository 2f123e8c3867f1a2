"""Dates and times written as Babel writes them, at a fraction of Babel's cost per value.

Babel re-reads the locale's data and walks the pattern for every value it formats; a list page
formats a date on each of its rows. Here a pattern is compiled once per (kind, format, locale)
into a ``%``-template and one small function per field, with the locale's names (months, AM/PM)
taken from Babel itself when compiling. A pattern using a field not handled here (weekdays,
eras, zones …) falls back to Babel, so the output is always Babel's (tested value by value).
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

from babel import Locale, dates

Formatter = Callable[[dt.date], str]
_FIELD = re.compile(r"%\((\w+)\)s")
_NAMED = ("short", "medium", "long", "full")


def _numeric(attr: str, width: int) -> Callable[[dt.date], str]:
    spec = f"0{width}d"
    return lambda value: format(getattr(value, attr), spec)


def _field(key: str, locale: Locale) -> Callable[[dt.date], str] | None:
    """A function writing one pattern field ("dd", "MMM", "a" …), or None when not handled."""
    char, width = key[0], len(key)
    if char in "dHms" and width <= 2:
        return _numeric({"d": "day", "H": "hour", "m": "minute", "s": "second"}[char], width)
    if char == "h" and width <= 2:
        spec = f"0{width}d"
        return lambda value: format(value.hour % 12 or 12, spec)
    if char == "M" and width <= 2:
        return _numeric("month", width)
    if char == "M" and width in (3, 4):
        names = {m: dates.DateTimeFormat(dt.date(2000, m, 1), locale)[key] for m in range(1, 13)}
        return lambda value: names[value.month]
    if char == "y" and width != 2:
        return _numeric("year", width)
    if key == "yy":
        return lambda value: format(value.year % 100, "02d")
    if char == "a" and width <= 3:
        am, pm = (dates.DateTimeFormat(dt.time(hour), locale)[key] for hour in (0, 12))
        return lambda value: pm if value.hour >= 12 else am
    return None


class _Compiled:
    """A pattern as a positional ``%s`` template and the functions writing its fields in order."""

    __slots__ = ("template", "fields")

    def __init__(self, template: str, fields: tuple[Callable[[dt.date], str], ...]) -> None:
        self.template, self.fields = template, fields

    def __call__(self, value: dt.date) -> str:
        return self.template % tuple([field(value) for field in self.fields])


def _compile_pattern(pattern: str, locale: Locale) -> _Compiled | None:
    """The compiled pattern, or None when it uses a field not handled here."""
    parsed = dates.parse_pattern(pattern)
    fields = tuple(_field(key, locale) for key in _FIELD.findall(parsed.format))
    if any(field is None for field in fields):
        return None
    return _Compiled(_FIELD.sub("%s", parsed.format), fields)  # type: ignore[arg-type]


def _named_pattern(kind: str, format: str, locale: Locale) -> str:
    getter = dates.get_date_format if kind == "date" else dates.get_time_format
    return getter(format, locale).pattern  # type: ignore[arg-type]


@functools.lru_cache(maxsize=128)
def compile_format(kind: str, format: str, locale: str) -> Formatter:
    """A function formatting a value of ``kind`` ("date", "time" or "datetime") in ``format``
    (a Babel format name such as "short" or a CLDR pattern) for ``locale``, as Babel would.
    The value is written as given: time zones are the caller's (:func:`format_datetime`)."""
    babel_locale = Locale.parse(locale)
    babel_format = {"date": dates.format_date, "time": dates.format_time,
                    "datetime": dates.format_datetime}[kind]
    fallback: Formatter = functools.partial(babel_format, format=format, locale=babel_locale)  # type: ignore[assignment]
    if format not in _NAMED:
        return _compile_pattern(format, babel_locale) or fallback
    if kind != "datetime":
        return _compile_pattern(_named_pattern(kind, format, babel_locale), babel_locale) or fallback
    # Babel joins the date and the time of the same width through the locale's "{1}, {0}".
    date_part = _compile_pattern(_named_pattern("date", format, babel_locale), babel_locale)
    time_part = _compile_pattern(_named_pattern("time", format, babel_locale), babel_locale)
    joined = str(dates.get_datetime_format(format, babel_locale)).replace("'", "")
    if date_part is None or time_part is None or joined.count("{0}") != 1 or joined.count("{1}") != 1:
        return fallback
    first, second = (date_part, time_part) if joined.index("{1}") < joined.index("{0}") else (time_part, date_part)
    template = joined.replace("%", "%%").replace("{0}", "\0").replace("{1}", "\0")
    head, middle, tail = template.split("\0")
    return _Compiled(head + first.template + middle + second.template + tail, first.fields + second.fields)


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> dt.tzinfo:
    return ZoneInfo(name)


def format_datetime(value: dt.datetime, format: str, tzinfo: dt.tzinfo | None, locale: Locale | str) -> str:
    """:func:`babel.dates.format_datetime`: a naive value is UTC, shown in ``tzinfo``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    if tzinfo is not None:
        # flask-babel hands out pytz zones, whose conversion costs several times zoneinfo's.
        zone = getattr(tzinfo, "zone", None)
        value = value.astimezone(_zone(zone) if isinstance(zone, str) else tzinfo)
    return compile_format("datetime", format, str(locale))(value)


def format_date(value: dt.date, format: str, locale: Locale | str) -> str:
    """:func:`babel.dates.format_date` (a datetime is written as its date, as given)."""
    if isinstance(value, dt.datetime):
        value = value.date()
    return compile_format("date", format, str(locale))(value)
