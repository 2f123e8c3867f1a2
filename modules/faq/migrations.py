"""Schema steps of the FAQ tables, applied in order by ``crm-portal migrate``."""
from __future__ import annotations

from collections.abc import Callable

from playhouse.migrate import SchemaMigrator, SqliteMigrator

from crm_portal.api import Migration

from . import search
from .models import ArticleIndex


class _Run:
    """A migration operation running Python code (inside the step's transaction)."""

    def __init__(self, func: Callable[[], object]) -> None:
        self.func = func

    def run(self) -> None:
        self.func()


def stemmed_index(migrator: SchemaMigrator) -> list:
    """The index holds Snowball stems without stop words (``search.py``) on both databases.

    SQLite: the FTS5 table is rebuilt without its Porter tokenizer (English-only stemming, applied
    on top of the stored stems it would mangle them). Both: every article is indexed again.
    """
    operations: list = []
    if isinstance(migrator, SqliteMigrator):
        operations += [migrator.sql(f"DROP TABLE IF EXISTS {ArticleIndex._meta.table_name}"),
                       _Run(ArticleIndex.create_table)]
    return operations + [_Run(search.reindex_all)]


MIGRATIONS = [
    Migration("0001_stemmed_search", stemmed_index),
]
