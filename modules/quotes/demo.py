"""Demo quotes: sent, accepted, expired and draft, for Acme, Globex and Initech."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from crm_portal.api import DemoContext, utcnow

from .models import Quote, QuoteLine

#: number, company, contact, subject, start and end (days from today), status, lines
#: (code, description, quantity, unit price, discount %, VAT %).
SPECS = [
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


def load(ctx: DemoContext) -> None:
    """Create the demo quotes with their lines and totals."""
    today = dt.date.today()
    c, co = ctx.contacts, ctx.companies
    for number, company, contact, subject, start, until, status, lines in SPECS:
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
