"""Throughput of the ticket list under gunicorn at 1, 2 and 4 workers, loaded by ``wrk``.

    python bench/throughput.py                          # SQLite, the 10,000-ticket database
    python bench/throughput.py --tickets 1000000 --duration 15
    CRM_PORTAL_BENCH_PG=postgresql://127.0.0.1:5432/bench_ratio python bench/throughput.py   # or --pg URL

For each worker count the portal runs under gunicorn exactly as in production
(``gunicorn --workers N 'crm_portal:create_app()'``, configured through ``CRM_PORTAL_*`` variables)
on the benchmark database ``bench/tickets.py`` builds (copied to PostgreSQL by ``bench/data_pg.py``).
The company-scope contact logs in through the login form (CSRF token and all), then ``wrk`` (Debian
package ``wrk``) loads the list page with that session cookie from a second process, with a bounded
load (2 threads, 8 connections, 10 s by default). Printed per worker count: requests per second,
latency percentiles, errors, the speed-up over one worker, the workers' memory; then where the
throughput stops growing. ``wrk`` and the server share the machine's cores: on a 2-core machine
expect it to stop at about 2 workers.
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import tickets as ticket_data  # noqa: E402

PATH = "/tickets/"
#: A worker count whose throughput is under this factor of the previous one no longer helps.
GROWTH = 1.10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(url: str, workers: int, threads: int, port: int) -> subprocess.Popen:
    """gunicorn serving the portal on ``url``; returns once it answers."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    env = {**os.environ, "CRM_PORTAL_DATABASE_URL": url, "CRM_PORTAL_SECRET_KEY": "bench",
           "CRM_PORTAL_INSTANCE_PATH": str(ticket_data.DATA / "instance"),
           "CRM_PORTAL_BABEL_DEFAULT_LOCALE": "en"}
    server = subprocess.Popen(
        [gunicorn, "--workers", str(workers), "--threads", str(threads), "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning", "crm_portal:create_app()"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.stderr.read() if server.stderr else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/login")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.3)
    stop(server)
    raise RuntimeError("gunicorn did not answer within 120 s")


def stop(server: subprocess.Popen) -> None:
    """Stop gunicorn (the arbiter ends its workers) and wait for it."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def _cookies(response: http.client.HTTPResponse, jar: dict[str, str]) -> None:
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, value = header.split(";", 1)[0].partition("=")
        jar[name.strip()] = value


def login(port: int) -> str:
    """The Cookie header of the measured contact's session, logged in through the form."""
    jar: dict[str, str] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/login")
    response = conn.getresponse()
    page = response.read().decode()
    _cookies(response, jar)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    body = {"email": "c0000.00@bench.example", "password": ticket_data.PASSWORD}
    if token:
        body["csrf_token"] = token.group(1)
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    conn.request("POST", "/login", body=urllib.parse.urlencode(body),
                 headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    response = conn.getresponse()
    response.read()
    if response.status != 302:
        raise RuntimeError(f"login failed ({response.status})")
    _cookies(response, jar)
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    conn.request("GET", PATH, headers={"Cookie": cookie})
    response = conn.getresponse()
    listing = response.read()
    if response.status != 200 or b"data-testid=\"showing\"" not in listing:
        raise RuntimeError(f"the list did not show for the logged-in contact ({response.status})")
    return cookie


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, latency percentiles (ms) and errors from ``wrk --latency``'s output."""
    def ms(text: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    found = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for p in ("50", "90", "99"):
        match = re.search(rf"^\s+{p}%\s+(\S+)", output, re.M)
        found[f"p{p}"] = ms(match.group(1)) if match else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    found["errors"] = (int(errors.group(1)) if errors else 0) + (
        sum(int(x) for x in socket_errors.groups()) if socket_errors else 0)
    found["requests"] = float(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return found


def workers_rss_mb(server: subprocess.Popen) -> list[float]:
    """Resident memory of each gunicorn worker (the arbiter's children)."""
    out = []
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return out


def run_wrk(port: int, cookie: str, threads: int, connections: int, duration: int) -> str:
    wrk = shutil.which("wrk")
    if not wrk:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    result = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"Cookie: {cookie}",
         f"http://127.0.0.1:{port}{PATH}"], capture_output=True, text=True, timeout=duration + 60, check=True)
    return result.stdout


def where_it_stops(rows: list[tuple[int, dict]]) -> str:
    """The worker count after which more workers add less than 10 %."""
    for (n, prev), (m, cur) in zip(rows, rows[1:], strict=False):
        if cur["rps"] < prev["rps"] * GROWTH:
            return (f"throughput stops growing at {n} worker{'s' if n > 1 else ''}: {m} give "
                    f"{cur['rps']:.1f} req/s against {prev['rps']:.1f}")
    return f"throughput still grows at {rows[-1][0]} workers"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=10_000, help="tickets in the database served")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per worker count")
    parser.add_argument("--pg", nargs="?", const=os.environ.get("CRM_PORTAL_BENCH_PG") or
                        "postgresql://127.0.0.1:5432/bench_ratio", default=os.environ.get("CRM_PORTAL_BENCH_PG"))
    args = parser.parse_args(argv)
    import ratios

    url = ratios.database_url(args.tickets, args.pg)
    engine = "PostgreSQL" if args.pg else "SQLite"
    load_before = os.getloadavg()
    print(f"throughput of {PATH} on {engine} ({args.tickets:,} tickets), gunicorn × {args.threads} thread(s), "
          f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s; {os.cpu_count()} CPUs, "
          f"load average before {' '.join(f'{x:.2f}' for x in load_before)}", flush=True)
    print(f"{'workers':>8}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}{'speed-up':>10}"
          f"{'RSS/worker MB':>15}", flush=True)
    rows: list[tuple[int, dict]] = []
    for workers in (int(n) for n in args.workers.split(",")):
        port = free_port()
        server = start_gunicorn(url, workers, args.threads, port)
        try:
            cookie = login(port)
            found = parse_wrk(run_wrk(port, cookie, args.wrk_threads, args.connections, args.duration))
            rss = workers_rss_mb(server)
        finally:
            stop(server)
        rows.append((workers, found))
        speedup = found["rps"] / rows[0][1]["rps"]
        print(f"{workers:>8}{found['rps']:>9.1f}{found['p50']:>9.1f}{found['p90']:>9.1f}{found['p99']:>9.1f}"
              f"{found['errors']:>8}{speedup:>9.2f}×{max(rss or [0]):>15.0f}", flush=True)
    print(where_it_stops(rows))
    load_after = os.getloadavg()
    print(f"load average after {' '.join(f'{x:.2f}' for x in load_after)} (1, 5, 15 min)")


if __name__ == "__main__":
    main()
