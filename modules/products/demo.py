"""Demo products and licences, with support dates around today."""
from __future__ import annotations

import datetime as dt

from crm_portal.api import DemoContext

from .models import CompanySetting, Product

#: company, contact, name, code, version, quantity, serial, serial for company scope only, support days
PRODUCTS = [
    ("acme", "bruno", "Gestionale ContaPiù", "GES-USR", "2025.2", 5, "GES-ACME-5U-7781-2291", False, 220),
    ("acme", "anna", "Firewall FW-200", "FW-200", "7.4.3", 1, "FW200-SN-00A1B2C3", True, 400),
    ("acme", "anna", "Backup in cloud 1 TB", "BCK-1T", None, 1, "BCK-ACME-0091", False, 25),
    ("acme", None, "Microsoft 365 Business Basic", "M365-BB", None, 18, None, False, 150),
    ("acme", "chiara", "Antivirus Endpoint", "AV-END", "12.1", 20, "AVE-ACME-20-5521", False, -12),
    ("globex", "carla", "Microsoft 365 Business Standard", "M365-BS", None, 15, "M365-GLOBEX-15", False, 300),
    ("initech", "elena", "Server HPE ProLiant DL380", "SRV-DL380", "Gen11", 2, "CZJ1234ABC", True, 700),
]


def load(ctx: DemoContext) -> None:
    """Create the demo products; Initech shows serials to its company-scope users only."""
    today = dt.date.today()
    c, co = ctx.contacts, ctx.companies
    for company, contact, name, code, version, qty, serial, company_only, days in PRODUCTS:
        Product.create(company=co[company], contact=c[contact] if contact else None, name=name, code=code,
                       version=version, quantity=qty, serial=serial, serial_company_only=company_only,
                       support_end=today + dt.timedelta(days=days))
    CompanySetting.create(company=co["initech"], serial_company_only=True)
