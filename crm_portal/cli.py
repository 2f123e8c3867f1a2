"""The ``crm-portal`` command (also ``flask --app crm_portal``): init, migrate, demo, modules, run,
worker (background jobs) and send-mail."""
from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, ScriptInfo, pass_script_info, with_appcontext

from .db import db


def _registry():
    return current_app.extensions["crm_portal"]


def _check_password(password: str, email: str) -> None:
    """The password policy of every account (crm_portal.account.passwords: length, common and breached
    passwords, not the email, zxcvbn's strength estimate)."""
    from .account.passwords import problems

    found = problems(password, email=email)
    if found:
        raise click.BadParameter(" ".join(found), param_hint="--admin-password")


def _external_url(option: str | None) -> str | None:
    """The ``EXTERNAL_URL`` ``init`` writes: the option, else none when one is configured, else
    (development) :data:`crm_portal.outbox.DEVELOPMENT_URL`. A production instance must be told
    its address, and the address must be one of ``TRUSTED_HOSTS``, or it could not start."""
    from werkzeug.sansio.utils import host_is_trusted

    from .config import ConfigurationError, normalize_external_url
    from .outbox import DEVELOPMENT_URL

    if option is None:
        if current_app.config.get("EXTERNAL_URL"):
            return None
        if current_app.config["PRODUCTION"]:
            raise click.UsageError("This is a production instance (PRODUCTION = true): give the address users "
                                   "open with --external-url, e.g. --external-url https://portal.example.com.")
        return DEVELOPMENT_URL
    try:
        url = normalize_external_url(option)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--external-url") from exc
    hosts = current_app.config.get("TRUSTED_HOSTS")
    if hosts and not host_is_trusted(urlsplit(url).netloc, hosts):
        raise click.BadParameter(f"the host of {url} is not in TRUSTED_HOSTS {hosts}: the portal would refuse "
                                 "every link of its emails.", param_hint="--external-url")
    return url


def _init_app(info: ScriptInfo) -> Flask:
    """The application ``init`` works on. It may be a production instance that has no secret key or
    ``EXTERNAL_URL`` yet, which any other command refuses: init is the one that writes them."""
    from .config import preparing_instance

    with preparing_instance():
        return info.load_app()


@click.command("init")
@click.option("--admin-email", default=None, help="Email of the first staff admin (default: ADMIN_EMAIL).")
@click.option("--admin-password", default=None,
              help="Password for that admin (default: generated and printed); the password policy applies.")
@click.option("--no-admin", is_flag=True, help="Create no staff admin (the demo data brings its own).")
@click.option("--external-url", default=None,
              help="Address users open, e.g. https://portal.example.com: every link in emails starts with it "
                   "(written to config.toml as EXTERNAL_URL; default: the configured one, else, outside "
                   "production, http://127.0.0.1:5000).")
@pass_script_info
def init_command(info: ScriptInfo, admin_email: str | None, admin_password: str | None, no_admin: bool,
                 external_url: str | None) -> None:
    """Create the secret key, EXTERNAL_URL, the database schema, default profiles and buttons and a staff admin.

    Works on a fresh production instance too (config.toml with PRODUCTION = true and DATABASE_URL
    written first): the secret key and EXTERNAL_URL are written before anything needs them, and
    the schema goes to the configured database only."""
    with _init_app(info).app_context():
        _initialise(admin_email, admin_password, no_admin, external_url)


def _initialise(admin_email: str | None, admin_password: str | None, no_admin: bool,
                external_url: str | None) -> None:
    from .auth import hash_password
    from .config import write_secret, write_setting
    from .migrations import upgrade
    from .models import StaffUser
    from .provisioning import install_defaults

    email = (admin_email or current_app.config["ADMIN_EMAIL"]).strip().lower()
    if admin_password is not None:
        _check_password(admin_password, email)  # before anything is written
    url = _external_url(external_url)
    secret = write_secret(current_app)
    click.echo(f"secret key: {secret}")
    if url is not None:
        click.echo(f"EXTERNAL_URL = {url} in {write_setting(current_app, 'EXTERNAL_URL', url)}")
    with db.connection_context():
        for line in upgrade(_registry()):
            click.echo(line)
        for line in install_defaults(current_app):
            click.echo(f"installed {line}")
        if not no_admin and StaffUser.get_or_none(StaffUser.email == email) is None:
            password = admin_password or secrets.token_urlsafe(12)
            with db.atomic():
                StaffUser.create(email=email, name="Administrator", role="admin",
                                 password_hash=hash_password(password))
            click.echo(f"staff admin {email}" + ("" if admin_password else f" with password {password}"))
    click.echo("ready")


@click.command("migrate")
@click.option("--check", is_flag=True,
              help="Change nothing; list the pending schema steps and exit with status 1 when some are "
                   "pending, 0 when the schema is up to date (for deploy scripts).")
@click.option("--dry-run", is_flag=True,
              help="Change nothing; list the tables that would be created and the steps that would run.")
@click.option("--no-backup", is_flag=True,
              help="On SQLite, skip the online backup taken into the instance's backups/ folder before the "
                   "first pending step.")
@with_appcontext
def migrate_command(check: bool, dry_run: bool, no_backup: bool) -> None:
    """Create new tables and apply pending schema steps of the core and every enabled module.

    Each step runs in one transaction with its record: a step that fails changes nothing and
    migrate can simply be run again. On SQLite an online backup of the database is taken first
    (unless --no-backup), when a step is pending."""
    from pathlib import Path

    import peewee

    from .migrations import StepFailed, backup_before_migration, plan, upgrade

    if check and dry_run:
        raise click.UsageError("--check and --dry-run are alternatives: give one.")
    with db.connection_context():
        if check or dry_run:
            todo = plan(_registry())
            for owner, table in todo.create:
                click.echo(f"{owner}: {'would create' if dry_run else 'pending table'} {table}")
            for owner, name in todo.run:
                click.echo(f"{owner}: {'would apply' if dry_run else 'pending'} {name}")
            for owner, name in todo.record:
                click.echo(f"{owner}: {'would record' if dry_run else 'pending'} {name} (its tables are created "
                           "in their final shape)")
            if check:
                click.echo(f"{'schema changes pending' if todo.pending else 'schema up to date'}")
                click.get_current_context().exit(1 if todo.pending else 0)
            if not todo.pending:
                click.echo("schema up to date")
            return

        def backup() -> None:
            folder = Path(current_app.instance_path) / "backups"
            try:
                path = backup_before_migration(folder)
            except (OSError, peewee.DatabaseError) as exc:
                raise click.ClickException(f"could not back up the database into {folder} ({exc}); no step "
                                           "was run. Free space or fix the folder, or give --no-backup.") from exc
            click.echo(f"backup of the database before migrating: {path}")

        sqlite = isinstance(db.obj, peewee.SqliteDatabase)
        try:
            lines = upgrade(_registry(), before_first_step=backup if sqlite and not no_backup else None)
        except StepFailed as exc:
            raise click.ClickException(f"{exc}. The steps before it are applied; fix the cause and run "
                                       "migrate again.") from exc
    click.echo("\n".join(lines) if lines else "schema up to date")


@click.command("demo")
@with_appcontext
def demo_command() -> None:
    """Fill the database with demo companies, contacts and records (every password: demo).
    Refused on a production instance; existing accounts are never changed."""
    from .demo import load_demo

    if current_app.config["PRODUCTION"]:
        raise click.ClickException("This is a production instance (PRODUCTION = true): the demo data, with "
                                   "its well-known passwords, is never loaded here.")
    with db.connection_context():
        for line in load_demo(current_app):
            click.echo(line)


@click.command("modules")
@with_appcontext
def modules_command() -> None:
    """List discovered modules, where they come from and their state (error reasons included)."""
    registry = _registry()
    if not registry.states:
        click.echo("no modules found")
    for state in registry.states:
        line = f"{state.name:<16} {state.version or '-':<10} {state.status:<9} {state.source}"
        if state.error:
            line += f"\n{'':<38}{state.error}"
        click.echo(line)


@click.command("send-mail")
@with_appcontext
def send_mail_command() -> None:
    """Deliver the pending email of the outbox once (what the worker does every minute)."""
    from .mail import deliver_pending

    with db.connection_context():
        counts = deliver_pending()
    click.echo(f"sent {counts['sent']}, to retry {counts['retry']}, failed {counts['failed']}")


@click.command("worker")
@click.option("--workers", "-w", type=int, default=None, help="Worker threads (default: HUEY_WORKERS).")
@click.option("--no-periodic", is_flag=True, help="Do not run the periodic jobs (run them in one worker only).")
@with_appcontext
def worker_command(workers: int | None, no_periodic: bool) -> None:
    """Run the background worker: email delivery and the periodic jobs of the core and modules."""
    import logging

    huey = current_app.extensions["huey"]
    if huey.immediate:
        raise click.ClickException("HUEY_IMMEDIATE is on: tasks run in-process, there is nothing to consume.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    jobs = current_app.extensions["crm_portal_jobs"]["periodic"]
    periodic = ", ".join(jobs) if not no_periodic else "off"
    click.echo(f"worker on {type(huey.storage).__name__}; periodic jobs: {periodic}")
    consumer = huey.create_consumer(workers=workers or int(current_app.config["HUEY_WORKERS"]),
                                    worker_type="thread", periodic=not no_periodic, check_worker_health=True,
                                    # An idle SQLite queue is polled at least every second (Redis blocks
                                    # until a task arrives): an email leaves within a second of its commit.
                                    max_delay=1.0)
    consumer.run()


@click.group("api-key")
def api_key_group() -> None:
    """Keys of the integrations using the REST API (/api/v1)."""


@api_key_group.command("create")
@click.option("--name", required=True, help="The integration's name (created if new).")
@click.option("--scopes", required=True, help='Space-separated scopes, e.g. "tickets:read companies:read".')
@click.option("--expires-days", type=click.IntRange(min=1), default=None, help="Expire after N days (default: never).")
@click.option("--allow-ip", "allow_ip", multiple=True, metavar="CIDR",
              help="Accept the key only from this address range (repeatable; default: any address).")
@with_appcontext
def api_key_create_command(name: str, scopes: str, expires_days: int | None,
                           allow_ip: tuple[str, ...]) -> None:
    """Create an API key; the token, shown only now, is the last line of the output."""
    from .audit import audit
    from .rest.keys import KeyRefused, create_key

    with db.connection_context(), db.atomic():
        try:
            new = create_key(name, scopes, expires_days=expires_days, allowed_ips=allow_ip)
        except KeyRefused as exc:
            raise click.UsageError(str(exc)) from exc
        key = new.key
        audit("api_key.create", key, system=True,
              details={"integration": name, "key_id": key.key_id, "scopes": key.scopes})
    click.echo(f"key {key.key_id} of {name}; scopes: {key.scopes}")
    if key.expires_at:
        click.echo(f"expires {key.expires_at:%Y-%m-%d %H:%M} UTC")
    click.echo("The token below is shown only now; store it safely:")
    click.echo(new.token)


@api_key_group.command("revoke")
@click.argument("key_id")
@with_appcontext
def api_key_revoke_command(key_id: str) -> None:
    """Revoke the key KEY_ID: it stops working at once."""
    from .audit import audit
    from .models import ApiKey
    from .rest.keys import revoke_key

    with db.connection_context(), db.atomic():
        key = ApiKey.get_or_none(ApiKey.key_id == key_id)
        if key is None:
            raise click.UsageError(f"no API key {key_id!r}")
        if not revoke_key(key):
            click.echo(f"key {key_id} was already revoked")
            return
        audit("api_key.revoke", key, system=True, details={"key_id": key_id})
    click.echo(f"key {key_id} revoked")


@api_key_group.command("list")
@with_appcontext
def api_key_list_command() -> None:
    """List the API keys (never their secrets)."""
    from .models import ApiKey, Integration

    with db.connection_context():
        keys = list(ApiKey.select(ApiKey, Integration).join(Integration).order_by(Integration.name, ApiKey.id))
    if not keys:
        click.echo("no API keys")

    def when(value: Any) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else "-"

    for key in keys:
        state = "revoked" if key.revoked_at else "active"
        click.echo(f"{key.key_id}  {key.integration.name:<20} {state:<8} expires {when(key.expires_at)}  "
                   f"last used {when(key.last_used_at)}  ip {key.allowed_ips or 'any'}  scopes {key.scopes}")


@click.group("import")
def import_group() -> None:
    """First load of companies and contacts from a CRM's CSV export (see docs/api.md, CRM sync)."""


def _import(kind: str, file: str, integration: str, mappings: tuple[str, ...], dry_run: bool) -> None:
    from .importer import ImportRefused, parse_mapping, run_import

    try:
        with db.connection_context():
            report = run_import(kind, file, integration, parse_mapping(mappings), dry_run=dry_run)
    except ImportRefused as exc:
        raise click.UsageError(str(exc)) from exc
    for column in report.ignored_columns:
        click.echo(f"ignored column {column!r}: not a field the CRM owns for {kind} records", err=True)
    for line, outcome in report.outcomes:
        if outcome.status == "error":
            problems = "; ".join(f"{field}: {' '.join(map(str, messages))}"
                                 for field, messages in outcome.errors.items())
            click.echo(f"line {line} ({outcome.external_id}): error: {problems}", err=True)
        elif outcome.status == "conflict":
            click.echo(f"line {line} ({outcome.external_id}): conflict: records {outcome.candidates} match; "
                       "choose in the admin (CRM → Sync conflicts)", err=True)
    counts = ", ".join(f"{status} {count}" for status, count in report.counts.items())
    click.echo(("dry run, nothing written: " if dry_run else "") + counts)
    if report.failed:
        raise click.exceptions.Exit(1)


def _import_command(kind: str, plural: str) -> click.Command:
    @click.command(plural)
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--integration", required=True, help="The CRM's integration name (created if new): the "
                                                       "records' external references belong to it.")
    @click.option("--map", "mappings", multiple=True, metavar="CRM_COLUMN=FIELD",
                  help="Read a column of the file as this field (repeatable), e.g. --map 'Codice=external_id'.")
    @click.option("--dry-run", is_flag=True, help="Report what would be created, updated, unchanged, in "
                                                  "conflict or refused, writing nothing.")
    @with_appcontext
    def command(file: str, integration: str, mappings: tuple[str, ...], dry_run: bool) -> None:
        _import(kind, file, integration, mappings, dry_run)

    command.help = (f"Create or update {plural} from the CSV file FILE (UTF-8, ';' or ',' separated), by their "
                    "external_id, as the CRM sync does. Exits with 1 when a row was refused.")
    return command


import_group.add_command(_import_command("company", "companies"))
import_group.add_command(_import_command("contact", "contacts"))


def init_app(app: Flask) -> None:
    from .mailin.mailgate import COMMANDS as MAILIN_COMMANDS

    for command in (init_command, migrate_command, demo_command, modules_command, send_mail_command,
                    worker_command, api_key_group, import_group, *MAILIN_COMMANDS):
        app.cli.add_command(command)
    from .backup_cli import COMMANDS as BACKUP_COMMANDS

    for command in BACKUP_COMMANDS:
        app.cli.add_command(command)


def _create_app(*_args):
    from . import create_app

    return create_app()


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the portal's release, the libraries it runs on, and every module with its
    version (what a support request or an upgrade note needs to know)."""
    if not value or ctx.resilient_parsing:
        return
    from .versions import describe

    try:
        app = ctx.ensure_object(ScriptInfo).load_app()
    except Exception as exc:  # an instance not set up yet still answers with the release
        click.echo("\n".join(describe(None)))
        click.echo(f"modules: not listed, the application does not load here ({exc})")
    else:
        with app.app_context():
            click.echo("\n".join(describe(_registry())))
    ctx.exit()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Show the portal's version, its libraries' and every module's, and exit.")
def main() -> None:
    """CRM Portal management commands."""


# Found without loading the application first: init prepares what loading it requires in production.
main.add_command(init_command)
