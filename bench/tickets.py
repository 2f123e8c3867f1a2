"""Tickets benchmark: list, ticket page and dashboard of a company-scope user on a large database.

    python bench/tickets.py                 # build (once) and measure 1,000,000 and 10,000 tickets
    python bench/tickets.py --tickets 200000 --runs 20
    python bench/tickets.py --rebuild       # build the databases again

Builds SQLite databases under bench/data/ (gitignored): 1,000 companies, 20,000 contacts, N tickets
with 3 comments each on average; the measured company ("Bench 0001") always has 10,000 tickets,
the rest are spread over the other companies. A server process (werkzeug, one thread) serves the
portal; the client logs in as a company-scope contact of that company and requests each page
``--runs`` times after a warm-up. Printed per page: median and 95th-percentile latency, SQL
queries per request (counted in the server) and the server's median CPU time per request (a figure
that other load on the machine does not inflate); then the server process's peak memory (VmHWM).
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE.parent))

COMPANIES = 1000
CONTACTS_PER_COMPANY = 20
TARGET_TICKETS = 10_000
COMMENTS_PER_TICKET = 3
PASSWORD = "bench-password"
WORDS = ("stampa cedolino fattura presenze contabilità errore installazione licenza backup server rete "
         "stampante modulo report export import banca iva chiusura esercizio utente password accesso "
         "lentezza aggiornamento versione database ordine magazzino listino sconto").split()
STATUS_WEIGHTS = {"closed": 60, "discarded": 4, "open": 6, "waiting_support": 8, "waiting_customer": 6,
                  "in_progress": 5, "planned": 3, "waiting_dev": 3, "resolved": 4, "blocked": 1}


def make_app(db_path: Path):
    from crm_portal import create_app

    return create_app({
        "DATABASE_URL": f"sqlite:///{db_path}", "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False,
        "INSTANCE_PATH": str(DATA / "instance"), "SERVER_NAME": None, "BABEL_DEFAULT_LOCALE": "en",
    })


# --- building ----------------------------------------------------------------------------------
def build(db_path: Path, total: int, seed: int = 7) -> None:
    from crm_portal.auth import hash_password
    from crm_portal.db import db
    from crm_portal.migrations import upgrade
    from crm_portal.models import Company, Contact, Profile
    from crm_portal.modules.tickets import workflow
    from crm_portal.modules.tickets.models import TicketCategory, TicketCounter
    from crm_portal.provisioning import install_defaults

    if db_path.exists():
        db_path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    started = time.perf_counter()
    rng = random.Random(seed)
    app = make_app(db_path)
    with app.app_context(), db.connection_context():
        upgrade(app.extensions["crm_portal"])
        install_defaults(app)
        workflow.install_defaults()
        for pragma in ("synchronous = OFF", "cache_size = -400000", "temp_store = MEMORY"):
            db.execute_sql(f"PRAGMA {pragma}")
        company_profile = Profile.get(Profile.name == "company").id
        user_profile = Profile.get(Profile.name == "user").id
        categories = [c.id for c in TicketCategory.select()]
        now = dt.datetime(2030, 6, 1, 12, 0)
        stamp = now.strftime("%Y-%m-%d %H:%M:%S")
        with db.atomic():
            Company.insert_many([{"name": f"Bench {i:04d} S.r.l.", "city": "Milano", "created_at": stamp}
                                 for i in range(1, COMPANIES + 1)]).execute()
            company_ids = [c for (c,) in Company.select(Company.id).order_by(Company.id).tuples()]
            password = hash_password(PASSWORD)
            rows = []
            for n, company_id in enumerate(company_ids):
                for k in range(CONTACTS_PER_COMPANY):
                    first = rng.choice(["Anna", "Bruno", "Carla", "Dario", "Elena", "Fabio", "Giulia", "Luca"])
                    rows.append({"first_name": first, "last_name": f"Rossi{n:04d}{k:02d}", "company": company_id,
                                 "email": f"c{n:04d}.{k:02d}@bench.example", "language": "en",
                                 "portal_access": k == 0 and n == 0,
                                 "profile": company_profile if k == 0 else user_profile,
                                 "password_hash": password if (k == 0 and n == 0) else None,
                                 "session_token": f"t{n}-{k}", "created_at": stamp})
            for i in range(0, len(rows), 2000):
                Contact.insert_many(rows[i:i + 2000]).execute()
        contacts: dict[int, list[tuple[int, str]]] = {}
        for cid, company, first, last in Contact.select(Contact.id, Contact.company, Contact.first_name,
                                                        Contact.last_name).tuples():
            contacts.setdefault(company, []).append((cid, f"{first} {last}"))
        target = company_ids[0]
        others = company_ids[1:]
        statuses = list(STATUS_WEIGHTS)
        weights = list(STATUS_WEIGHTS.values())
        final = {"closed", "discarded"}
        conn = db.connection()
        ticket_sql = ("INSERT INTO tickets_ticket (id, seq, number, title, description, type, category_id, priority, "
                      "severity, status, contact_id, company_id, requester_name, service_id, service_name, "
                      "assignee_name, hours_spent, created_at, updated_at, response_due_at, taken_at, resolved_at, "
                      "closed_at, public_comments, news_seq, search_text) "
                      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
        comment_sql = ("INSERT INTO tickets_comment "
                       "(ticket_id, kind, body, author_contact_id, author_name, created_at) "
                       "VALUES (?,?,?,?,?,?)")
        target_count = min(TARGET_TICKETS, total)
        chunk = 50_000
        comment_total = 0
        for start in range(0, total, chunk):
            tickets, comments = [], []
            for seq in range(start + 1, min(total, start + chunk) + 1):
                company = target if seq <= target_count else others[seq % len(others)]
                contact_id, name = rng.choice(contacts[company])
                created = now - dt.timedelta(minutes=rng.randrange(0, 3 * 365 * 24 * 60))
                updated = created + dt.timedelta(minutes=rng.randrange(0, 20 * 24 * 60))
                status = rng.choices(statuses, weights)[0]
                if status == "resolved":  # resolved recently: nothing for the auto-close to do
                    updated = now - dt.timedelta(hours=rng.randrange(1, 48))
                    created = min(created, updated)
                words = rng.sample(WORDS, 5)
                title = " ".join(words).capitalize()
                service = rng.choice(("Assistenza gestionale", "Assistenza sistemistica", None))
                ticket_comments = rng.randrange(0, 2 * COMMENTS_PER_TICKET + 1)
                fmt = "%Y-%m-%d %H:%M:%S"
                tickets.append((
                    seq, seq, f"TT{seq}", title, "Descrizione: " + " ".join(rng.sample(WORDS, 12)),
                    rng.choice(("question", "problem", "request")), rng.choice(categories),
                    rng.choice(("urgent", "medium", "low")), rng.choice(("blocking", "non_blocking")), status,
                    contact_id, company, name, None, service,
                    None if status == "open" else rng.choice(("Olga Operatrice", "Stefano Supporto")), 0,
                    created.strftime(fmt), updated.strftime(fmt), (created + dt.timedelta(hours=8)).strftime(fmt),
                    None if status == "open" else (created + dt.timedelta(hours=2)).strftime(fmt),
                    updated.strftime(fmt) if status == "resolved" else None,
                    updated.strftime(fmt) if status in final else None, ticket_comments,
                    0,  # news_seq: nothing new for the reader (no read rows needed)
                    " ".join(p for p in (f"tt{seq}", title, name, service) if p).lower(),
                ))
                for c in range(ticket_comments):
                    comments.append((seq, "public", "Commento " + " ".join(rng.sample(WORDS, 8)),
                                     contact_id if c % 2 == 0 else None, name if c % 2 == 0 else "Supporto",
                                     (created + dt.timedelta(hours=c + 1)).strftime(fmt)))
            with db.atomic():
                conn.executemany(ticket_sql, tickets)
                conn.executemany(comment_sql, comments)
            comment_total += len(comments)
            print(f"  {min(total, start + chunk):>9,} tickets, {comment_total:>9,} comments "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        TicketCounter.update(value=total).where(TicketCounter.name == "ticket").execute()
        db.execute_sql("ANALYZE")
    print(f"built {db_path.name}: {total:,} tickets, {comment_total:,} comments "
          f"in {time.perf_counter() - started:.0f} s", flush=True)


# --- serving -----------------------------------------------------------------------------------
def serve(db_path: Path, port: int) -> None:
    from flask import g
    from werkzeug.serving import make_server

    app = make_app(db_path)

    class Counter(logging.Handler):
        def emit(self, record):
            try:
                g.bench_queries = g.get("bench_queries", 0) + 1
            except RuntimeError:
                pass

    logger = logging.getLogger("peewee")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Counter())
    logger.propagate = False

    @app.before_request
    def _start():
        g.bench_cpu = time.process_time()

    @app.after_request
    def _count(response):
        response.headers["X-Queries"] = str(g.get("bench_queries", 0))
        response.headers["X-CPU-ms"] = f"{(time.process_time() - g.get('bench_cpu', time.process_time())) * 1000:.2f}"
        return response

    server = make_server("127.0.0.1", port, app, threaded=False)
    print("ready", flush=True)
    server.serve_forever()


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> None:
    """Reset VmHWM (Linux: ``echo 5 > /proc/PID/clear_refs``); harmless where not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, float, int, bytes]:
        """Status, wall-clock ms, SQL queries, body; ``self.cpu_ms`` is the server's CPU time."""
        headers = {"Cookie": self.cookie} if self.cookie else {}
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        self.cpu_ms = float(response.getheader("X-CPU-ms") or 0)
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return response.status, elapsed, int(response.getheader("X-Queries") or 0), payload


def measure(db_path: Path, runs: int, port: int) -> dict:
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(db_path), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = Client(port)
        status, *_ = client.request("POST", "/login", {"email": "c0000.00@bench.example", "password": PASSWORD})
        assert status == 302, f"login failed ({status})"
        login_peak = peak_memory_mb(server.pid)
        reset_peak(server.pid)  # the login's argon2 hash (64 MiB by default) is not a page's cost
        _, _, _, listing = client.request("GET", "/tickets/")
        ticket_id = int(re.search(rb'data-href="/tickets/(\d+)"', listing).group(1))
        total = re.search(rb'data-testid="showing">[^<]*?of ([\d,]+)', listing)
        pages = {
            "list, page 1": "/tickets/",
            "list, page 200": "/tickets/?page=200",
            "list, sorted by last update (asc)": "/tickets/?sort=updated_at&dir=asc",
            "list, filtered by status": "/tickets/?f_status=waiting_support",
            "list, open tickets": "/tickets/?state=open",
            "list, searched by a word": "/tickets/?q=stampante",
            "ticket page": f"/tickets/{ticket_id}",
            "dashboard": "/",
        }
        results = {}
        for label, path in pages.items():
            for _ in range(3):
                client.request("GET", path)
            times, cpu, queries = [], [], set()
            for _ in range(runs):
                status, elapsed, count, _ = client.request("GET", path)
                assert status == 200, (path, status)
                times.append(elapsed)
                cpu.append(client.cpu_ms)
                queries.add(count)
            times.sort()
            results[label] = {"median_ms": statistics.median(times),
                              "p95_ms": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))],
                              "cpu_ms": statistics.median(cpu), "queries": max(queries)}
        results["_peak_memory_mb"] = peak_memory_mb(server.pid)
        results["_peak_with_login_mb"] = max(login_peak, results["_peak_memory_mb"])
        results["_company_tickets"] = total.group(1).decode() if total else "?"
        return results
    finally:
        server.terminate()
        server.wait(10)


def report(name: str, results: dict) -> None:
    print(f"\n== {name}: company with {results['_company_tickets']} tickets")
    print(f"{'page':<38}{'median ms':>10}{'p95 ms':>10}{'CPU ms':>8}{'queries':>9}")
    for label, r in results.items():
        if not label.startswith("_"):
            print(f"{label:<38}{r['median_ms']:>10.1f}{r['p95_ms']:>10.1f}{r['cpu_ms']:>8.1f}{r['queries']:>9}")
    print(f"server peak memory while serving the pages: {results['_peak_memory_mb']:.0f} MB "
          f"(with the login's password hash: {results['_peak_with_login_mb']:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--port", type=int, default=5099)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve), args.port)
        return
    DATA.mkdir(parents=True, exist_ok=True)
    all_results = {}
    for total in (args.tickets, args.small):
        db_path = DATA / f"tickets_{total}.db"
        if args.rebuild or not db_path.exists():
            print(f"building {db_path} …", flush=True)
            build(db_path, total)
        all_results[total] = measure(db_path, args.runs, args.port)
        report(f"{total:,} tickets in the database", all_results[total])
    big, small = all_results[args.tickets], all_results[args.small]
    print("\nslowdown (large / small median):")
    for label in big:
        if not label.startswith("_"):
            print(f"  {label:<38}{big[label]['median_ms'] / small[label]['median_ms']:.2f}×")
    (DATA / "results.json").write_text(json.dumps({str(k): v for k, v in all_results.items()}, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
