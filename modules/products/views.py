"""Template data of the product page: the serial as the user may read it, links to related pages.

The module has no URLs of its own: the list, export and detail pages are the host's generic views.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm_portal.api import ModuleBlueprint

from .models import Product, serial_visible

bp = ModuleBlueprint("products", __name__)


def serial_text(value: Any, row: Product) -> Any:
    """The detail field's serial: the value, or a notice when the user may not read it."""
    if not value:
        return None
    return value if serial_visible(row, current_user) else _("Visible to your company's administrators only")


def related_links(product: Product, user: Any) -> list[tuple[str, str, str]]:
    """(label, url, icon) of the pages related to a product that exist in this portal for ``user``:
    its documents (by product code) and a new ticket about it."""
    views = current_app.view_functions
    links = []
    if product.code and "documents.list" in views and user.can("documents"):
        links.append((_("Documents about this product"),
                      url_for("documents.list", s_product_code=product.code), "folder2-open"))
    if "tickets.create" in views and user.can("tickets", "create"):
        links.append((_("Open a ticket about this product"),
                      url_for("tickets.create", product=product.id), "life-preserver"))
    return links


def detail_context(product: Product, user: Any) -> Mapping[str, Any]:
    """What products/detail.html receives besides the record."""
    return {"related_links": related_links(product, user)}
