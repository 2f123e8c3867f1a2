"""Customer-side views of quotes: accept or reject, the printable page and the PDF; the data of the
detail page. The list, export and detail pages are the host's generic views with this module's
templates; every quote is reached through the scoping gate (``get_or_404``)."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import Response, current_app, flash, redirect, render_template, url_for
from flask_babel import format_date, format_decimal
from flask_babel import gettext as _

from crm_portal import signals
from crm_portal.api import (
    DueItem,
    Module,
    ModuleBlueprint,
    PortalUser,
    _l,
    audit,
    content_disposition,
    current_module,
    current_portal_user,
    db,
    external_url,
    get_or_404,
    queue_email,
    require,
    utcnow,
    visible,
)

from .forms import QuoteConfirmForm
from .models import STATUS_LABELS, Quote
from .pdf import render_quote_pdf

bp = ModuleBlueprint("quotes", __name__)


# --- formatting --------------------------------------------------------------------------------
@bp.app_template_filter("quotes_qty")
def quantity(value: Any) -> str:
    """A quantity or percentage without trailing zeros, in the user's locale (1,5 / 22)."""
    return format_decimal(value if value is not None else 0, format="#,##0.###")


def status_label(value: str, row: Quote) -> str:
    """The status a customer sees (``expired`` past the date), translated: for list and detail."""
    return str(STATUS_LABELS.get(row.effective_status(), value))


# --- template data -----------------------------------------------------------------------------
def detail_context(quote: Quote, user: Any = None) -> dict[str, Any]:
    """What the detail page shows beyond the declared fields: the lines and who decided."""
    return {"lines": quote.ordered_lines(), "status": quote.effective_status(),
            "decided_by": quote.decided_by if quote.decided_by_id else None}


# --- decisions ---------------------------------------------------------------------------------
@bp.post("/<int:record_id>/accept")
def accept(record_id: int):
    return decide(record_id, "accepted")


@bp.post("/<int:record_id>/reject")
def reject(record_id: int):
    return decide(record_id, "rejected")


def refusal(quote: Quote) -> str:
    """Why ``quote`` (as stored now) can no longer be accepted or rejected, for the customer."""
    if quote.status == "accepted":
        return _("This quote has already been accepted; its state cannot change any more.")
    if quote.status == "rejected":
        return _("This quote has already been rejected; its state cannot change any more.")
    if quote.is_expired():
        return _("This quote expired on %(date)s and can no longer be accepted or rejected.",
                 date=format_date(quote.valid_until, "medium"))
    return _("This quote cannot be accepted or rejected.")


def decide(record_id: int, new_status: str):
    """Accept or reject a sent, unexpired quote in scope; anything else changes nothing.

    Two steps, without JavaScript: the detail page's form answers with a confirmation page (the
    quote's number and total, the comment to send); only its button, which posts ``confirm=1``,
    records the decision."""
    module = current_module()
    grant = require(module, "view")
    quote = get_or_404(module, record_id, action="accept")
    form = QuoteConfirmForm()

    def detail_page(**extra: Any) -> str:
        return render_template(module.detail_template, module=module, record=quote, grant=grant,
                               decision_form=form, **detail_context(quote), **extra)

    if not form.validate_on_submit():
        return detail_page(), 400
    if form.confirm.data != "1":
        if quote.status != "sent" or quote.is_expired():
            return detail_page(decision_error=refusal(quote)), 409
        return render_template("quotes/confirm.html", module=module, record=quote, grant=grant, form=form,
                               decision=new_status, comment=(form.comment.data or "").strip())
    user = current_portal_user()
    comment = (form.comment.data or "").strip() or None
    with db.atomic():
        # One conditional UPDATE: two concurrent decisions cannot both succeed.
        changed = (Quote.update(status=new_status, decided_by=user.contact_id, decided_at=utcnow(),
                                decision_comment=comment)
                   .where((Quote.id == quote.id) & (Quote.status == "sent")
                          & (Quote.valid_until >= dt.date.today()))
                   .execute())
        if changed:
            old_status = quote.status
            quote = Quote.get_by_id(quote.id)
            audit(f"quote-{new_status}", quote, details={"comment": comment})
            signals.record_updated.send(module.name, module=module, record=quote, user=user,
                                        changes={"status": (old_status, new_status)})
            notify_staff(quote, new_status, user, comment)
    if not changed:
        quote = Quote.get_by_id(quote.id)
        return detail_page(decision_error=refusal(quote)), 409
    flash(_("Quote accepted: thank you, we will be in touch shortly.") if new_status == "accepted"
          else _("Quote rejected. Thank you for letting us know."), "success")
    return redirect(url_for("quotes.detail", record_id=quote.id))


def notify_staff(quote: Quote, decision: str, user: PortalUser, comment: str | None) -> None:
    """Queue the ``quotes_decided`` email to support (sent after the decision commits)."""
    queue_email(current_app.config["SUPPORT_EMAIL"], "quotes_decided",
                language=current_app.config["BABEL_DEFAULT_LOCALE"], quote=quote, company=quote.company,
                decision=decision, contact=user.contact, comment=comment,
                admin_url=external_url("quotes_quote.details_view", id=quote.id))


# --- printable page and PDF --------------------------------------------------------------------
@bp.get("/<int:record_id>/print")
def print_view(record_id: int):
    module = current_module()
    quote = get_or_404(module, record_id)
    return render_template("quotes/print.html", module=module, record=quote, company=quote.company,
                           lines=quote.ordered_lines(), status_label=STATUS_LABELS[quote.effective_status()])


@bp.get("/<int:record_id>/pdf")
def pdf(record_id: int):
    quote = get_or_404(current_module(), record_id)
    data = render_quote_pdf(quote, quote.ordered_lines(), current_app.config["PORTAL_NAME"])
    # The same plain ASCII name in every browser, whatever characters the number holds.
    safe_number = re.sub(r"[^A-Za-z0-9._-]", "_", quote.number)
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = content_disposition(f"quote-{safe_number}.pdf")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# --- for the dashboard -------------------------------------------------------------------------
def due_items(module: Module, user: PortalUser, today: dt.date, until: dt.date, limit: int) -> list[DueItem]:
    """The quotes awaiting ``user``'s decision that expire between ``today`` and ``until``, for the
    dashboard's "due soon" widget (an expired quote can no longer be accepted: it is not listed).
    One query, through the scoping gate."""
    rows = (visible(module, user=user)
            .where((Quote.status == "sent") & (Quote.valid_until >= today) & (Quote.valid_until <= until))
            .order_by(Quote.valid_until, Quote.id).limit(limit))
    return [DueItem(due=q.valid_until, title=q.subject, kind=_l("Quote expiry"), reference=q.number,
                    url=url_for("quotes.detail", record_id=q.id)) for q in rows]
