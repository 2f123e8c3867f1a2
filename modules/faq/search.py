"""Full-text search of FAQ articles behind one interface, the same results on SQLite and PostgreSQL.

Text analysis happens here, in Python, for both databases (:func:`analyse`): words (letters and
digits), lower-cased; stop words dropped (the Snowball lists of the article's language, the ones
PostgreSQL's ``italian``/``english`` configurations use, in ``stopwords/``); each word stemmed
with the Snowball stemmer of that language (``snowballstemmer``: "stampanti" → ``stampant``,
"configurazione" and "configurare" → ``configur``, "printers" → ``printer``); accents folded. The
index stores those stems, and a query is analysed the same way before it is matched:

- SQLite: ``faq_article_index`` is an FTS5 virtual table (``rowid`` = article id; the stems of
  title and body, split by the plain ``unicode61`` tokenizer). Rank: ``bm25`` with the title
  weighing ten times the body.
- PostgreSQL: ``faq_article_index`` holds one ``tsvector`` per article built with the ``simple``
  configuration from the same stems (title weight A, body weight B), with a GIN index. Rank:
  ``ts_rank_cd``.

Snowball is the stemmer PostgreSQL's own configurations use; stemming once in Python rather than
in each database keeps the two backends from drifting apart (SQLite has no Italian stemmer).

User input is never passed as query syntax: each stem is quoted, and the stems are joined with
AND (:func:`search`) or OR (suggestions, where the last word also matches as a prefix). Quotes,
``*``, ``NEAR``, parentheses … are therefore plain text. :func:`search_languages` searches the
user's language first and then the others, whose articles rank after.

The table is created by ``models.ArticleIndex``. An article is indexed when it is saved and removed
when it is deleted (the model's signals, connected in ``jobs.py``); :func:`reindex_all` rebuilds
the whole index.
"""
from __future__ import annotations

import functools
import re
import threading
import unicodedata
from pathlib import Path

import snowballstemmer

from crm_portal.api import db, is_postgres

from .models import LANGUAGES, Article, ArticleIndex

TABLE = ArticleIndex._meta.table_name
MAX_TERMS = 12
MAX_WORD = 50
#: Letters and digits; the underscore separates words like any punctuation.
WORD = re.compile(r"[^\W_]+", re.UNICODE)
#: Snowball algorithm (and stop-word list) of each article language.
SNOWBALL = {"it": "italian", "en": "english"}
STOPWORDS_DIR = Path(__file__).parent / "stopwords"
#: A stemmer keeps its state while it stems: one word at a time per stemmer across threads.
_STEM_LOCK = threading.Lock()


def words(text: str | None) -> list[str]:
    """The words of ``text`` (letters and digits only), lower-cased, each at most 50 characters."""
    return [w.lower()[:MAX_WORD] for w in WORD.findall(text or "")]


@functools.cache
def stopwords(language: str) -> frozenset[str]:
    """The stop words of ``language`` (empty for a language without a list)."""
    name = SNOWBALL.get(language)
    if name is None:
        return frozenset()
    lines = (STOPWORDS_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


@functools.cache
def _stemmer(language: str) -> snowballstemmer.stemmer | None:
    # One stemmer per process and language (building it is the costly part), used under _STEM_LOCK.
    name = SNOWBALL.get(language)
    return snowballstemmer.stemmer(name) if name else None


def _fold(word: str) -> str:
    """``word`` without accents (perché → perche): the index and the query compare folded stems."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def _stem(words_: list[str], language: str) -> list[str]:
    stemmer = _stemmer(language)
    if stemmer is None:
        return words_
    with _STEM_LOCK:
        return stemmer.stemWords(words_)


def analyse(text: str | None, language: str) -> list[str]:
    """The searchable stems of ``text`` written in ``language``: its words without stop words,
    stemmed with the language's Snowball stemmer, accents folded. Used for the stored text and
    for queries alike."""
    stop = stopwords(language)
    kept = [w for w in words(text) if w not in stop]
    return [s for s in (_fold(stem) for stem in _stem(kept, language)) if s]


def query_terms(text: str | None, language: str) -> list[str]:
    """The stems a query in ``language`` matches, at most 12, without repeats, in typed order."""
    return list(dict.fromkeys(analyse(text, language)))[:MAX_TERMS]


def index_article(article: Article) -> None:
    """Add or refresh one article in the index (unpublished articles are indexed too: the
    scoping gate filters them out)."""
    title = " ".join(analyse(article.title, article.language))
    body = " ".join(analyse(article.body, article.language))
    if is_postgres():
        db.execute_sql(
            f"INSERT INTO {TABLE} (article_id, language, document) VALUES (%s, %s, "
            "setweight(to_tsvector('simple', %s), 'A') || setweight(to_tsvector('simple', %s), 'B')) "
            "ON CONFLICT (article_id) DO UPDATE SET language = EXCLUDED.language, document = EXCLUDED.document",
            (article.id, article.language, title, body))
    else:
        db.execute_sql(f"DELETE FROM {TABLE} WHERE rowid = ?", (article.id,))
        db.execute_sql(f"INSERT INTO {TABLE} (rowid, title, body, language) VALUES (?, ?, ?, ?)",
                       (article.id, title, body, article.language))


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

    ``text`` is analysed as ``language`` (stop words dropped, words stemmed). Every remaining
    word must match, or any word with ``any_word``; with ``prefix`` the last word also matches
    longer words (typing-as-you-go suggestions). Returns ``[]`` when ``text`` has no searchable
    word (only stop words, or none at all).
    """
    stems = query_terms(text, language)
    if not stems:
        return []
    if is_postgres():
        parts = [f"'{s}'" for s in stems]
        if prefix:
            parts[-1] += ":*"
        query = (" | " if any_word else " & ").join(parts)
        cursor = db.execute_sql(
            f"SELECT article_id, ts_rank_cd(document, q) AS score FROM {TABLE}, to_tsquery('simple', %s) q "
            "WHERE language = %s AND document @@ q ORDER BY score DESC, article_id LIMIT %s",
            (query, language, limit))
        return [(row[0], float(row[1])) for row in cursor.fetchall()]
    parts = [f'"{s}"' for s in stems]
    if prefix:
        parts[-1] += "*"
    query = (" OR " if any_word else " AND ").join(parts)
    cursor = db.execute_sql(
        f"SELECT rowid, bm25({TABLE}, 10.0, 1.0) AS score FROM {TABLE} "
        f"WHERE {TABLE} MATCH ? AND language = ? ORDER BY score, rowid LIMIT ?",
        (query, language, limit))
    return [(row[0], -float(row[1])) for row in cursor.fetchall()]


def search_languages(text: str, language: str, *, any_word: bool = False, prefix: bool = False,
                     limit: int = 200) -> list[tuple[int, str]]:
    """``(article id, article language)`` matching ``text`` in every language: the articles in
    ``language`` first (best first), then those of the other languages, each searched with its
    own stemmer. The stop words of ``language`` are dropped before searching the others too ("come
    la" is no search for the English "come"). One query per language."""
    own_stop = stopwords(language)
    others = " ".join(w for w in words(text) if w not in own_stop)
    found: list[tuple[int, str]] = [(article_id, language) for article_id, _score in
                                    search(text, language, any_word=any_word, prefix=prefix, limit=limit)]
    for code in LANGUAGES:
        if code != language and others:
            found += [(article_id, code) for article_id, _score in
                      search(others, code, any_word=any_word, prefix=prefix, limit=limit)]
    return found
