"""What happens after an article changes: the full-text index follows the article's model signals
(``playhouse.signals`` ``post_save``/``post_delete``), whoever saves or deletes it (admin, demo
data, scripts). The module connects the receivers when an application loads it."""
from __future__ import annotations

from playhouse.signals import Signal, post_delete, post_save

from . import search
from .models import Article


def index_saved(model_class: type[Article], instance: Article, created: bool) -> None:
    """A created or changed article is (re)indexed."""
    search.index_article(instance)


def unindex_deleted(model_class: type[Article], instance: Article) -> None:
    """A deleted article leaves the index (its FTS5 row has no foreign key to cascade)."""
    search.remove_article(instance.id)


RECEIVERS: tuple[tuple[Signal, object], ...] = ((post_save, index_saved), (post_delete, unindex_deleted))


def connect() -> None:
    """Connect the index receivers to the article's signals, once per process (every application
    of the process shares them)."""
    for signal, receiver in RECEIVERS:
        try:
            signal.connect(receiver, sender=Article)
        except ValueError:  # connected already, by an earlier application
            pass
