"""Background jobs on huey: email delivery and the periodic jobs of the core and of modules.

Storage: ``HUEY_URL`` (``redis://…``/``rediss://…`` → Redis, ``sqlite:///path`` → SQLite file,
``memory://`` → in-process) or, by default, SQLite at ``<instance>/huey.db``. With ``REDIS_URL`` set
and no ``HUEY_URL``, Redis is used. In tests (``TESTING``) tasks run immediately in-process unless
``HUEY_IMMEDIATE`` says otherwise.

Email: :func:`crm_portal.outbox.queue_email` asks for delivery (:func:`kick_delivery`) after its
transaction commits. Periodic jobs: the core delivers pending email every minute (so a message whose
request was lost still goes out), blanks the bodies of sent emails that carried one-time links
hourly, polls the IMAP mailboxes of email-in every minute, forgets the API's idempotency keys after
24 hours (hourly) and prunes old account tokens and login counters daily; a module adds its own with
:meth:`crm_portal.api.Module.periodic_tasks`. ``crm-portal worker`` runs the consumer.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab

from .db import db, flush_pool, open_connection, release_connection, utcnow

log = logging.getLogger("crm_portal.jobs")


@contextmanager
def app_db_context(app: Flask) -> Iterator[None]:
    """An application context with a database connection, reusing one that is already open.

    A connection the database server dropped (a restart between two jobs) is replaced first; a
    job that fails because the server went away gives back a dead connection, and the pool's idle
    ones go with it, so the next job starts on live ones (:mod:`crm_portal.db`)."""
    with app.app_context():
        opened = open_connection()
        try:
            yield
        except BaseException as exc:
            flush_pool(exc)
            raise
        finally:
            if opened:
                release_connection()


def parse_schedule(schedule: Any) -> Callable[[dt.datetime], bool]:
    """A huey schedule from a five-field crontab string (``"*/5 * * * *"``), a mapping of
    :func:`huey.crontab` arguments, or a callable taking a datetime."""
    if callable(schedule):
        return schedule
    if isinstance(schedule, dict):
        return crontab(strict=True, **schedule)
    fields = str(schedule).split()
    if len(fields) != 5:
        raise ValueError(f"schedule {schedule!r}: expected 'minute hour day month day-of-week'")
    minute, hour, day, month, day_of_week = fields
    return crontab(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week, strict=True)


def make_huey(app: Flask) -> Huey:
    config = app.config
    name = config.get("HUEY_NAME") or "crm_portal"  # the queue's keys: several portals can share one Redis
    immediate = config.get("HUEY_IMMEDIATE")
    if immediate is None:
        immediate = bool(app.testing) and not config.get("HUEY_URL")
    url = config.get("HUEY_URL") or config.get("REDIS_URL")
    if immediate:
        return MemoryHuey(name, immediate=True, results=False)
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False)
    if url and url.startswith("memory://"):
        return MemoryHuey(name, results=False)
    if url and url.startswith("sqlite:///"):
        filename = url[len("sqlite:///"):]
    elif url:
        raise ValueError(f"HUEY_URL {url!r}: use redis://…, sqlite:///path or memory://")
    else:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        filename = str(Path(app.instance_path) / "huey.db")
    return SqliteHuey(name, filename=filename, results=False)


def prune(now: dt.datetime | None = None) -> None:
    """Forget account tokens older than a month and login counters quiet for a day."""
    from .models import AccountToken, LoginThrottle

    now = now or utcnow()
    with db.atomic():
        AccountToken.delete().where(AccountToken.created_at < now - dt.timedelta(days=30)).execute()
        LoginThrottle.delete().where(LoginThrottle.last_failure_at < now - dt.timedelta(days=1)).execute()


def prune_sensitive_mail(now: dt.datetime | None = None) -> int:
    """Blank the bodies of sent emails of ``MAIL_SENSITIVE_TEMPLATES`` (one-time links: invitations,
    password resets, registration confirmations) sent more than ``MAIL_SENSITIVE_RETENTION_HOURS``
    ago; the row (recipient, subject, state) stays for the record. Returns how many were blanked."""
    from .models import OutboxMessage

    config = current_app.config
    templates = list(config["MAIL_SENSITIVE_TEMPLATES"] or [])
    cutoff = (now or utcnow()) - dt.timedelta(hours=float(config["MAIL_SENSITIVE_RETENTION_HOURS"]))
    with db.atomic():
        return (OutboxMessage.update(body_text="", body_html=None)
                .where((OutboxMessage.status == "sent") & OutboxMessage.template.in_(templates)
                       & (OutboxMessage.sent_at < cutoff)
                       & ((OutboxMessage.body_text != "") | OutboxMessage.body_html.is_null(False)))
                .execute())


def core_periodic_tasks() -> list[tuple[str, Any, Callable[[], Any]]]:
    from .changes import prune as prune_changes
    from .mail import deliver_pending
    from .mailin.imap import poll_all
    from .rest.idempotency import prune as prune_idempotency
    from .sync.deletion import purge
    from .webhooks import deliver_due

    return [
        ("core.deliver_mail", "* * * * *", deliver_pending),
        ("core.poll_mailboxes", "* * * * *", poll_all),
        ("core.deliver_webhooks", "* * * * *", deliver_due),
        ("core.prune_mail", "41 * * * *", prune_sensitive_mail),
        ("core.prune", "17 3 * * *", prune),
        ("core.sync_purge", "47 2 * * *", purge),
        ("core.prune_changes", "29 3 * * *", prune_changes),
        ("core.prune_idempotency", "29 * * * *", prune_idempotency),
    ]


def init_app(app: Flask) -> Huey:
    """Create the application's huey, its email task and every periodic job."""
    huey = make_huey(app)

    @huey.task(name="core.deliver_message")
    def deliver_message(message_ids: list[int]) -> None:
        from .mail import deliver_ids

        with app_db_context(app):
            try:
                deliver_ids(message_ids)
            except Exception:  # noqa: BLE001 - the periodic run sends what is left
                log.exception("email %s: delivery error", message_ids)

    @huey.task(name="core.send_webhooks")
    def deliver_webhooks(delivery_ids: list[int]) -> None:
        from .webhooks import deliver_ids

        with app_db_context(app):
            try:
                deliver_ids(delivery_ids)
            except Exception:  # noqa: BLE001 - the periodic run sends what is left
                log.exception("webhooks %s: delivery error", delivery_ids)

    jobs = [(name, schedule, func, "core") for name, schedule, func in core_periodic_tasks()]
    for module in app.extensions["crm_portal"].modules.values():
        for name, schedule, func in module.periodic_tasks():
            jobs.append((f"{module.name}.{name}", schedule, func, module.name))
    for name, schedule, func, _owner in jobs:
        _register_periodic(app, huey, name, schedule, func)

    app.extensions["huey"] = huey
    app.extensions["crm_portal_jobs"] = {"deliver_message": deliver_message, "deliver_webhooks": deliver_webhooks,
                                         "periodic": [name for name, *_ in jobs]}
    return huey


def _register_periodic(app: Flask, huey: Huey, name: str, schedule: Any, func: Callable[[], Any]) -> None:
    validate = parse_schedule(schedule)

    def run() -> None:
        with app_db_context(app):
            func()

    run.__name__ = name.replace(".", "_")
    huey.periodic_task(validate, name=name)(run)


def kick_delivery(message_ids: list[int] | None = None, app: Flask | None = None) -> None:
    """Ask the worker to send these outbox messages now. :func:`crm_portal.outbox.queue_email` does
    it after its transaction commits; call it yourself only for messages you made due otherwise.

    Never raises (it runs inside a commit): losing this request is harmless, the periodic job sends
    every pending message within a minute.
    """
    ids = [m for m in (message_ids or []) if m is not None]
    if not ids:
        return
    try:
        (app or current_app).extensions["crm_portal_jobs"]["deliver_message"](ids)
    except Exception:  # noqa: BLE001 - the queue is down: the periodic job will catch up
        log.exception("could not enqueue delivery of %s", ids)
