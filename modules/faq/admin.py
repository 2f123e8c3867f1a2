"""The staff side of the FAQ: articles (with the companies and documents they link) and categories."""
from __future__ import annotations

from typing import Any

from flask_admin.model.form import InlineFormAdmin
from wtforms.validators import Optional

from crm_portal.api import AdminModelView, _l

from .models import Article, ArticleCompany, ArticleDocument, Category

#: The names of the FAQ's fields in the admin (the shared ones come from the portal).
LABELS = {"body": _l("Text"), "published": _l("Published"), "article": _l("Article"), "document_id": _l("Document"),
          "company_links": _l("Companies"), "document_links": _l("Documents")}


class CompanyInline(InlineFormAdmin):
    form_columns = ("id", "company")
    # A new link has no id yet: the hidden primary key must not be required.
    form_args = {"id": {"validators": [Optional()]}}


class DocumentInline(InlineFormAdmin):
    form_columns = ("id", "document_id", "title", "position")
    form_args = {"id": {"validators": [Optional()]}}


class ArticleAdmin(AdminModelView):
    roles = ("admin", "operator")
    field_labels = LABELS
    inline_models = (CompanyInline(ArticleCompany), DocumentInline(ArticleDocument))
    column_list = ("title", "category", "language", "public", "published", "updated_at")
    column_searchable_list = ("title",)
    column_filters = ("language", "public", "published")
    form_excluded_columns = ("created_at", "updated_at")
    form_widget_args = {"body": {"rows": 14}}


class CategoryAdmin(AdminModelView):
    roles = ("admin", "operator")
    column_list = ("label_en", "label_it", "position")


def views(module: Any) -> list[AdminModelView]:
    """The admin views of the FAQ module."""
    category = _l("FAQ")
    return [ArticleAdmin(Article, name=_l("Articles"), category=category, endpoint="faq_article"),
            CategoryAdmin(Category, name=_l("Categories"), category=category, endpoint="faq_category")]
