"""``crm-portal mailgate``: an MTA pipes one message to it (Postfix ``pipe``, an ``.forward`` or
``/etc/aliases`` line). Exit status 0: the message was dealt with (a ticket, a comment, or refused
for good: the MTA must not bounce or retry it); 75 (``EX_TEMPFAIL``): not now, the MTA keeps the
message in its queue and delivers it again. ``crm-portal poll-mail`` polls the IMAP mailboxes once."""
from __future__ import annotations

import sys
from typing import BinaryIO

import click
from flask.cli import with_appcontext

from ..db import db

EX_OK = 0
EX_TEMPFAIL = 75


def run_mailgate(stream: BinaryIO, limit: int) -> tuple[int, str]:
    """Read one message from ``stream`` (at most ``limit + 1`` bytes) and process it: the exit
    status and a line for the MTA's log."""
    from .pipeline import TemporaryFailure, ingest

    raw = stream.read(limit + 1)
    try:
        with db.connection_context():
            row = ingest(raw, "mailgate")
    except TemporaryFailure as exc:
        return EX_TEMPFAIL, f"temporary failure, try again later: {exc}"
    except Exception as exc:  # noqa: BLE001 - the database cannot be reached: the MTA keeps the message
        return EX_TEMPFAIL, f"temporary failure, try again later: {type(exc).__name__}: {exc}"
    duplicate = " (duplicate)" if getattr(row, "duplicate", False) else ""
    return EX_OK, f"{row.message_id}: {row.status}{' ' + row.reason if row.reason else ''}{duplicate}"


@click.command("mailgate")
@with_appcontext
def mailgate_command() -> None:
    """Process one raw email read on standard input (for an MTA pipe). Exit 0 when done or refused
    for good, 75 when it should be delivered again."""
    from flask import current_app

    code, line = run_mailgate(sys.stdin.buffer, int(current_app.config["MAILIN_MAX_BYTES"]))
    click.echo(line, err=code != EX_OK)
    sys.exit(code)


@click.command("poll-mail")
@with_appcontext
def poll_mail_command() -> None:
    """Poll every active IMAP mailbox once (what the worker does every minute)."""
    from .imap import poll_all

    with db.connection_context():
        results = poll_all()
    for name, counts in results.items():
        click.echo(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


COMMANDS = [mailgate_command, poll_mail_command]
