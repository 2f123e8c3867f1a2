"""Demo deadlines for Acme, Globex and Initech, around today."""
from __future__ import annotations

import datetime as dt

from crm_portal.api import DemoContext

from .models import Deadline

#: company, contact, title, kind, days from today, reference
DEADLINES = [
    ("acme", None, "Rinnovo contratto di assistenza", "renewal", 45, "CTR-ACME-2025"),
    ("acme", "bruno", "Scadenza licenze gestionale", "licence", 12, "GES-USR"),
    ("acme", "anna", "Fine supporto firewall FW-200", "support", 20, "FW-200"),
    ("acme", "anna", "Fattura 2025/118", "invoice", -5, "FT-2025-118"),
    ("acme", "bruno", "Aggiornamento server di posta", "intervention", 3, None),
    ("acme", None, "Verifica annuale backup", "intervention", 90, None),
    ("globex", "carla", "Rinnovo Microsoft 365", "renewal", 25, "M365-BS"),
    ("initech", "elena", "Fine supporto server DL380", "support", 200, "SRV-DL380"),
]


def load(ctx: DemoContext) -> None:
    """Create the demo deadlines: overdue, soon and later ones."""
    today = dt.date.today()
    c, co = ctx.contacts, ctx.companies
    for company, contact, title, kind, days, ref in DEADLINES:
        Deadline.create(company=co[company], contact=c[contact] if contact else None, title=title, kind=kind,
                        due_date=today + dt.timedelta(days=days), reference=ref, description=f"{title}.")
