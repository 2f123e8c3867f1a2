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
Articles are indexed on ``Article.save()``; :func:`reindex_all` rebuilds the index.
"""
from __future__ import annotations

import re

import peewee as pw

from crm_portal.api import db

TABLE = "faq_article_index"
MAX_TERMS = 12
WORD = re.compile(r"\w+", re.UNICODE)
PG_CONFIG = {"it": "italian", "en": "english"}


def _postgres() -> bool:
    return isinstance(db.obj, pw.PostgresqlDatabase)


def terms(text: str | None) -> list[str]:
    """The words of ``text`` (letters/digits only), lower-cased, at most 12, each ≤ 50 chars."""
    words = [w.lower()[:50] for w in WORD.findall(text or "") if w.strip("_")]
    return [w.strip("_") for w in words][:MAX_TERMS]


def create_index_table() -> None:
    if _postgres():
        db.execute_sql(f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                       "article_id INTEGER PRIMARY KEY REFERENCES faq_article (id) ON DELETE CASCADE, "
                       "language VARCHAR(5) NOT NULL, document TSVECTOR NOT NULL)")
        db.execute_sql(f"CREATE INDEX IF NOT EXISTS {TABLE}_document ON {TABLE} USING GIN (document)")
    else:
        db.execute_sql(f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5("
                       "title, body, language UNINDEXED, tokenize = 'porter unicode61 remove_diacritics 2')")


def index_article(article) -> None:
    """Add or refresh one article in the index (unpublished articles are indexed too: the
    scoping gate filters them out)."""
    if _postgres():
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
    if _postgres():
        db.execute_sql(f"DELETE FROM {TABLE} WHERE article_id = %s", (article_id,))
    else:
        db.execute_sql(f"DELETE FROM {TABLE} WHERE rowid = ?", (article_id,))


def reindex_all() -> int:
    from .models import Article

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
    if _postgres():
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
