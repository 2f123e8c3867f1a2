"""Quotes (Preventivi): the quotes we sent the customer, with lines and exact totals.

Customers see every quote but drafts; a quote that is *sent* and not past its ``valid_until`` date
can be accepted or rejected (action ``accept``) with an optional comment. The decision is recorded
(who, when, comment), audited and announced to staff through the outbox (``quotes_decided``).
Each quote has a printable page and a PDF. Totals follow the rule documented in ``models.py``.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from flask import Response, current_app, flash, redirect, render_template, url_for
from flask_babel import format_date, format_decimal, gettext as _
from flask_admin.model.form import InlineFormAdmin
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length, Optional

from crm_portal import signals
from crm_portal.api import (AdminModelView, Button, Column, DemoContext, Field, Module, Section, WriteRefused, _l,
                            audit, current_portal_user, date_badge, db, external_url, get_or_404, queue_email,
                            require, utcnow)

from .models import CUSTOMER_STATUSES, STATUS_LABELS, Quote, QuoteLine, money
from .pdf import render_quote_pdf

__all__ = ["QuotesModule", "Quote", "QuoteLine", "money"]

COMMENT_MAX = 2000
#: States after the customer's decision: the admin no longer edits such a quote.
DECIDED_STATUSES = ("accepted", "rejected")


def _quantity(value) -> str:
    """A quantity or percentage without trailing zeros, in the user's locale (1,5 / 22)."""
    return format_decimal(value if value is not None else 0, format="#,##0.###")


def _status_label(value, row) -> str:
    return str(STATUS_LABELS.get(row.effective_status(), value))


class QuoteDecisionForm(FlaskForm):
    comment = TextAreaField(_l("Comment (optional)"), validators=[Optional(), Length(max=COMMENT_MAX)])


class QuoteLineInline(InlineFormAdmin):
    form_columns = ("id", "position", "product_code", "description", "quantity", "unit_price", "discount",
                    "vat_rate")
    # A new line has no id yet: the hidden primary key must not be required.
    form_args = {"id": {"validators": [Optional()]}}


class QuoteAdmin(AdminModelView):
    roles = ("admin", "operator")
    inline_models = (QuoteLineInline(QuoteLine),)
    column_list = ("number", "company", "contact", "subject", "date", "valid_until", "status", "gross_total",
                   "decided_at")
    column_searchable_list = ("number", "subject")
    column_filters = ("status", "date", "valid_until")
    column_default_sort = ("date", True)
    form_excluded_columns = ("net_total", "vat_total", "gross_total", "decided_by", "decided_at",
                             "decision_comment", "created_at")
    column_details_list = ("number", "company", "contact", "subject", "date", "valid_until", "status",
                           "net_total", "vat_total", "gross_total", "decided_by", "decided_at",
                           "decision_comment", "notes")

    def check_editable(self, model):
        # The customer's decision is final: the quote and its lines are what they decided on.
        stored = Quote.select(Quote.status).where(Quote.id == model.id).scalar()
        if stored in DECIDED_STATUSES:
            raise WriteRefused(_("This quote has been accepted or rejected by the customer: it can no longer "
                                 "be changed."))

    def after_model_change(self, form, model, is_created):
        # Lines and totals are saved in the base view's one transaction with the quote.
        model.recompute_totals()
        super().after_model_change(form, model, is_created)


class QuotesModule(Module):
    name = "quotes"
    label = _l("Quotes")
    icon = "file-earmark-text"
    description = _l("Quotes we sent you: review, accept or reject them and download the PDF.")
    position = 20
    models = (Quote, QuoteLine)
    record = Quote
    contact_field = Quote.contact
    company_field = Quote.company
    default_sort = "-date"
    actions = ("view", "accept", "export")
    detail_template = "quotes/detail.html"
    columns = [
        Column(Quote.number, _l("Number"), search=True, sort=True, link=True),
        Column(Quote.subject, _l("Subject"), search=True, sort=True),
        Column(Quote.date, _l("Date"), sort=True),
        Column(Quote.valid_until, _l("Valid until"), sort=True, badge=date_badge(7, past="secondary")),
        Column(Quote.status, _l("Status"), sort=True, format=_status_label),
        Column(Quote.contact, _l("Addressed to"), display="last_name", search=True, sort=True,
               format=lambda contact, row: contact.full_name),
        Column(Quote.gross_total, _l("Total"), sort=True),
    ]
    detail = [
        Section(_l("Quote"), [
            Field("number", _l("Number")),
            Field("subject", _l("Subject")),
            Field("date", _l("Date")),
            Field("valid_until", _l("Valid until")),
            Field("status", _l("Status"), format=_status_label),
            Field("company.name", _l("Customer")),
            Field("notes", _l("Notes"), wide=True),
        ]),
    ]

    # --- scoping: drafts never reach customers ---------------------------------------------
    def scope_query(self, query, user, scope):
        return super().scope_query(query, user, scope).where(Quote.status.in_(CUSTOMER_STATUSES))

    def buttons(self):
        return [Button("quotes.list", _l("Quotes"), endpoint="quotes.list", icon="file-earmark-text",
                       description=_l("Review and accept our quotes"))]

    def admin_views(self):
        return [QuoteAdmin(Quote, name=_l("Quotes"), category=_l("Quotes"),
                           endpoint="quotes_quote")]

    # --- views -----------------------------------------------------------------------------
    def register_views(self, bp):
        module = self
        bp.add_app_template_filter(_quantity, "quotes_qty")

        @bp.route("/<int:record_id>/accept", methods=["POST"])
        def accept(record_id: int):
            return module.decide(record_id, "accepted")

        @bp.route("/<int:record_id>/reject", methods=["POST"])
        def reject(record_id: int):
            return module.decide(record_id, "rejected")

        @bp.route("/<int:record_id>/print")
        def print_view(record_id: int):
            quote = get_or_404(module, record_id)
            return render_template("quotes/print.html", module=module, record=quote,
                                   lines=quote.ordered_lines(), status_labels=STATUS_LABELS)

        @bp.route("/<int:record_id>/pdf")
        def pdf(record_id: int):
            quote = get_or_404(module, record_id)
            data = render_quote_pdf(quote, quote.ordered_lines(), current_app.config["PORTAL_NAME"])
            safe_number = re.sub(r"[^A-Za-z0-9._-]", "_", quote.number)
            response = Response(data, mimetype="application/pdf")
            response.headers["Content-Disposition"] = f'attachment; filename="quote-{safe_number}.pdf"'
            response.headers["X-Content-Type-Options"] = "nosniff"
            return response

    def _refusal(self, quote: Quote) -> str:
        if quote.status == "accepted":
            return _("This quote has already been accepted; its state cannot change any more.")
        if quote.status == "rejected":
            return _("This quote has already been rejected; its state cannot change any more.")
        if quote.is_expired():
            return _("This quote expired on %(date)s and can no longer be accepted or rejected.",
                     date=format_date(quote.valid_until, "medium"))
        return _("This quote cannot be accepted or rejected.")

    def decide(self, record_id: int, new_status: str):
        """Accept or reject a sent, unexpired quote in scope; anything else changes nothing."""
        grant = require(self, "view")
        quote = get_or_404(self, record_id, action="accept")
        form = QuoteDecisionForm()
        if not form.validate_on_submit():
            return render_template(self.detail_template, module=self, record=quote, grant=grant,
                                   decision_form=form), 400
        user = current_portal_user()
        comment = (form.comment.data or "").strip() or None
        today = dt.date.today()
        with db.atomic():
            # One conditional UPDATE: two concurrent decisions cannot both succeed.
            changed = (Quote.update(status=new_status, decided_by=user.contact_id, decided_at=utcnow(),
                                    decision_comment=comment)
                       .where((Quote.id == quote.id) & (Quote.status == "sent") & (Quote.valid_until >= today))
                       .execute())
            if changed:
                old_status = quote.status
                quote = Quote.get_by_id(quote.id)
                audit(f"quote-{new_status}", quote, details={"comment": comment})
                signals.record_updated.send(self.name, module=self, record=quote, user=user,
                                            changes={"status": (old_status, new_status)})
                queue_email(current_app.config["SUPPORT_EMAIL"], "quotes_decided",
                            language=current_app.config["BABEL_DEFAULT_LOCALE"], quote=quote,
                            decision=new_status, contact=user.contact, comment=comment,
                            admin_url=external_url("quotes_quote.details_view", id=quote.id))
        if not changed:
            quote = Quote.get_by_id(quote.id)
            return render_template(self.detail_template, module=self, record=quote, grant=grant,
                                   decision_form=form, decision_error=self._refusal(quote)), 409
        flash(_("Quote accepted: thank you, we will be in touch shortly.") if new_status == "accepted"
              else _("Quote rejected. Thank you for letting us know."), "success")
        return redirect(url_for("quotes.detail", record_id=quote.id))

    # --- demo ------------------------------------------------------------------------------
    def demo_data(self, ctx: DemoContext) -> None:
        today = dt.date.today()
        c, co = ctx.contacts, ctx.companies
        specs = [
            ("P-2025-001", "acme", "bruno", "Rinnovo licenze gestionale", -5, 25, "sent",
             [("GES-USR", "Licenza utente gestionale (12 mesi)", "5", "240.00", "10", "22"),
              (None, "Installazione e configurazione", "3.5", "65.00", "0", "22")]),
            ("P-2025-002", "acme", "anna", "Nuovo firewall sede di Milano", -3, 27, "sent",
             [("FW-200", "Firewall perimetrale FW-200", "1", "1890.00", "5", "22"),
              (None, "Configurazione regole e VPN", "6", "70.00", "0", "22")]),
            ("P-2025-003", "acme", "anna", "Backup in cloud 1 TB", -40, -10, "accepted",
             [("BCK-1T", "Backup in cloud 1 TB (12 mesi)", "1", "960.00", "0", "22")]),
            ("P-2025-004", "acme", "bruno", "Sostituzione PC ufficio paghe", -60, -30, "sent",
             [("PC-OF", "PC ufficio i5 16 GB", "2", "749.90", "3", "22")]),
            ("P-2025-005", "acme", "bruno", "Bozza: stampanti multifunzione", -1, 29, "draft",
             [("MFP-40", "Multifunzione A3", "2", "1200.00", "0", "22")]),
            ("P-2025-010", "globex", "carla", "Consulenza migrazione posta", -7, 23, "sent",
             [(None, "Analisi e migrazione caselle", "12", "80.00", "0", "22"),
              ("M365-BS", "Microsoft 365 Business Standard (annuale)", "15", "126.00", "0", "22")]),
            ("P-2025-020", "initech", "elena", "Contratto assistenza Gold", -2, 58, "sent",
             [("ASS-GOLD", "Contratto assistenza Gold (annuale)", "1", "4200.00", "0", "22")]),
        ]
        for number, company, contact, subject, start, until, status, lines in specs:
            quote = Quote.create(number=number, company=co[company], contact=c[contact], subject=subject,
                                 date=today + dt.timedelta(days=start), valid_until=today + dt.timedelta(days=until),
                                 status=status)
            for position, (code, text, qty, price, disc, vat) in enumerate(lines):
                QuoteLine.create(quote=quote, position=position, product_code=code, description=text,
                                 quantity=Decimal(qty), unit_price=Decimal(price), discount=Decimal(disc),
                                 vat_rate=Decimal(vat))
            if status == "accepted":
                quote.decided_by = c[contact]
                quote.decided_at = utcnow() - dt.timedelta(days=20)
                quote.decision_comment = "Procediamo, grazie."
                quote.save()
            quote.recompute_totals()
