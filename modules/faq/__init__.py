"""FAQ / knowledge base: articles in categories, in Italian and English.

Each article is written in one language (see ``models.py``); users browse by category, filter by
language and search the full text (``search.py``: SQLite FTS5 or PostgreSQL, ranked). Articles are
public or restricted to the companies staff list. Bodies are Markdown, rendered with
``markdown`` and sanitised with ``nh3``. Users vote "was this helpful?" once per article.
``/faq/suggest?q=…`` answers JSON suggestions for a ticket title being typed (tickets module).
"""
from __future__ import annotations

from typing import Any

import markdown as md
import peewee as pw
import nh3
from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_admin.model.form import InlineFormAdmin
from flask_babel import get_locale, gettext as _
from markupsafe import Markup
from wtforms.validators import Optional

from crm_portal.api import (AdminModelView, Button, Column, DemoContext, Field, Module, Section, _l,
                            current_portal_user, db, get_or_404, visible)

from . import search as fts
from .models import LANGUAGES, Article, ArticleCompany, ArticleDocument, ArticleIndex, Category, Feedback

__all__ = ["FaqModule", "Article", "Category", "Feedback", "render_markdown"]

LANGUAGE_LABELS = {"it": _l("Italian"), "en": _l("English")}
SUGGEST_LIMIT = 5
SUGGEST_MIN_CHARS = 3


def render_markdown(text: str | None) -> Markup:
    """Markdown → HTML, sanitised with nh3 (no scripts, styles, event handlers or unsafe URLs)."""
    html = md.markdown(text or "", extensions=["extra", "sane_lists"], output_format="html")
    clean = nh3.clean(html, url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")
    return Markup(clean)


def _user_language() -> str:
    locale = str(get_locale() or "")
    return locale if locale in LANGUAGES else current_app.config["BABEL_DEFAULT_LOCALE"]


class CompanyInline(InlineFormAdmin):
    form_columns = ("id", "company")
    form_args = {"id": {"validators": [Optional()]}}


class DocumentInline(InlineFormAdmin):
    form_columns = ("id", "document_id", "title", "position")
    form_args = {"id": {"validators": [Optional()]}}


class ArticleAdmin(AdminModelView):
    roles = ("admin", "operator")
    inline_models = (CompanyInline(ArticleCompany), DocumentInline(ArticleDocument))
    column_list = ("title", "category", "language", "public", "published", "updated_at")
    column_searchable_list = ("title",)
    column_filters = ("language", "public", "published")
    form_excluded_columns = ("created_at", "updated_at")
    form_widget_args = {"body": {"rows": 14}}


class CategoryAdmin(AdminModelView):
    roles = ("admin", "operator")
    column_list = ("name_en", "name_it", "position")


def category_choices() -> dict[int, str]:
    """The categories as ``{id: label}`` for the list filter."""
    return {c.id: c.label for c in Category.select().order_by(Category.position, Category.name_en)}


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
    detail_template = "faq/detail.html"
    list_template = "faq/list.html"
    columns = [
        Column(Article.title, _l("Question"), search=True, sort=True, link=True),
        Column(Article.category, _l("Category"), display="name_en", sort=True, filter=True,
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

    # --- scoping: public articles, or restricted to the user's company ----------------------
    def scope_query(self, query, user, scope):
        allowed = Article.public == True  # noqa: E712
        if user.company_id is not None:
            mine = ArticleCompany.select(ArticleCompany.article).where(ArticleCompany.company == user.company_id)
            allowed = allowed | Article.id.in_(mine)
        return query.where((Article.published == True) & allowed)  # noqa: E712

    def buttons(self):
        return [Button("faq.list", _l("FAQ"), endpoint="faq.list", icon="question-circle",
                       description=_l("Answers, guides and how-tos"))]

    def admin_views(self):
        category = _l("FAQ")
        return [ArticleAdmin(Article, name=_l("Articles"), category=category, endpoint="faq_article"),
                CategoryAdmin(Category, name=_l("Categories"), category=category, endpoint="faq_category")]

    # --- search ------------------------------------------------------------------------------
    def search(self, text: str, language: str, *, any_word: bool = False, prefix: bool = False,
               limit: int = 50) -> list[Article]:
        """Articles the current user may read matching ``text`` in ``language``, best first."""
        ranked = fts.search(text, language, any_word=any_word, prefix=prefix, limit=500)
        if not ranked:
            return []
        order = {article_id: n for n, (article_id, _score) in enumerate(ranked)}
        rows = (visible(self).select_extend(Category).join(Category, on=(Article.category == Category.id),
                                                           join_type=pw.JOIN.LEFT_OUTER, attr="category")
                .where(Article.id.in_(list(order))))
        return sorted(rows, key=lambda a: order[a.id])[:limit]

    def register_views(self, bp):
        module = self

        @bp.route("/search")
        def search_view():
            q = (request.args.get("q") or "").strip()[:200]
            language = request.args.get("lang") if request.args.get("lang") in LANGUAGES else _user_language()
            results = module.search(q, language) if q else []
            return render_template("faq/search.html", module=module, q=q, language=language, results=results,
                                   languages=LANGUAGE_LABELS, render_markdown=render_markdown)

        @bp.route("/suggest")
        def suggest():
            q = (request.args.get("q") or "").strip()[:200]
            language = request.args.get("lang") if request.args.get("lang") in LANGUAGES else _user_language()
            found = []
            if len(q) >= SUGGEST_MIN_CHARS:
                found = module.search(q, language, any_word=True, prefix=True, limit=SUGGEST_LIMIT)
            return jsonify({"query": q, "language": language, "results": [
                {"id": a.id, "title": a.title, "url": url_for("faq.detail", record_id=a.id),
                 "category": a.category.label if a.category_id and a.category else None} for a in found]})

        @bp.route("/browse")
        def browse():
            rows = (visible(module).select_extend(Category)
                    .join(Category, on=(Article.category == Category.id), join_type=pw.JOIN.LEFT_OUTER, attr="category")
                    .order_by(Category.position, Category.name_en, Article.position, Article.title))
            language = request.args.get("lang") if request.args.get("lang") in LANGUAGES else None
            if language:
                rows = rows.where(Article.language == language)
            groups: dict[Any, list[Article]] = {}
            labels: dict[Any, str] = {}
            for article in rows:
                key = article.category_id
                groups.setdefault(key, []).append(article)
                labels[key] = article.category.label if key is not None else _("Other questions")
            return render_template("faq/browse.html", module=module, groups=groups, labels=labels,
                                   language=language, languages=LANGUAGE_LABELS)

        @bp.route("/<int:record_id>/feedback", methods=["POST"])
        def feedback(record_id: int):
            article = get_or_404(module, record_id)
            value = request.form.get("helpful")
            if value not in ("1", "0"):
                flash(_("Please say whether the article was helpful."), "danger")
                return redirect(url_for("faq.detail", record_id=article.id)), 303
            user = current_portal_user()
            helpful = value == "1"
            with db.atomic():
                updated = (Feedback.update(helpful=helpful)
                           .where((Feedback.article == article.id) & (Feedback.contact == user.contact_id))
                           .execute())
                if not updated:
                    Feedback.create(article=article.id, contact=user.contact_id, helpful=helpful)
            flash(_("Thank you for your feedback."), "success")
            return redirect(url_for("faq.detail", record_id=article.id) + "#feedback")

        @bp.app_template_global("faq_article_context")
        def faq_article_context(article: Article) -> dict[str, Any]:
            user = current_portal_user()
            vote = None
            if user is not None:
                row = Feedback.get_or_none((Feedback.article == article.id) & (Feedback.contact == user.contact_id))
                vote = None if row is None else row.helpful
            documents = []
            if "documents.detail" in current_app.view_functions and user is not None and user.can("documents"):
                documents = [(d.title, url_for("documents.detail", record_id=d.document_id))
                             for d in article.document_links.order_by(ArticleDocument.position, ArticleDocument.id)]
            return {"body": render_markdown(article.body), "vote": vote, "documents": documents}

    # --- demo ------------------------------------------------------------------------------
    def demo_data(self, ctx: DemoContext) -> None:
        cats = {key: Category.create(name_en=en, name_it=it, position=n) for n, (key, en, it) in enumerate([
            ("account", "Account and access", "Account e accesso"), ("printing", "Printing", "Stampa"),
            ("email", "Email", "Posta elettronica"), ("network", "Network and VPN", "Rete e VPN")])}
        specs = [
            ("account", "it", "Come reimposto la password del portale?",
             "Dalla pagina di accesso scegli **Password dimenticata** e segui il link che ricevi via email.\n\n"
             "Il link vale un'ora."),
            ("account", "en", "How do I reset my portal password?",
             "On the login page choose **Forgot password** and follow the link we email you.\n\n"
             "The link is valid for one hour."),
            ("printing", "it", "La stampante di rete non stampa",
             "1. Verifica che la stampante sia accesa e collegata alla rete.\n"
             "2. Riavvia lo spooler di stampa.\n3. Se la stampante mostra un errore, apri un ticket."),
            ("printing", "en", "The network printer does not print",
             "1. Check the printer is on and connected to the network.\n2. Restart the print spooler.\n"
             "3. If the printer shows an error, open a ticket."),
            ("email", "it", "Configurare la posta sul telefono",
             "Usa l'app Outlook e accedi con l'indirizzo aziendale. Per Android e iPhone la procedura è la stessa."),
            ("email", "en", "Set up email on your phone",
             "Use the Outlook app and sign in with your work address. The steps are the same on Android and iPhone."),
            ("network", "it", "Connettersi alla VPN aziendale",
             "Installa il client VPN indicato nella [guida](https://example.com/vpn) e usa le credenziali di dominio."),
        ]
        for n, (cat, language, title, body) in enumerate(specs):
            Article.create(category=cats[cat], language=language, title=title, body=body, position=n)
        restricted = Article.create(category=cats["network"], language="it", public=False,
                                    title="Accesso remoto al gestionale Acme",
                                    body="Per Acme il gestionale è raggiungibile solo tramite VPN: "
                                         "usa il profilo **ACME-GES**.")
        ArticleCompany.create(article=restricted, company=ctx.companies["acme"])
        globex = Article.create(category=cats["email"], language="en", public=False,
                                title="Globex shared mailboxes",
                                body="Shared mailboxes for Globex appear automatically in Outlook.")
        ArticleCompany.create(article=globex, company=ctx.companies["globex"])
