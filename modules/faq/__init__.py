"""FAQ / knowledge base: articles in categories, in Italian and English.

Each article is written in one language (see ``models.py``); users browse by category, filter by
language and search the full text (``search.py``: Snowball stems without stop words, in SQLite FTS5
or PostgreSQL, ranked, the user's language first; the index follows the articles' model signals,
``jobs.py``; see docs/faq.md). Articles are public or restricted to the companies staff list.
Bodies are Markdown, rendered with ``markdown`` and sanitised with ``nh3``.
Users vote "was this helpful?" once per article. ``/faq/suggest?q=…`` answers JSON suggestions for
a ticket title being typed (tickets module). The views are in ``views.py``.
"""
from __future__ import annotations

from typing import Any

from crm_portal.api import ActionLabel, Button, Column, DemoContext, Field, Module, Section, _l

from . import admin, demo, jobs, views
from .migrations import MIGRATIONS
from .models import (
    LANGUAGE_LABELS,
    Article,
    ArticleCompany,
    ArticleDocument,
    ArticleIndex,
    Category,
    Feedback,
    readable,
)
from .views import bp, category_choices


class FaqModule(Module):
    name = "faq"
    label = _l("FAQ")
    icon = "question-circle"
    description = _l("Answers to frequent questions, guides and how-tos.")
    position = 60
    models = (Category, Article, ArticleCompany, ArticleDocument, Feedback, ArticleIndex)
    record = Article
    default_sort = "title"
    actions = ("view",)
    action_labels = {
        "view": ActionLabel(_l("Read the FAQ"), _l("Browse and search the knowledge base.")),
    }
    detail_template = "faq/detail.html"
    list_template = "faq/list.html"
    blueprint = bp
    migrations = MIGRATIONS
    columns = [
        Column(Article.title, _l("Question"), search=True, sort=True, link=True),
        Column(Article.category, _l("Category"), display="label_en", sort=True, filter=True,
               choices=category_choices, format=lambda category, row: category.label),
        Column(Article.language, _l("Language"), filter=True, choices=LANGUAGE_LABELS),
        Column(Article.updated_at, _l("Updated"), sort=True),
    ]
    detail = [
        Section(_l("Article"), [
            Field("category", _l("Category"), format=lambda category, row: category.label if category else None),
            Field("language", _l("Language"), choices=LANGUAGE_LABELS),
            Field("updated_at", _l("Updated")),
        ]),
    ]

    def scope_query(self, query, user, scope):
        # Public articles, or restricted to the user's company; the scope does not matter.
        return readable(query, user.company_id)

    def buttons(self):
        return [Button("faq.list", _l("FAQ"), endpoint="faq.list", icon="question-circle",
                       description=_l("Answers, guides and how-tos"))]

    def admin_views(self):
        return admin.views(self)

    def connect_signals(self) -> None:
        jobs.connect()

    def detail_context(self, record: Article, user: Any):
        return views.detail_context(record, user)

    def demo_data(self, ctx: DemoContext) -> None:
        demo.load(ctx)
