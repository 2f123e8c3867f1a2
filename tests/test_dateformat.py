"""Dates written by crm_portal.dateformat are Babel's, character for character."""
from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
import pytz
from babel import dates

from crm_portal import dateformat

_rng = random.Random(7)
VALUES = [dt.datetime(2000, 1, 1) + dt.timedelta(seconds=_rng.randrange(40 * 365 * 86400)) for _ in range(300)]
VALUES += [dt.datetime(2026, 3, 29, 0, 30), dt.datetime(2026, 3, 29, 1, 30), dt.datetime(2026, 10, 25, 0, 30),
           dt.datetime(2026, 10, 25, 1, 30), dt.datetime(2026, 1, 1, 12, 0), dt.datetime(2026, 1, 1, 0, 0)]
ZONES = [None, ZoneInfo("Europe/Rome"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]
FORMATS = ["short", "medium", "long", "full", "dd/MM/yyyy HH:mm", "yy-M-d h:mm a", "d MMMM y 'alle' H:mm:ss"]


@pytest.mark.parametrize("locale", ["en", "it", "de", "fr", "en_GB", "ja"])
@pytest.mark.parametrize("form", FORMATS)
def test_datetimes_are_babels(locale, form):
    for zone in ZONES:
        for value in VALUES:
            expected = dates.format_datetime(value, form, tzinfo=zone, locale=locale)
            assert dateformat.format_datetime(value, form, zone, locale) == expected, (value, zone)


@pytest.mark.parametrize("locale", ["en", "it", "de"])
@pytest.mark.parametrize("form", ["short", "medium", "long", "full", "d MMM y", "EEEE d"])
def test_dates_are_babels(locale, form):
    for value in VALUES:
        day = value.date()
        assert dateformat.format_date(day, form, locale) == dates.format_date(day, form, locale=locale)
        assert dateformat.format_date(value, form, locale) == dates.format_date(value, form, locale=locale)


def test_pytz_zones_are_converted_as_zoneinfo_does():
    """flask-babel hands out pytz zones: the same local time as the system's zone data."""
    value = dt.datetime(2026, 7, 1, 10, 15)
    assert dateformat.format_datetime(value, "short", pytz.timezone("Europe/Rome"), "it") == "01/07/26, 12:15"
    assert dateformat.format_datetime(value, "short", pytz.timezone("Europe/Rome"), "it") == \
        dates.format_datetime(value, "short", tzinfo=ZoneInfo("Europe/Rome"), locale="it")


def test_fields_not_handled_fall_back_to_babel():
    """Weekdays are not compiled: the formatter is Babel's own."""
    value = dt.date(2026, 11, 27)
    assert dateformat.format_date(value, "EEEE d MMMM", "it") == "venerdì 27 novembre"
    assert dateformat.compile_format("date", "dd/MM/yy", "it")(value) == "27/11/26"
