"""Outbox benchmark: how fast a backlog of email leaves for a local SMTP server.

    python bench/outbox.py                      # 1,400 messages, SQLite in a temporary folder
    python bench/outbox.py --messages 5000 --connect-delay 150
    python bench/outbox.py --database-url postgresql://postgres@127.0.0.1:5432/bench

An SMTP server (aiosmtpd) listens on 127.0.0.1 in this process and accepts every message;
``--connect-delay`` makes it wait that many milliseconds before answering EHLO, as a remote server
with TLS and authentication does. The backlog is queued, then delivered twice from the same rows:

- batched: ``deliver_pending`` as the worker runs it (batches of ``MAIL_BATCH_SIZE`` over one connection);
- one connection per message: the same claims and marks, with a connection (and a TLS context) made
  for each message, the way delivery used to work; it also stopped at 200 messages per minute.

Printed: messages per minute, SMTP connections and the ratio between the two.
"""
from __future__ import annotations

import argparse
import asyncio
import smtplib
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Sink:
    """Accepts every message; counts connections (EHLO) and messages."""

    def __init__(self, connect_delay: float) -> None:
        self.connect_delay, self.connections, self.messages = connect_delay, 0, 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        if self.connect_delay:
            await asyncio.sleep(self.connect_delay)
        return responses

    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        return "250 OK"


class OneConnectionPerMessage:
    """How messages used to be sent: a TLS context and a connection of their own for each one."""

    def __init__(self, transport) -> None:
        self.transport = transport

    def send(self, message) -> None:
        smtp = smtplib.SMTP(self.transport.server, self.transport.port, timeout=self.transport.timeout)
        ssl.create_default_context()  # built per message whether TLS was used or not
        with smtp:
            smtp.send_message(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def queue_backlog(app, count: int) -> None:
    from crm_portal.db import db, utcnow
    from crm_portal.outbox import queue_email

    contact = type("Contact", (), {"first_name": "Bench", "email": "bench@example.com"})()
    with app.test_request_context(), db.connection_context(), db.atomic():
        for i in range(count):
            queue_email(f"user{i}@example.com", "password-changed", language="en", contact=contact,
                        link="https://portal.example.com/forgot-password", when=utcnow())


def make_pending_again() -> None:
    from crm_portal.db import db, utcnow
    from crm_portal.models import OutboxMessage

    with db.atomic():
        OutboxMessage.update(status="pending", attempts=0, sent_at=None, claim_token=None,
                             next_attempt_at=utcnow()).execute()


def measure(app, sink: Sink, transport=None) -> tuple[float, int, int]:
    """(messages per minute, messages sent, SMTP connections) of one delivery of the whole backlog."""
    from crm_portal import mail
    from crm_portal.db import db

    with app.app_context(), db.connection_context():
        make_pending_again()
        connections = sink.connections
        start = time.perf_counter()
        counts = mail.deliver_pending(transport=transport)
        elapsed = time.perf_counter() - start
    return counts["sent"] * 60 / elapsed, counts["sent"], sink.connections - connections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1400)
    parser.add_argument("--connect-delay", type=float, default=0, help="ms before the server answers EHLO")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument("--batch-size", type=int, default=None, help="default: MAIL_BATCH_SIZE")
    args = parser.parse_args()

    from aiosmtpd.controller import Controller

    from crm_portal import create_app, mail
    from crm_portal.db import db
    from crm_portal.migrations import upgrade

    sink = Sink(args.connect_delay / 1000)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = {"SECRET_KEY": "bench", "INSTANCE_PATH": folder, "HUEY_IMMEDIATE": False,
                      "HUEY_URL": "memory://", "MAIL_TRANSPORT": "smtp", "MAIL_SERVER": "127.0.0.1",
                      "MAIL_PORT": port, "EXTERNAL_URL": "https://portal.example.com",
                      "DATABASE_URL": args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"}
            if args.batch_size:
                config["MAIL_BATCH_SIZE"] = args.batch_size
            app = create_app(config)
            with app.app_context(), db.connection_context():
                upgrade(app.extensions["crm_portal"])
                from crm_portal.models import OutboxMessage

                OutboxMessage.delete().execute()
            queue_backlog(app, args.messages)
            with app.app_context():
                one_by_one = OneConnectionPerMessage(mail.get_transport())
            new_rate, new_sent, new_connections = measure(app, sink)
            old_rate, old_sent, old_connections = measure(app, sink, one_by_one)
    finally:
        controller.stop()
    print(f"{args.messages} messages, SMTP server on 127.0.0.1, EHLO delay {args.connect_delay:g} ms")
    print(f"batched (one connection):   {new_rate:9.0f} messages/minute  "
          f"({new_sent} sent, {new_connections} connections)")
    print(f"one connection per message: {old_rate:9.0f} messages/minute  "
          f"({old_sent} sent, {old_connections} connections)")
    print(f"ratio: {new_rate / old_rate:.1f}x; the old delivery also stopped at 200 messages a minute, "
          f"so {args.messages} took {-(-args.messages // 200)} minutes "
          f"(now {args.messages / new_rate * 60:.1f} s)")


if __name__ == "__main__":
    main()
