"""Customer-side views of the FAQ: full-text search, suggestions for the tickets form, browsing by
category and "was this helpful?" votes; the data of the detail page. The list and detail pages are
the host's generic views with this module's templates; every article is reached through the
scoping gate (``visible`` / ``get_or_404``)."""
from __future__ import annotations

from typing import Any

import markdown as md
import nh3
import peewee as pw
from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from markupsafe import Markup

from crm_portal.api import Module, ModuleBlueprint, current_module, current_portal_user, db, get_or_404, visible

from . import search
from .models import LANGUAGE_LABELS, LANGUAGES, Article, ArticleDocument, Category, Feedback

bp = ModuleBlueprint("faq", __name__)

SUGGEST_LIMIT = 5
SUGGEST_MIN_CHARS = 3
QUERY_MAX = 200


# --- helpers -----------------------------------------------------------------------------------
def render_markdown(text: str | None) -> Markup:
    """Markdown → HTML, sanitised with nh3 (no scripts, styles, event handlers or unsafe URLs)."""
    html = md.markdown(text or "", extensions=["extra", "sane_lists"], output_format="html")
    clean = nh3.clean(html, url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")
    return Markup(clean)


def category_choices() -> dict[int, str]:
    """The categories as ``{id: label}`` for the list filter."""
    return {c.id: c.label for c in Category.select().order_by(Category.position, Category.label_en)}


def _query_and_language() -> tuple[str, str]:
    """The request's search text (trimmed) and language (``lang``, else the user's)."""
    q = (request.args.get("q") or "").strip()[:QUERY_MAX]
    language = request.args.get("lang")
    if language not in LANGUAGES:
        locale = str(get_locale() or "")
        language = locale if locale in LANGUAGES else current_app.config["BABEL_DEFAULT_LOCALE"]
    return q, language


def _with_category(query: pw.ModelSelect) -> pw.ModelSelect:
    """``query`` over articles with each article's category joined (one query, no lazy loads)."""
    return query.select_extend(Category).join(Category, on=(Article.category == Category.id),
                                              join_type=pw.JOIN.LEFT_OUTER, attr="category")


def search_articles(module: Module, text: str, language: str, *, any_word: bool = False,
                    prefix: bool = False, limit: int = 50) -> list[Article]:
    """Articles the current user may read matching ``text``: those in ``language`` first, best
    first, then those of the other languages (a constant three queries)."""
    ranked = search.search_languages(text, language, any_word=any_word, prefix=prefix, limit=500)
    if not ranked:
        return []
    order = {article_id: n for n, (article_id, _language) in enumerate(ranked)}
    rows = _with_category(visible(module)).where(Article.id.in_(list(order)))
    return sorted(rows, key=lambda a: order[a.id])[:limit]


# --- template data -----------------------------------------------------------------------------
def detail_context(article: Article, user: Any) -> dict[str, Any]:
    """The detail page's data: the rendered body, the user's vote (``True``/``False``/``None``)
    and the linked documents as ``(title, url)`` when the user can open documents."""
    row = Feedback.get_or_none((Feedback.article == article.id) & (Feedback.contact == user.contact_id))
    documents = []
    if "documents.detail" in current_app.view_functions and user.can("documents"):
        documents = [(d.title, url_for("documents.detail", record_id=d.document_id))
                     for d in article.document_links.order_by(ArticleDocument.position, ArticleDocument.id)]
    return {"article_body": render_markdown(article.body), "vote": None if row is None else row.helpful,
            "related_documents": documents}


# --- views -------------------------------------------------------------------------------------
@bp.get("/search")
def search_view():
    module = current_module()
    q, language = _query_and_language()
    results = search_articles(module, q, language) if q else []
    return render_template("faq/search.html", module=module, q=q, language=language, results=results,
                           languages=LANGUAGE_LABELS)


@bp.get("/suggest")
def suggest():
    """JSON suggestions for a ticket title being typed: any word but stop words ("la", "the" …),
    the last one as a prefix; articles in the user's language first, then the others."""
    q, language = _query_and_language()
    found = []
    if len(q) >= SUGGEST_MIN_CHARS:
        found = search_articles(current_module(), q, language, any_word=True, prefix=True, limit=SUGGEST_LIMIT)
    return jsonify({"query": q, "language": language, "results": [
        {"id": a.id, "title": a.title, "url": url_for("faq.detail", record_id=a.id), "language": a.language,
         "category": a.category.label if a.category_id and a.category else None} for a in found]})


@bp.get("/browse")
def browse():
    module = current_module()
    rows = _with_category(visible(module)).order_by(Category.position, Category.label_en, Article.position,
                                                    Article.title)
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


@bp.post("/<int:record_id>/feedback")
def feedback(record_id: int):
    article = get_or_404(current_module(), record_id)
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
