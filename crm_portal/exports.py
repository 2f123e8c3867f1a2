"""Exports of a module's list: CSV that opens right in the user's Excel, and .xlsx.

Both are built from the same rows (the scoped, filtered list query) and the same columns as the
list page. Values keep their type as long as possible:

- **CSV**: UTF-8 with a byte-order mark (Excel reads it as UTF-8 only then), the separator of the
  user's language (``;`` where the decimal sign is a comma, as in Italian; ``,`` in English),
  decimals with the language's decimal sign and no grouping, dates as ``YYYY-MM-DD`` and times in
  the portal's time zone (``BABEL_DEFAULT_TIMEZONE``) as ``YYYY-MM-DD HH:MM:SS``, without
  microseconds. Text that a spreadsheet would run as a formula gets a leading ``'``.
- **.xlsx** (openpyxl, write-only: rows stream to a temporary file instead of living in memory):
  numbers, dates and times as real cells with a display format; text is always stored as text,
  so a value starting with ``=`` is never a formula.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from babel.numbers import get_decimal_symbol
from flask import current_app
from flask_babel import get_locale, gettext, to_user_timezone

from .listing import csv_safe

#: How often (bytes) a CSV being written is handed to the response.
CHUNK = 32768


class ExcelSemicolon(csv.excel):
    """Excel's CSV where the decimal sign is a comma (Italian …): fields separated by ``;``."""

    delimiter = ";"


def csv_dialect(locale: Any = None) -> type[csv.Dialect]:
    """The CSV dialect Excel expects in ``locale`` (default: the current language)."""
    return ExcelSemicolon if decimal_sign(locale) == "," else csv.excel


def decimal_sign(locale: Any = None) -> str:
    return get_decimal_symbol(locale or get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"])


def local_time(value: dt.datetime) -> dt.datetime:
    """A stored (naive UTC) time in the portal's time zone, naive, to the second."""
    return to_user_timezone(value).replace(tzinfo=None, microsecond=0)


def csv_text(value: Any, sign: str) -> str:
    """The CSV text of one cell (see the module's docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, dt.datetime):
        return local_time(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (Decimal, float)):
        text = format(value, "f") if isinstance(value, Decimal) else repr(value)
        return text.replace(".", sign)
    if isinstance(value, int):
        return str(value)
    return csv_safe(value)


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The CSV of ``header`` and ``rows`` in the current language, in chunks, the BOM first.

    The first row is read at once, when the view calls this: the query runs inside the view, so
    a database that cannot be reached is the 503 page, not a download the server breaks off
    before its first byte (a 500)."""
    remaining = iter(rows)
    first = next(remaining, _NO_ROW)
    return _csv_stream(header, first, remaining)


_NO_ROW: Any = object()


def _csv_stream(header: Sequence[str], first: Any, rows: Iterator[Sequence[Any]]) -> Iterator[str]:
    sign = decimal_sign()
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, dialect=csv_dialect())
    writer.writerow([csv_safe(h) for h in header])
    for row in itertools.chain([] if first is _NO_ROW else [first], rows):
        writer.writerow([csv_text(value, sign) for value in row])
        if buffer.tell() > CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


#: Display formats of the .xlsx cells (Excel shows them in the reader's own conventions).
XLSX_FORMATS = {dt.datetime: "yyyy-mm-dd hh:mm:ss", dt.date: "yyyy-mm-dd", Decimal: "#,##0.00"}


def _xlsx_cell(sheet: Any, value: Any) -> Any:
    from openpyxl.cell import WriteOnlyCell

    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, dt.datetime):
        cell = WriteOnlyCell(sheet, value=local_time(value))
        cell.number_format = XLSX_FORMATS[dt.datetime]
        return cell
    if isinstance(value, dt.date):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = XLSX_FORMATS[dt.date]
        return cell
    if isinstance(value, Decimal):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = XLSX_FORMATS[Decimal]
        return cell
    if value is None or isinstance(value, (int, float)):
        return value
    return _text_cell(sheet, value)


def _text_cell(sheet: Any, value: Any) -> Any:
    """A cell holding ``value`` as text: set explicitly, because openpyxl stores a string that
    starts with "=" as a formula."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=None)
    cell._value, cell.data_type = str(value), "s"
    return cell


def xlsx_bytes(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """An .xlsx workbook with one sheet ``title``: the bold header row, then ``rows``."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31] or "Export")
    bold = Font(bold=True)
    head = []
    for text in header:
        cell = _text_cell(sheet, text)
        cell.font = bold
        head.append(cell)
    sheet.append(head)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, value) for value in row])
    with tempfile.TemporaryFile() as out:
        book.save(out)
        out.seek(0)
        return out.read()
