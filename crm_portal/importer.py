"""The first load of companies and contacts from a CRM's CSV export (``crm-portal import``), through
the same upsert as the sync API (:func:`crm_portal.sync.upsert.upsert`): every row is a push of
its ``external_id`` by the integration named, so that later syncs find the records.

The file is UTF-8, with or without a byte-order mark; the separator (``;`` or ``,``) is detected.
Header names are the sync fields (``external_id``, ``name``, ``vat_number`` …, for contacts
``company_external_id``), matched without regard to case, spaces or dashes; ``--map CRM=field``
renames a CRM's column. An empty cell gives no value (the stored one stays). Columns naming no field
the CRM owns are reported and ignored. Each row runs in its own savepoint; a dry run rolls
everything back at the end and reports what would have happened.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import peewee as pw

from .crm_records import RecordInvalid
from .db import db
from .models import Integration
from .scoping import IntegrationPrincipal
from .sync.upsert import STATUSES, Outcome, RefCache, allowed_keys, upsert

#: Bytes read to detect the separator.
SNIFF_BYTES = 64 * 1024


class ImportRefused(ValueError):
    """The file or the options cannot be used at all; the message says why."""


@dataclasses.dataclass
class ImportReport:
    """Every row's outcome (line number in the file → outcome) and the columns left out."""

    outcomes: list[tuple[int, Outcome]] = dataclasses.field(default_factory=list)
    ignored_columns: list[str] = dataclasses.field(default_factory=list)
    dry_run: bool = False

    @property
    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(STATUSES, 0)
        for _line, outcome in self.outcomes:
            found[outcome.status] += 1
        return found

    @property
    def failed(self) -> bool:
        return self.counts["error"] > 0


def _key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["Ragione sociale=name", …]`` as {normalised CRM column: field}."""
    mapping = {}
    for pair in pairs:
        column, sep, field = pair.partition("=")
        if not sep or not column.strip() or not field.strip():
            raise ImportRefused(f"--map {pair!r}: write it as CRM_COLUMN=field")
        mapping[_key(column)] = _key(field)
    return mapping


def read_rows(text: str, kind: str, mapping: Mapping[str, str]) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """The rows of ``text`` as (line number, {field: value}) and the columns ignored."""
    sample = text[:SNIFF_BYTES]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=";,")
    except csv.Error:
        dialect = csv.excel  # one column, or nothing to tell from: the comma
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    header = next(reader, None)
    if not header:
        raise ImportRefused("the file is empty: its first line must name the columns")
    fields = [mapping.get(_key(name), _key(name)) for name in header]
    known = allowed_keys(kind) | {"external_id"}
    if "external_id" not in fields:
        raise ImportRefused("no external_id column (the record's id in the CRM): name one with "
                            "--map CRM_COLUMN=external_id")
    if len(set(fields)) != len(fields):
        raise ImportRefused(f"two columns give the same field: {', '.join(fields)}")
    ignored = [name for name, field in zip(header, fields, strict=True) if field not in known]
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        row = {field: value for field, value in zip(fields, values, strict=False)
               if field in known and value.strip()}
        rows.append((reader.line_num, row))
    return rows, ignored


def decode(raw: bytes) -> str:
    """UTF-8 text of ``raw`` without its byte-order mark, else :class:`ImportRefused`."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"the file is not UTF-8 (byte {exc.start}): save it as CSV UTF-8") from exc


def run_import(kind: str, path: Path | str, integration_name: str, mapping: Mapping[str, str] | None = None,
               *, dry_run: bool = False) -> ImportReport:
    """Push every row of the CSV file at ``path`` as a ``kind`` of ``integration_name``."""
    name = (integration_name or "").strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise ImportRefused("give the integration's name (at most 100 printable characters)")
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ImportRefused(f"cannot read {path}: {exc.strerror}") from exc
    rows, ignored = read_rows(decode(raw), kind, mapping or {})
    report = ImportReport(ignored_columns=ignored, dry_run=dry_run)
    with db.atomic() as transaction:
        integration = Integration.get_or_none(Integration.name == name) or Integration.create(name=name)
        refs = RefCache(integration)
        refs.prefetch(kind, [row.get("external_id", "").strip() for _line, row in rows])
        principal = IntegrationPrincipal(integration)
        for line, row in rows:
            data = dict(row)
            external_id = data.pop("external_id", "")
            report.outcomes.append((line, _push(integration, kind, external_id, data, refs, principal)))
        if dry_run:
            transaction.rollback()
    return report


def _push(integration: Integration, kind: str, external_id: str, data: dict[str, Any], refs: RefCache,
          principal: Any) -> Outcome:
    try:
        with db.atomic():
            return upsert(integration, kind, external_id, data, refs=refs, user=principal)
    except RecordInvalid as exc:
        refs.forget()
        return Outcome(external_id, "error", errors=exc.errors)
    except pw.IntegrityError as exc:
        refs.forget()
        return Outcome(external_id, "error", errors={"_schema": [str(exc)]})
