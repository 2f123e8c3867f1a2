"""Ratios benchmark: the portal's ticket pages against the bare-SQL limit and Flask-Admin, in one process.

    python bench/ratios.py                        # 10,000 and 1,000,000 tickets on SQLite
    python bench/ratios.py --quick                # 2,000 and 20,000 tickets: a smoke run
    python bench/ratios.py --tickets 200000 --rounds 60
    CRM_PORTAL_BENCH_PG=postgresql://127.0.0.1:5432/bench_ratio python bench/ratios.py   # or --pg URL

What a benchmark on a shared machine can measure is a ratio, not a time: every target is requested
in the same process through the Flask test client (no HTTP, no second process), round-robin over
all targets for many rounds after a warm-up, so load from elsewhere falls on every target alike.
The targets, on the same database:

- **limit**: a bare Flask app running the statements a page needs straight through the driver
  (sqlite3 or psycopg2, one connection kept open) and rendering a minimal Jinja table: the list
  (count + one page of 50 rows, the 9 shown columns, with the portal's filter, sort, search and
  offset), the ticket page (the ticket and its newest comments) and the dashboard (counts by state);
- **peewee**: the same statements through peewee models (bare routes, same templates);
- **admin**: Flask-Admin's peewee ModelView of the tickets table, filtered to the company, 50 a page;
- **portal**: the portal itself, logged in as the company-scope contact of the measured company.

Printed per size: p50/p95 wall and CPU time per request (``time.thread_time`` around the request),
SQL statements per request (counted in a separate pass, not while timing), then the ratios
against the performance targets (docs/performance.md), the load average before and after and the peak RSS. The databases
are the ones ``bench/tickets.py`` builds (bench/data/, gitignored); on PostgreSQL ``bench/data_pg.py``
copies them into ``<database>_<tickets>``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import tickets as ticket_data  # noqa: E402  (bench/tickets.py: the data builder)

PER_PAGE = 50
DEEP_PAGE = 200
SEARCH_WORD = "stampante"
FILTER_STATUS = "waiting_support"
COMMENTS = 20
#: The 9 columns the list shows (the id makes the link).
LIST_COLUMNS = ("id", "number", "title", "requester_name", "service_name", "status", "priority",
                "assignee_name", "updated_at")
TICKET_COLUMNS = ("id", "number", "title", "description", "type", "priority", "severity", "status",
                  "requester_name", "service_name", "assignee_name", "created_at", "updated_at")


# --- query counting ------------------------------------------------------------------------------
class QueryCounter(logging.Handler):
    """Counts the statements peewee runs (its logger) plus those the limit app reports itself."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.active = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.active and record.name == "peewee":  # "peewee.pool" and the like log no statement
            self.count += 1

    def bump(self) -> None:
        if self.active:
            self.count += 1

    @contextmanager
    def counting(self) -> Iterator[None]:
        logger = logging.getLogger("peewee")
        level, propagate = logger.level, logger.propagate
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(self)
        self.count, self.active = 0, True
        try:
            yield
        finally:
            self.active = False
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate


COUNTER = QueryCounter()


# --- the SQL every bare target runs -------------------------------------------------------------
@dataclasses.dataclass
class ListArgs:
    """The list variants measured: page, status filter, sort (updated_at asc) and search."""

    page: int = 1
    status: str | None = None
    ascending: bool = False
    q: str | None = None

    @classmethod
    def from_request(cls, args: Any) -> ListArgs:
        return cls(page=max(1, int(args.get("page", 1))), status=args.get("status") or None,
                   ascending=args.get("dir") == "asc", q=args.get("q") or None)


def list_sql(args: ListArgs, company_id: int, mark: str, like: str) -> tuple[str, list, str, list]:
    """The count and the page statement (with parameters) of the company's list; ``mark`` is the
    driver's placeholder, ``like`` the case-insensitive LIKE the portal uses on this database."""
    where, params = f"company_id = {mark}", [company_id]
    if args.status:
        where += f" AND status = {mark}"
        params.append(args.status)
    if args.q:
        for word in args.q.lower().split():
            where += f" AND search_text {like} {mark} ESCAPE '\\'"
            params.append(f"%{word}%")
    order = "ASC" if args.ascending else "DESC"
    count = f"SELECT COUNT(*) FROM tickets_ticket WHERE {where}"
    page = (f"SELECT {', '.join(LIST_COLUMNS)} FROM tickets_ticket WHERE {where} "
            f"ORDER BY updated_at {order}, id {order} LIMIT {PER_PAGE} OFFSET {mark}")
    return count, params, page, [*params, (args.page - 1) * PER_PAGE]


TEMPLATES = {
    "list.html": """<!doctype html><title>Tickets</title><p>{{ total }} tickets, page {{ page }}</p>
<table><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in rows %}<tr><td><a href="/ticket/{{ r[0] }}">{{ r[1] }}</a></td>
{% for v in r[2:] %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>""",
    "ticket.html": """<!doctype html><title>{{ t[1] }}</title><h1>{{ t[1] }} {{ t[2] }}</h1>
<dl>{% for c, v in fields %}<dt>{{ c }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
{% for c in comments %}<article><b>{{ c[1] }}</b> {{ c[2] }}<p>{{ c[0] }}</p></article>{% endfor %}""",
    "dashboard.html": """<!doctype html><title>Dashboard</title><table>
{% for status, mine, n in counts %}<tr><td>{{ status }}</td><td>{{ mine }}</td><td>{{ n }}</td></tr>{% endfor %}
</table>""",
}


def _bare_app(name: str):
    from flask import Flask
    from jinja2 import DictLoader

    app = Flask(name)
    app.jinja_loader = DictLoader(TEMPLATES)  # type: ignore[assignment]
    return app


def make_limit_app(url: str, company_id: int, contact_id: int):
    """The limit: the page's statements through the driver, one connection, a minimal table."""
    from flask import abort, render_template, request

    app = _bare_app("limit")
    if url.startswith("sqlite"):
        import sqlite3

        conn: Any = sqlite3.connect(url.split("///", 1)[1], check_same_thread=False)
        mark, like = "?", "LIKE"

        def run(sql: str, params: list) -> list[tuple]:
            COUNTER.bump()
            return conn.execute(sql, params).fetchall()
    else:
        import psycopg2

        conn = psycopg2.connect(url)
        conn.autocommit = True
        mark, like = "%s", "ILIKE"

        def run(sql: str, params: list) -> list[tuple]:
            COUNTER.bump()
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()

    @app.route("/list")
    def listing():
        count, cparams, page, pparams = list_sql(ListArgs.from_request(request.args), company_id, mark, like)
        total = run(count, cparams)[0][0]
        rows = run(page, pparams)
        return render_template("list.html", total=total, page=request.args.get("page", 1), rows=rows,
                               columns=LIST_COLUMNS[1:])

    @app.route("/ticket/<int:ticket_id>")
    def ticket(ticket_id: int):
        found = run(f"SELECT {', '.join(TICKET_COLUMNS)} FROM tickets_ticket WHERE id = {mark} AND company_id = {mark}",
                    [ticket_id, company_id])
        if not found:
            abort(404)
        comments = run(f"SELECT body, author_name, created_at FROM tickets_comment WHERE ticket_id = {mark} "
                       f"AND kind = 'public' ORDER BY created_at DESC, id DESC LIMIT {COMMENTS}", [ticket_id])
        t = found[0]
        fields = list(zip(TICKET_COLUMNS[3:], t[3:], strict=True))
        return render_template("ticket.html", t=t, fields=fields, comments=comments)

    @app.route("/dashboard")
    def dashboard():
        counts = run(f"SELECT status, CASE WHEN contact_id = {mark} THEN 1 ELSE 0 END, COUNT(*) "
                     f"FROM tickets_ticket WHERE company_id = {mark} GROUP BY 1, 2", [contact_id, company_id])
        return render_template("dashboard.html", counts=counts)

    app.extensions["bench_close"] = conn.close
    return app


def _peewee_database(url: str):
    from playhouse.db_url import connect

    return connect(url)


def ticket_models(database: Any) -> tuple[Any, Any]:
    """Peewee models of the tickets and comments tables (every ticket column, by reflection), bound
    to ``database``: the bare peewee routes and Flask-Admin read the same table as the portal."""
    import peewee as pw
    from playhouse.reflection import Introspector

    models = Introspector.from_database(database).generate_models(
        table_names=["tickets_ticket", "tickets_comment"], literal_column_names=True)
    ticket, comment = models["tickets_ticket"], models["tickets_comment"]
    assert isinstance(ticket._meta.database, pw.Database)
    return ticket, comment


def make_peewee_app(url: str, company_id: int, contact_id: int):
    """The limit's statements through peewee models (its own connection, kept open)."""
    import peewee as pw
    from flask import abort, render_template, request

    database = _peewee_database(url)
    Ticket, Comment = ticket_models(database)
    shown = [getattr(Ticket, c) for c in LIST_COLUMNS]
    app = _bare_app("peewee")

    @app.route("/list")
    def listing():
        args = ListArgs.from_request(request.args)
        query = Ticket.select(*shown).where(Ticket.company_id == company_id)
        if args.status:
            query = query.where(Ticket.status == args.status)
        for word in (args.q or "").lower().split():
            query = query.where(Ticket.search_text ** f"%{word}%")
        total = query.count()
        order = (Ticket.updated_at.asc(), Ticket.id.asc()) if args.ascending else (
            Ticket.updated_at.desc(), Ticket.id.desc())
        rows = list(query.order_by(*order).paginate(args.page, PER_PAGE).tuples())
        return render_template("list.html", total=total, page=args.page, rows=rows, columns=LIST_COLUMNS[1:])

    @app.route("/ticket/<int:ticket_id>")
    def ticket(ticket_id: int):
        t = (Ticket.select(*[getattr(Ticket, c) for c in TICKET_COLUMNS])
             .where((Ticket.id == ticket_id) & (Ticket.company_id == company_id)).tuples().first())
        if t is None:
            abort(404)
        comments = list(Comment.select(Comment.body, Comment.author_name, Comment.created_at)
                        .where((Comment.ticket_id == ticket_id) & (Comment.kind == "public"))
                        .order_by(Comment.created_at.desc(), Comment.id.desc()).limit(COMMENTS).tuples())
        fields = list(zip(TICKET_COLUMNS[3:], t[3:], strict=True))
        return render_template("ticket.html", t=t, fields=fields, comments=comments)

    @app.route("/dashboard")
    def dashboard():
        mine = pw.Case(None, [(Ticket.contact_id == contact_id, 1)], 0)
        counts = list(Ticket.select(Ticket.status, mine, pw.fn.COUNT(Ticket.id))
                      .where(Ticket.company_id == company_id).group_by(pw.SQL("1"), pw.SQL("2")).tuples())
        return render_template("dashboard.html", counts=counts)

    app.extensions["bench_close"] = database.close
    return app


def make_admin_app(url: str, company_id: int):
    """Flask-Admin's peewee ModelView of the tickets table: the company's tickets, 50 a page,
    newest update first, the 8 shown columns, searchable on the search column."""
    from flask import Flask
    from flask_admin import Admin
    from flask_admin.contrib.peewee import ModelView
    from flask_babel import Babel

    database = _peewee_database(url)
    Ticket, _ = ticket_models(database)

    class TicketView(ModelView):
        page_size = PER_PAGE
        can_set_page_size = False
        column_list = LIST_COLUMNS[1:]
        column_sortable_list = ("title", "status", "priority", "updated_at")
        column_searchable_list = (Ticket.search_text,)
        column_default_sort = ("updated_at", True)

        def get_query(self):
            return Ticket.select().where(Ticket.company_id == company_id)

    app = Flask("admin")
    app.config.update(SECRET_KEY="bench")
    Babel(app)
    admin = Admin(app, name="Bench")
    admin.add_view(TicketView(Ticket, endpoint="tickets", name="Tickets"))
    app.extensions["bench_close"] = database.close
    return app


# --- targets --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Target:
    key: str       # "<app> <page>", e.g. "portal list p1"
    app: str       # limit, peewee, admin, portal
    page: str      # list p1, list p200, list status, list sort, search, ticket, dashboard
    path: str


PAGES = ("list p1", "list p200", "list status", "list sort", "search", "ticket", "dashboard")
LIST_PAGES = PAGES[:5]
ADMIN_PAGES = ("list p1", "list p200", "list sort", "search")


def targets_for(ticket_id: int, company_tickets: int) -> list[Target]:
    """Every target; the deep page is page 200, or the last page of a smaller company."""
    deep = min(DEEP_PAGE, max(1, -(-company_tickets // PER_PAGE)))
    bare = {"list p1": "/list", "list p200": f"/list?page={deep}",
            "list status": f"/list?status={FILTER_STATUS}",
            "list sort": "/list?dir=asc", "search": f"/list?q={SEARCH_WORD}", "ticket": f"/ticket/{ticket_id}",
            "dashboard": "/dashboard"}
    portal = {"list p1": "/tickets/", "list p200": f"/tickets/?page={deep}",
              "list status": f"/tickets/?f_status={FILTER_STATUS}", "list sort": "/tickets/?sort=updated_at&dir=asc",
              "search": f"/tickets/?q={SEARCH_WORD}", "ticket": f"/tickets/{ticket_id}", "dashboard": "/"}
    # Flask-Admin: 0-based pages, sort by the column's index in column_list (ascending unless desc=1).
    admin = {"list p1": "/admin/tickets/", "list p200": f"/admin/tickets/?page={deep - 1}",
             "list sort": f"/admin/tickets/?sort={LIST_COLUMNS[1:].index('updated_at')}",
             "search": f"/admin/tickets/?search={SEARCH_WORD}"}
    out = [Target(f"limit {p}", "limit", p, bare[p]) for p in PAGES]
    out += [Target(f"peewee {p}", "peewee", p, bare[p]) for p in PAGES]
    out += [Target(f"admin {p}", "admin", p, admin[p]) for p in ADMIN_PAGES]
    out += [Target(f"portal {p}", "portal", p, portal[p]) for p in PAGES]
    return out


@dataclasses.dataclass
class Setup:
    """Everything one database's measurement needs: the apps' test clients and the targets."""

    url: str
    clients: dict[str, Any]
    targets: list[Target]
    company_tickets: int
    closers: list[Callable[[], None]]

    def close(self) -> None:
        for close in self.closers:
            close()


def portal_app(url: str):
    from crm_portal import create_app

    return create_app({
        "DATABASE_URL": url, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False,
        "INSTANCE_PATH": str(ticket_data.DATA / "instance"), "SERVER_NAME": None, "BABEL_DEFAULT_LOCALE": "en",
    })


def measured_company(url: str) -> tuple[int, int, int, int]:
    """(company id, contact id, its tickets, one of its tickets) of the measured contact."""
    from playhouse.db_url import connect

    database = connect(url)
    with database.connection_context():
        contact_id, company_id = database.execute_sql(
            "SELECT id, company_id FROM core_contact WHERE email = 'c0000.00@bench.example'").fetchone()
        total, ticket_id = database.execute_sql(
            f"SELECT COUNT(*), MAX(id) FROM tickets_ticket WHERE company_id = {int(company_id)}").fetchone()
    return company_id, contact_id, total, ticket_id


def setup(url: str) -> Setup:
    """Build the four apps on ``url`` and log the company-scope contact into the portal."""
    company_id, contact_id, total, ticket_id = measured_company(url)
    limit = make_limit_app(url, company_id, contact_id)
    peewee_app = make_peewee_app(url, company_id, contact_id)
    admin = make_admin_app(url, company_id)
    portal = portal_app(url)
    client = portal.test_client()
    response = client.post("/login", data={"email": "c0000.00@bench.example", "password": ticket_data.PASSWORD})
    assert response.status_code == 302, f"login failed ({response.status_code})"
    clients = {"limit": limit.test_client(), "peewee": peewee_app.test_client(), "admin": admin.test_client(),
               "portal": client}
    closers = [app.extensions["bench_close"] for app in (limit, peewee_app, admin)]
    return Setup(url, clients, targets_for(ticket_id, total), total, closers)


def check(setup: Setup) -> None:
    """Every target answers 200 and shows rows (a page that failed quietly would measure nothing)."""
    for t in setup.targets:
        response = setup.clients[t.app].get(t.path)
        assert response.status_code == 200, (t.key, t.path, response.status_code)
        if t.page != "dashboard":
            assert len(response.data) > 500, (t.key, len(response.data))


# --- measuring ----------------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def measure(setup: Setup, rounds: int, warmup: int = 3) -> dict[str, dict[str, float]]:
    """Round-robin over every target (``warmup`` rounds first, not kept); each round starts one
    target further on, so no target always follows the same one."""
    targets = setup.targets
    wall: dict[str, list[float]] = {t.key: [] for t in targets}
    cpu: dict[str, list[float]] = {t.key: [] for t in targets}
    for n in range(warmup + rounds):
        shift = n % len(targets)
        for t in targets[shift:] + targets[:shift]:
            client = setup.clients[t.app]
            w0, c0 = time.perf_counter(), time.thread_time()
            response = client.get(t.path)
            c1, w1 = time.thread_time(), time.perf_counter()
            if response.status_code != 200:
                raise AssertionError(f"{t.key}: {t.path} answered {response.status_code}")
            if n >= warmup:
                wall[t.key].append((w1 - w0) * 1000)
                cpu[t.key].append((c1 - c0) * 1000)
    results = {}
    for t in targets:
        with COUNTER.counting():
            setup.clients[t.app].get(t.path)
        results[t.key] = {"wall_p50": statistics.median(wall[t.key]), "wall_p95": percentile(wall[t.key], 0.95),
                          "cpu_p50": statistics.median(cpu[t.key]), "cpu_p95": percentile(cpu[t.key], 0.95),
                          "queries": COUNTER.count}
    return results


# --- ratios and targets ----------------------------------------------------------------------------
@dataclasses.dataclass
class Ratio:
    name: str
    cpu: float          # on the median CPU time (the figure the load does not inflate)
    wall: float         # on the median wall time
    goal: str           # "<= 2.0", ">= 3.0" …
    met: bool | None    # None: no target

    def line(self) -> str:
        met = "" if self.met is None else ("met" if self.met else "MISSED")
        return f"{self.name:<44}{self.cpu:>8.2f}{self.wall:>8.2f}  {self.goal:<9}{met}"


def _ratio_of(name: str, a: dict, b: dict, goal: str | None, judge: str = "cpu") -> Ratio:
    cpu, wall = a["cpu_p50"] / b["cpu_p50"], a["wall_p50"] / b["wall_p50"]
    met = None
    if goal:
        op, bound = goal.split()
        value = cpu if judge == "cpu" else wall
        met = value <= float(bound) if op == "<=" else value >= float(bound)
    return Ratio(name, cpu, wall, goal or "", met)


def ratios(results: dict[str, dict], small: dict[str, dict] | None = None, judge: str = "cpu") -> list[Ratio]:
    """The target ratios over one size's results (and the growth against ``small``'s), judged
    on ``judge`` ("cpu" or "wall") medians: CPU on SQLite, where all the work is in this thread;
    wall on PostgreSQL, whose server works in another process (and connecting costs it a fork)."""

    def _ratio(*args: Any) -> Ratio:
        return _ratio_of(*args, judge=judge)

    out = []
    for p in LIST_PAGES:
        out.append(_ratio(f"portal {p} / limit", results[f"portal {p}"], results[f"limit {p}"], "<= 2.0"))
    for p in ("ticket", "dashboard"):
        out.append(_ratio(f"portal {p} / limit", results[f"portal {p}"], results[f"limit {p}"], "<= 2.5"))
    for p in ADMIN_PAGES:
        out.append(_ratio(f"admin {p} / portal", results[f"admin {p}"], results[f"portal {p}"], ">= 3.0"))
    for p in PAGES:
        out.append(_ratio(f"peewee {p} / limit", results[f"peewee {p}"], results[f"limit {p}"], None))
    if small is not None:
        for p in PAGES:
            out.append(_ratio(f"growth portal {p} (large / small)", results[f"portal {p}"], small[f"portal {p}"],
                              "<= 1.3"))
    return out


def absolute_checks(results: dict[str, dict]) -> list[tuple[str, str, bool]]:
    """The targets that are not ratios: search p95 and statements per page."""
    search = results["portal search"]["wall_p95"]
    cpu = results["portal search"]["cpu_p95"]
    out = [(f"portal search p95 wall {search:.1f} ms (CPU {cpu:.1f} ms)", "< 50 ms", search < 50)]
    for p in PAGES:
        n = results[f"portal {p}"]["queries"]
        out.append((f"portal {p}: {n} queries", "<= 8", n <= 8))
    return out


def report(label: str, results: dict[str, dict], setup_targets: list[Target], company_tickets: int,
           small: dict[str, dict] | None = None, out: Callable[[str], None] = print, judge: str = "cpu") -> None:
    out(f"\n== {label}: the company has {company_tickets:,} tickets")
    out(f"{'target':<26}{'wall p50':>9}{'p95':>8}{'CPU p50':>9}{'p95':>8}{'queries':>9}   (ms)")
    for t in setup_targets:
        r = results[t.key]
        out(f"{t.key:<26}{r['wall_p50']:>9.1f}{r['wall_p95']:>8.1f}{r['cpu_p50']:>9.1f}{r['cpu_p95']:>8.1f}"
            f"{r['queries']:>9}")
    out(f"\n{'ratio (of medians)':<44}{'CPU':>8}{'wall':>8}  {'target':<9}judged on {judge}")
    for ratio in ratios(results, small, judge):
        out(ratio.line())
    for text, goal, met in absolute_checks(results):
        out(f"{text:<60}  {goal:<9}{'met' if met else 'MISSED'}")


def database_url(total: int, pg: str | None) -> str:
    """The benchmark database of ``total`` tickets (built the first time)."""
    db_path = ticket_data.DATA / f"tickets_{total}.db"
    if not db_path.exists():
        print(f"building {db_path} …", flush=True)
        ticket_data.DATA.mkdir(parents=True, exist_ok=True)
        ticket_data.build(db_path, total)
    import data_pg

    url = f"sqlite:///{db_path}" if not pg else data_pg.ensure(pg, db_path, total)
    data_pg.create_schema(url)  # a database built by older code gets the newer schema steps
    return url


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000, help="tickets in the large database")
    parser.add_argument("--small", type=int, default=10_000, help="tickets in the small database")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 and 2,000 tickets, 15 rounds")
    parser.add_argument("--pg", nargs="?", const=os.environ.get("CRM_PORTAL_BENCH_PG") or
                        "postgresql://127.0.0.1:5432/bench_ratio", default=os.environ.get("CRM_PORTAL_BENCH_PG"),
                        help="PostgreSQL server URL (default: $CRM_PORTAL_BENCH_PG)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tickets, args.small, args.rounds = 20_000, 2_000, 15
    started = time.perf_counter()
    load_before = os.getloadavg()
    engine = "PostgreSQL" if args.pg else "SQLite"
    print(f"ratios benchmark on {engine}: {args.small:,} and {args.tickets:,} tickets, {args.rounds} rounds "
          f"(+{args.warmup} warm-up), load average before {' '.join(f'{x:.2f}' for x in load_before)}", flush=True)
    all_results: dict[int, dict] = {}
    lines: list[str] = []

    def out(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    for total in (args.small, args.tickets):
        url = database_url(total, args.pg)
        bench = setup(url)
        try:
            check(bench)
            all_results[total] = measure(bench, args.rounds, args.warmup)
        finally:
            bench.close()
        report(f"{engine}, {total:,} tickets in the database", all_results[total], bench.targets,
               bench.company_tickets, all_results.get(args.small) if total != args.small else None, out,
               judge="wall" if args.pg else "cpu")
    load_after = os.getloadavg()
    out(f"\nload average before {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' '.join(f'{x:.2f}' for x in load_after)} (1, 5, 15 min; {os.cpu_count()} CPUs)")
    out(f"peak RSS of the process (every app, both databases, the login's password hash and any database "
        f"built in this run, whose page cache is 400 MB): {peak_rss_mb():.0f} MB")
    out(f"run time {time.perf_counter() - started:.0f} s")
    name = f"ratios_{'pg' if args.pg else 'sqlite'}.json"
    (ticket_data.DATA / name).write_text(json.dumps(
        {"engine": engine, "load_before": load_before, "load_after": load_after, "rounds": args.rounds,
         "results": {str(k): v for k, v in all_results.items()}}, indent=2))


if __name__ == "__main__":
    main()
