"""Demo data for trying the portal: NOT for production (every password is "demo").

The demo passwords are set directly, below the password policy, and only on accounts the demo
creates: an account that already exists keeps its password. ``crm-portal demo`` refuses to
run on a production instance.
"""
from __future__ import annotations

import random
from collections.abc import Mapping

from flask import Flask

from .api import DemoContext, Module
from .auth import hash_password
from .db import db
from .migrations import upgrade
from .models import Company, Contact, Profile, StaffUser
from .provisioning import install_defaults

DEMO_PASSWORD = "demo"

COMPANIES = {
    "acme": {"name": "Acme S.p.A.", "vat_number": "IT01234567890", "address": "Via Roma 12", "city": "Milano",
             "postal_code": "20121", "province": "MI", "country": "Italia", "phone": "+39 02 1234567",
             "email": "info@acme.example", "email_domain": "acme.example", "website": "https://acme.example",
             "notes": "Cliente dal 2015; contratto di assistenza Gold.",
             "reserved_conditions": "Sconto 10% sui servizi a consumo."},
    "globex": {"name": "Globex S.r.l.", "vat_number": "IT09876543210", "address": "Corso Vittorio Emanuele 5",
               "city": "Torino", "postal_code": "10121", "province": "TO", "country": "Italia",
               "phone": "+39 011 7654321",
               "email": "amministrazione@globex.example", "email_domain": "globex.example"},
    "initech": {"name": "Initech Italia S.r.l.", "vat_number": "IT11223344556", "address": "Via Garibaldi 40",
                "city": "Bologna", "postal_code": "40124", "province": "BO", "country": "Italia",
                "phone": "+39 051 998877",
                "email": "info@initech.example", "email_domain": "initech.example"},
    "umbrella": {"name": "Umbrella Servizi S.n.c.", "vat_number": "IT66554433221", "address": "Piazza Duomo 3",
                 "city": "Firenze", "postal_code": "50122", "province": "FI", "country": "Italia",
                 "phone": "+39 055 223344",
                 "email": "info@umbrella.example", "email_domain": "umbrella.example"},
}

# key: (company, first, last, email, profile, role, office, language)
CONTACTS = {
    "anna": ("acme", "Anna", "Rossi", "anna@acme.example", "company", "Responsabile IT", "Sede di Milano", "it"),
    "bruno": ("acme", "Bruno", "Bianchi", "bruno@acme.example", "user", "Amministrazione", "Sede di Milano", "it"),
    "chiara": ("acme", "Chiara", "Verdi", "chiara@acme.example", "user", "Ufficio paghe", "Filiale di Monza", "it"),
    "carla": ("globex", "Carla", "Neri", "carla@globex.example", "company", "CFO", "Torino", "en"),
    "dario": ("globex", "Dario", "Gallo", "dario@globex.example", "user", "Contabilità", "Torino", "it"),
    "elena": ("initech", "Elena", "Conti", "elena@initech.example", "company", "IT manager", "Bologna", "it"),
    "fabio": ("umbrella", "Fabio", "Marino", "fabio@umbrella.example", "user", "Titolare", "Firenze", "it"),
}

STAFF = {
    "admin": ("admin@example.com", "Amministratore Demo", "admin"),
    "operator": ("operatore@example.com", "Olga Operatrice", "operator"),
    "support": ("supporto@example.com", "Stefano Supporto", "operator"),
}


def demo_order(modules: Mapping[str, Module]) -> list[Module]:
    """The modules in menu order, except that each comes after the modules its ``demo_after``
    names (the tickets' demo data picks the services' demo contracts)."""
    ordered: list[Module] = []
    placed: set[str] = set()

    def place(module: Module, waiting: frozenset[str]) -> None:
        if module.name in placed or module.name in waiting:  # placed already, or a cycle
            return
        for name in module.demo_after:
            if name in modules:
                place(modules[name], waiting | {module.name})
        placed.add(module.name)
        ordered.append(module)

    for module in modules.values():
        place(module, frozenset())
    return ordered


def load_demo(app: Flask) -> list[str]:
    """Load the demo companies, contacts, staff and every module's demo records (once). The
    ``crm-portal demo`` command refuses to call it on a production instance."""
    lines = upgrade(app.extensions["crm_portal"])
    lines += [f"installed {line}" for line in install_defaults(app)]
    if Company.get_or_none(Company.name == COMPANIES["acme"]["name"]) is not None:
        return lines + ["demo data already present"]
    password = hash_password(DEMO_PASSWORD)
    with db.atomic():
        companies = {key: Company.create(**data) for key, data in COMPANIES.items()}
        profiles = {p.name: p for p in Profile.select()}
        contacts = {}
        for key, (company, first, last, email, profile, role, office, lang) in CONTACTS.items():
            contacts[key] = Contact.get_or_none(Contact.email == email) or Contact.create(
                first_name=first, last_name=last, email=email, company=companies[company],
                profile=profiles.get(profile), portal_access=True, password_hash=password, role=role,
                office=office, language=lang, phone="+39 02 5550" + str(len(contacts)).zfill(3),
            )
        staff = {}
        kept = [c.email for c in contacts.values() if c.password_hash != password]
        for key, (email, name, role) in STAFF.items():
            # An existing account (the admin of `crm-portal init`) keeps its password.
            staff[key] = StaffUser.get_or_none(StaffUser.email == email)
            if staff[key] is None:
                staff[key] = StaffUser.create(email=email, name=name, role=role, password_hash=password)
            else:
                kept.append(email)
        ctx = DemoContext(companies=companies, contacts=contacts, staff=staff, rng=random.Random(42))
        for module in demo_order(app.extensions["crm_portal"].modules):
            module.demo_data(ctx)
            lines.append(f"demo data: {module.name}")
    lines.append(f"demo companies: {', '.join(c.name for c in companies.values())}")
    lines.append("demo logins (password 'demo'): anna@acme.example (company), bruno@acme.example (own), "
                 "carla@globex.example (company); staff admin@example.com at /admin/")
    if kept:
        lines.append(f"existing accounts keep their own passwords: {', '.join(kept)}")
    return lines
