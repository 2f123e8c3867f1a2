"""Schema steps for databases made by older versions of the module."""
from __future__ import annotations

import peewee as pw
from crm_portal.api import Migration


def add_rating(migrator):
    """Version 1.1 added a satisfaction rating: existing databases get the column."""
    return [migrator.add_column("visits_visit", "rating", pw.IntegerField(null=True))]


MIGRATIONS = [Migration("0002_rating", add_rating)]
