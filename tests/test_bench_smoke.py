"""The ratios benchmark (bench/ratios.py) runs end to end on a tiny database and prints every row
and every ratio. Nothing here asserts a time: only that each figure exists and is a number."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from crm_portal.testing import PG_URL

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import ratios  # noqa: E402
import tickets as ticket_data  # noqa: E402

TICKETS = 300


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory):
    """A benchmark database of 300 tickets over a handful of companies (built in about a second)."""
    folder = tmp_path_factory.mktemp("bench")
    saved = ticket_data.DATA, ticket_data.COMPANIES, ticket_data.CONTACTS_PER_COMPANY, ticket_data.TARGET_TICKETS
    ticket_data.DATA, ticket_data.COMPANIES, ticket_data.CONTACTS_PER_COMPANY = folder, 4, 3
    ticket_data.TARGET_TICKETS = 200  # the measured company's; the rest go to the others
    try:
        path = folder / f"tickets_{TICKETS}.db"
        ticket_data.build(path, TICKETS)
        yield path
    finally:
        (ticket_data.DATA, ticket_data.COMPANIES, ticket_data.CONTACTS_PER_COMPANY,
         ticket_data.TARGET_TICKETS) = saved


def run(url: str) -> tuple[ratios.Setup, dict]:
    bench = ratios.setup(url)
    try:
        ratios.check(bench)
        return bench, ratios.measure(bench, rounds=2, warmup=1)
    finally:
        bench.close()


def assert_complete(bench: ratios.Setup, results: dict) -> None:
    assert bench.company_tickets == 200
    keys = {t.key for t in bench.targets}
    expected = ({f"{app} {p}" for app in ("limit", "peewee", "portal") for p in ratios.PAGES}
                | {f"admin {p}" for p in ratios.ADMIN_PAGES})
    assert keys == expected == set(results)
    for key, figures in results.items():
        assert set(figures) == {"wall_p50", "wall_p95", "cpu_p50", "cpu_p95", "queries"}, key
        assert all(math.isfinite(v) and v >= 0 for v in figures.values()), key
        assert figures["queries"] >= 1, key  # every page reads the database
    # The limit runs exactly its statements: a count and a page for a list, two for the ticket.
    assert results["limit list p1"]["queries"] == 2
    assert results["limit ticket"]["queries"] == 2
    assert results["limit dashboard"]["queries"] == 1

    table = ratios.ratios(results, small=results)
    names = [r.name for r in table]
    for p in ratios.LIST_PAGES:
        assert f"portal {p} / limit" in names
    assert "portal ticket / limit" in names and "portal dashboard / limit" in names
    for p in ratios.ADMIN_PAGES:
        assert f"admin {p} / portal" in names
    for p in ratios.PAGES:
        assert f"growth portal {p} (large / small)" in names
        assert f"peewee {p} / limit" in names
    assert all(math.isfinite(r.cpu) and r.cpu > 0 and math.isfinite(r.wall) and r.wall > 0 for r in table)
    growth = [r for r in table if r.name.startswith("growth")]
    assert all(r.cpu == 1.0 and r.met for r in growth)  # the same results: no growth at all
    assert all(r.met is None for r in table if r.name.startswith("peewee"))
    assert all(r.met is not None for r in table if not r.name.startswith("peewee"))

    lines: list[str] = []
    ratios.report("tiny", results, bench.targets, bench.company_tickets, results, lines.append)
    text = "\n".join(lines)
    for key in expected:
        assert f"\n{key} " in text
    for r in table:
        assert r.name in text
    assert "search p95" in text and "queries" in text


def test_every_target_and_ratio_on_sqlite(tiny_db):
    bench, results = run(f"sqlite:///{tiny_db}")
    assert_complete(bench, results)


def test_verdicts_follow_the_targets():
    fast = {"wall_p50": 1.0, "cpu_p50": 1.0}
    slow = {"wall_p50": 3.0, "cpu_p50": 1.5}
    assert ratios._ratio_of("x", slow, fast, "<= 2.0").met is True        # CPU 1.5×
    assert ratios._ratio_of("x", slow, fast, "<= 2.0", judge="wall").met is False  # wall 3×
    assert ratios._ratio_of("x", slow, fast, ">= 3.0", judge="wall").met is True
    assert ratios._ratio_of("x", slow, fast, None).met is None


@pytest.mark.skipif(not PG_URL, reason="needs CRM_PORTAL_TEST_DATABASE_URL (PostgreSQL)")
def test_every_target_and_ratio_on_postgresql(tiny_db):
    import data_pg

    url = data_pg.ensure(PG_URL, tiny_db, TICKETS)
    try:
        assert data_pg.ensure(PG_URL, tiny_db, TICKETS) == url  # built once, then reused
        bench, results = run(url)
        assert_complete(bench, results)
    finally:
        data_pg.drop(PG_URL, TICKETS)
