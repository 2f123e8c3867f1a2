"""Demo visits: two for bruno, one for his colleague anna (Acme), none for other companies."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from .models import Visit


def load(ctx):
    acme = ctx.companies["acme"]
    for n, (who, days) in enumerate([("bruno", 3), ("anna", 10), ("bruno", 40)], start=1):
        Visit.create(number=f"V{n:04d}", company=acme, contact=ctx.contacts[who],
                     date=dt.date.today() - dt.timedelta(days=days), technician="Marco Tecnico",
                     summary="Installazione aggiornamento e verifica backup.", hours=Decimal("2.50"))
