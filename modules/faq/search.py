"""Full-text search of FAQ articles behind one interface, on SQLite (FTS5) and PostgreSQL.

- SQLite: ``faq_article_index`` is an FTS5 virtual table (``rowid`` = article id; title and body;
  Porter stemming over ``unicode61`` with diacritics removed). Rank: ``bm25`` with the title
  weighing ten times the body.
- PostgreSQL: ``faq_article_index`` holds one ``tsvector`` per article (title weight A, body
  weight B) built with the article's language configuration (``italian``/``english``), with a GIN
  index. Rank: ``ts_rank_cd``.

User input is never passed as query syntax: it is split into words (letters and digits only), each
word is quoted, and the words are joined with AND (:func:`search`) or OR (suggestions, where the last
word also matches as a prefix). Quotes, ``*``, ``NEAR``, parentheses … are therefore plain text.

The table is created by ``models.ArticleIndex``. An article is indexed when it is saved and removed
when it is deleted (the model's signals, connected in ``jobs.py``); :func:`reindex_all` rebuilds
the whole index.
"""
from __future__ import annotations

import re

from crm_portal.api import db, is_postgres

from .models import Article, ArticleIndex

TABLE = ArticleIndex._meta.table_name
MAX_TERMS = 12
WORD = re.compile(r"\w+", re.UNICODE)
PG_CONFIG = {"it": "italian", "en": "english"}


def terms(text: str | None) -> list[str]:
    """The words of ``text`` (letters/digits only), lower-cased, at most 12, each ≤ 50 chars."""
    words = [w.lower()[:50] for w in WORD.findall(text or "") if w.strip("_")]
    return [w.strip("_") for w in words][:MAX_TERMS]


def index_article(article: Article) -> None:
    """Add or refresh one article in the index (unpublished articles are indexed too: the
    scoping gate filters them out)."""
    if is_postgres():
        config = PG_CONFIG.get(article.language, "simple")
        db.execute_sql(
            f"INSERT INTO {TABLE} (article_id, language, document) VALUES (%s, %s, "
            "setweight(to_tsvector(%s::regconfig, %s), 'A') || setweight(to_tsvector(%s::regconfig, %s), 'B')) "
            "ON CONFLICT (article_id) DO UPDATE SET language = EXCLUDED.language, document = EXCLUDED.document",
            (article.id, article.language, config, article.title or "", config, article.body or ""))
    else:
        db.execute_sql(f"DELETE FROM {TABLE} WHERE rowid = ?", (article.id,))
        db.execute_sql(f"INSERT INTO {TABLE} (rowid, title, body, language) VALUES (?, ?, ?, ?)",
                       (article.id, article.title or "", article.body or "", article.language))


def remove_article(article_id: int) -> None:
    """Take one article out of the index."""
    if is_postgres():
        db.execute_sql(f"DELETE FROM {TABLE} WHERE article_id = %s", (article_id,))
    else:
        db.execute_sql(f"DELETE FROM {TABLE} WHERE rowid = ?", (article_id,))


def reindex_all() -> int:
    """Rebuild the whole index from the articles table; returns the number of articles indexed."""
    with db.atomic():
        db.execute_sql(f"DELETE FROM {TABLE}")
        count = 0
        for article in Article.select():
            index_article(article)
            count += 1
    return count


def search(text: str, language: str, *, any_word: bool = False, prefix: bool = False,
           limit: int = 200) -> list[tuple[int, float]]:
    """``(article id, score)`` of the articles in ``language`` matching ``text``, best first.

    Every word must match, or any word with ``any_word``; with ``prefix`` the last word also
    matches longer words (typing-as-you-go suggestions). Returns ``[]`` when ``text`` has no words.
    """
    words = terms(text)
    if not words:
        return []
    if is_postgres():
        config = PG_CONFIG.get(language, "simple")
        parts = [f"'{w}'" for w in words]
        if prefix:
            parts[-1] += ":*"
        query = (" | " if any_word else " & ").join(parts)
        cursor = db.execute_sql(
            f"SELECT article_id, ts_rank_cd(document, q) AS score FROM {TABLE}, to_tsquery(%s::regconfig, %s) q "
            "WHERE language = %s AND document @@ q ORDER BY score DESC, article_id LIMIT %s",
            (config, query, language, limit))
        return [(row[0], float(row[1])) for row in cursor.fetchall()]
    parts = [f'"{w}"' for w in words]
    if prefix:
        parts[-1] += "*"
    query = (" OR " if any_word else " AND ").join(parts)
    cursor = db.execute_sql(
        f"SELECT rowid, bm25({TABLE}, 10.0, 1.0) AS score FROM {TABLE} "
        f"WHERE {TABLE} MATCH ? AND language = ? ORDER BY score, rowid LIMIT ?",
        (query, language, limit))
    return [(row[0], -float(row[1])) for row in cursor.fetchall()]
