"""Demo services: this year's contracts of the demo companies, with sub-categories."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from crm_portal.api import DemoContext

from .models import Service, ServiceSubcategory

#: company, name, contract, contracted hours, hours used, sub-categories.
SPECS = [
    ("acme", "Assistenza sistemistica", "CTR-ACME-2025", "120", "47.5",
     ["Server", "Rete e firewall", "Posta elettronica", "Backup"]),
    ("acme", "Assistenza gestionale", "CTR-ACME-2025", "60", "12",
     ["Contabilità", "Magazzino", "Paghe"]),
    ("acme", "Manutenzione postazioni di lavoro", "CTR-ACME-2025", "40", "38.25",
     ["PC e portatili", "Stampanti"]),
    ("globex", "Help desk", "CTR-GLOBEX-7", "80", "20", ["Utenti", "Microsoft 365"]),
    ("initech", "Assistenza Gold", "CTR-INI-GOLD", "200", "64", ["Server", "Applicazioni", "Sicurezza"]),
    ("umbrella", "Assistenza a consumo", None, "10", "2", ["Generale"]),
]


def load(ctx: DemoContext) -> None:
    """Create the demo services, valid for the current calendar year."""
    start = dt.date.today().replace(month=1, day=1)
    end = start.replace(year=start.year + 1) - dt.timedelta(days=1)
    for position, (company, name, ref, hours, used, subs) in enumerate(SPECS):
        service = Service.create(company=ctx.companies[company], name=name, contract_reference=ref,
                                 start_date=start, end_date=end, contracted_hours=Decimal(hours),
                                 used_hours=Decimal(used), position=position,
                                 description=f"{name}: interventi da remoto e on-site secondo contratto.")
        for sub_position, sub in enumerate(subs):
            ServiceSubcategory.create(service=service, name=sub, position=sub_position)
