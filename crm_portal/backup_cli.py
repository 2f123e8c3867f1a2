"""``crm-portal backup`` and ``crm-portal restore`` (the work is in :mod:`crm_portal.backup`)."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from .backup import BackupError, create_backup, prune_backups, restore_backup


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size / 1000:.1f} kB"


@click.command("backup")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="The archive to write, or a folder for it (default: <instance>/backups/"
                   "crm-portal-<UTC time>.tar.gz).")
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="After a successful backup, delete all but the newest N crm-portal-*.tar.gz of its folder.")
@with_appcontext
def backup_command(output: Path | None, keep: int | None) -> None:
    """Write one archive of the instance: the database (a consistent snapshot, taken while the
    portal keeps serving), then every uploaded file, config.toml and the secret key, and a
    manifest with every member's SHA-256. The archive holds secrets: keep it like the key itself."""
    try:
        result = create_backup(current_app._get_current_object(), output)  # type: ignore[attr-defined]
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    for name in result.missing:
        click.echo(f"warning: {name} is referenced by a row but was no longer in the storage", err=True)
    click.echo(f"{result.path}")
    click.echo(f"{_megabytes(result.size)}, {result.files} files, {result.seconds:.1f} s; "
               "it holds config.toml and the secret key: store it as safely as they are.")
    if keep is not None:
        for old in prune_backups(result.path.parent, keep, protect=result.path):
            click.echo(f"removed {old}")


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def restore_command(archive: Path) -> None:
    """Restore ARCHIVE (made by crm-portal backup) into this instance, which must be empty: no
    tables in its database, no uploaded files. Every checksum is verified before anything is
    written. This instance's DATABASE_URL and storage settings are kept."""
    try:
        result = restore_backup(current_app._get_current_object(), archive, echo=click.echo)  # type: ignore[attr-defined]
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    if result.pending:
        click.echo(f"{len(result.pending)} schema steps pending ({', '.join(result.pending)}): the backup comes "
                   "from an older release; run 'crm-portal migrate' before starting the portal.")
    else:
        click.echo("schema up to date; restore complete")


COMMANDS = (backup_command, restore_command)
