"""FAQ tables. One article is written in one language (``language``: ``it`` or ``en``); a topic
covered in both languages is two articles. That keeps each full-text index entry in a single
language (stemming, stop words) and lets staff publish a language at a time."""
from __future__ import annotations

import peewee as pw
from flask_babel import get_locale

from crm_portal.api import BaseModel, Company, Contact, utcnow

LANGUAGES = ("it", "en")


class Category(BaseModel):
    name_en = pw.CharField(max_length=100)
    name_it = pw.CharField(max_length=100, null=True)
    position = pw.IntegerField(default=0)

    class Meta:
        table_name = "faq_category"

    @property
    def label(self) -> str:
        return (self.name_it if str(get_locale() or "") == "it" and self.name_it else self.name_en) or ""

    def __str__(self) -> str:
        return self.name_en


class Article(BaseModel):
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

    def save(self, *args, **kwargs):
        from .search import index_article

        self.updated_at = utcnow()
        result = super().save(*args, **kwargs)
        index_article(self)
        return result

    def delete_instance(self, recursive=False, delete_nullable=False):
        # Links, votes and the index row go with ON DELETE CASCADE (and remove_article for the
        # FTS5 table): a recursive delete would also address the index table like a plain one.
        from .search import remove_article

        article_id = self.id
        result = super().delete_instance()
        remove_article(article_id)
        return result


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
    """The full-text index of the articles (see ``search.py``). Its table is not an ordinary one:
    an FTS5 virtual table on SQLite, a ``tsvector`` column with a GIN index on PostgreSQL.
    Creating it goes through :meth:`create_table` like any other model, so migrations create it."""

    article = pw.ForeignKeyField(Article, primary_key=True, on_delete="CASCADE")

    class Meta:
        table_name = "faq_article_index"

    @classmethod
    def create_table(cls, safe=True, **options):
        from .search import create_index_table

        create_index_table()

    @classmethod
    def drop_table(cls, safe=True, **options):
        cls._meta.database.execute_sql(f'DROP TABLE {"IF EXISTS " if safe else ""}"{cls._meta.table_name}"')
