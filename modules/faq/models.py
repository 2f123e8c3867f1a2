"""FAQ tables. One article is written in one language (``language``: ``it`` or ``en``); a topic
covered in both languages is two articles. That keeps each full-text index entry in a single
language (stemming, stop words) and lets staff publish a language at a time.

:class:`Article` sends peewee's model signals (``playhouse.signals``: ``pre_save``, ``post_save``,
``post_delete`` …) on ``save()`` and ``delete_instance()``: the full-text index follows them
(``jobs.py``); bulk ``update()``/``delete()`` queries send none (rebuild with ``search.reindex_all``).
"""
from __future__ import annotations

from typing import Any

import peewee as pw
from playhouse.signals import Model as SignalsModel
from playhouse.signals import pre_save

from crm_portal.api import BaseModel, Company, Contact, Localized, _l, db, is_postgres, utcnow

LANGUAGES = ("it", "en")
LANGUAGE_LABELS = {"it": _l("Italian"), "en": _l("English")}


class Category(Localized, BaseModel):
    # The columns keep their original names; the attributes follow the shared label convention.
    label_en = pw.CharField(max_length=100, column_name="name_en")
    label_it = pw.CharField(max_length=100, null=True, column_name="name_it")
    position = pw.IntegerField(default=0)

    class Meta:
        table_name = "faq_category"


class Article(BaseModel, SignalsModel):  # BaseModel first: its Meta (database, dirty-only saves) wins
    category = pw.ForeignKeyField(Category, backref="articles", null=True, on_delete="SET NULL", index=True)
    language = pw.CharField(max_length=5, default="it", index=True, choices=[(code, code) for code in LANGUAGES])
    title = pw.CharField(max_length=200)
    #: Markdown; rendered and sanitised (nh3) for display.
    body = pw.TextField()
    #: Public articles are for every user of the module; others only for the companies listed.
    public = pw.BooleanField(default=True, index=True)
    published = pw.BooleanField(default=True, index=True)
    position = pw.IntegerField(default=0)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "faq_article"


@pre_save(sender=Article)
def stamp_updated_at(model_class: type[Article], instance: Article, created: bool) -> None:
    """Every save of an article records when it last changed."""
    instance.updated_at = utcnow()


class ArticleCompany(BaseModel):
    """A company a restricted article is shown to."""

    article = pw.ForeignKeyField(Article, backref="company_links", on_delete="CASCADE")
    company = pw.ForeignKeyField(Company, backref="faq_links", on_delete="CASCADE", index=True)

    class Meta:
        table_name = "faq_article_company"
        indexes = ((("article", "company"), True),)

    def __str__(self) -> str:
        return str(self.company_id)


class ArticleDocument(BaseModel):
    """A document (of the documents module, by id) an article points to. The link shows only when
    that module is installed, and the documents module's own gate decides who may open it."""

    article = pw.ForeignKeyField(Article, backref="document_links", on_delete="CASCADE")
    document_id = pw.IntegerField()
    title = pw.CharField(max_length=200)
    position = pw.IntegerField(default=0)

    class Meta:
        table_name = "faq_article_document"


class Feedback(BaseModel):
    """"Was this helpful?": one vote per contact and article (voting again changes the vote)."""

    article = pw.ForeignKeyField(Article, backref="feedback", on_delete="CASCADE")
    contact = pw.ForeignKeyField(Contact, on_delete="CASCADE", index=True)
    helpful = pw.BooleanField()
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "faq_feedback"
        indexes = ((("article", "contact"), True),)


class ArticleIndex(BaseModel):
    """The full-text index of the articles (filled and queried by ``search.py``, which stores the
    Snowball stems of each article, stop words removed). Its table is not an ordinary one: an FTS5
    virtual table on SQLite (``rowid`` = article id; title, body, language; the plain ``unicode61``
    tokenizer, the stemming being done already), a ``tsvector`` column with a GIN index on
    PostgreSQL. Creating it goes through :meth:`create_table` like any other model, so migrations
    create it."""

    article = pw.ForeignKeyField(Article, primary_key=True, on_delete="CASCADE")

    class Meta:
        table_name = "faq_article_index"

    @classmethod
    def create_table(cls, safe: bool = True, **options: Any) -> None:
        table = cls._meta.table_name
        if is_postgres():
            db.execute_sql(f"CREATE TABLE IF NOT EXISTS {table} ("
                           "article_id INTEGER PRIMARY KEY REFERENCES faq_article (id) ON DELETE CASCADE, "
                           "language VARCHAR(5) NOT NULL, document TSVECTOR NOT NULL)")
            db.execute_sql(f"CREATE INDEX IF NOT EXISTS {table}_document ON {table} USING GIN (document)")
        else:
            db.execute_sql(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
                           "title, body, language UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')")

    @classmethod
    def drop_table(cls, safe: bool = True, **options: Any) -> None:
        cls._meta.database.execute_sql(f'DROP TABLE {"IF EXISTS " if safe else ""}"{cls._meta.table_name}"')


def readable(query: pw.ModelSelect, company_id: int | None) -> pw.ModelSelect:
    """``query`` over articles narrowed to the published ones a user of ``company_id`` may read:
    public ones and those restricted to their company."""
    allowed = Article.public == True  # noqa: E712
    if company_id is not None:
        mine = ArticleCompany.select(ArticleCompany.article).where(ArticleCompany.company == company_id)
        allowed = allowed | Article.id.in_(mine)
    return query.where((Article.published == True) & allowed)  # noqa: E712
