"""The company module's own view: ``/companies/mine`` leads to the user's company."""
from __future__ import annotations

from flask import redirect, url_for
from flask_login import current_user

from crm_portal.api import ModuleBlueprint, current_module, get_or_404

bp = ModuleBlueprint("companies", __name__)


@bp.get("/mine")
def mine():
    """Redirect to the detail page of the user's company (404 for a contact without one)."""
    company = get_or_404(current_module(), current_user.company_id or 0)
    return redirect(url_for("companies.detail", record_id=company.id))
