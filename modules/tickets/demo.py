"""Demo tickets for Acme and Globex: every workflow state, with conversations and history, each on
a service (and sub-category) of the company's demo contract when the services module is there."""
from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

from flask import current_app

from crm_portal.api import DemoContext, db, utcnow

from . import workflow
from .models import TicketCategory

# (requester, operator, type, category, priority, severity, title, description, path, conversation, days ago)
# path: the states the ticket went through after Open; conversation: (who, text) with who "c"
# (the requester) or "s" (the operator), "n" an internal note.
DEMO = [
    ("anna", "operator", "problem", "payroll", "urgent", "blocking",
     "Il cedolino di marzo non si stampa",
     ("Dalla procedura paghe la stampa dei cedolini di marzo si blocca al 40% con errore "
      "'modello non trovato'. Versione 12.4."),
     [], [], 0.2),
    ("bruno", "support", "question", "accounting", "medium", "non_blocking",
     "Come registro una nota di credito?",
     "Devo registrare una nota di credito di un fornitore su un esercizio chiuso: quale causale uso?",
     [workflow.WAITING_SUPPORT], [("c", "Aggiungo che il fornitore è estero (UE).")], 1),
    ("chiara", "operator", "question", "attendance", "low", "non_blocking",
     "Export presenze per il consulente",
     "Vorrei esportare le presenze di aprile in formato CSV per il consulente del lavoro.",
     [workflow.WAITING_SUPPORT, workflow.WAITING_CUSTOMER],
     [("s", "Ci può indicare quale tracciato richiede il consulente?")], 2),
    ("bruno", "operator", "problem", "accounting", "medium", "blocking",
     "Errore nella liquidazione IVA", "La liquidazione IVA di aprile riporta un credito diverso dal registro.",
     [workflow.WAITING_SUPPORT, workflow.IN_PROGRESS],
     [("s", "Abbiamo riprodotto il problema, stiamo correggendo i progressivi."),
      ("n", "Probabile causa: protocollo duplicato 2024/118.")], 4),
    ("anna", "support", "request", "installation", "low", "non_blocking",
     "Installazione su un nuovo PC",
     "Abbiamo un nuovo collega in amministrazione: serve installare il gestionale sul suo PC.",
     [workflow.WAITING_SUPPORT, workflow.IN_PROGRESS, workflow.PLANNED],
     [("s", "Intervento pianificato per la prossima settimana, la contatteremo per l'accesso remoto.")], 5),
    ("anna", "operator", "request", "payroll", "medium", "non_blocking",
     "Nuovo campo nel cedolino", "Vorremmo stampare sul cedolino anche il saldo della banca ore.",
     [workflow.WAITING_SUPPORT, workflow.WAITING_DEV],
     [("s", "La richiesta è stata passata al reparto sviluppo per la valutazione.")], 9),
    ("bruno", "operator", "question", "accounting", "medium", "non_blocking",
     "Chiusura esercizio: ordine delle operazioni",
     "Qual è l'ordine corretto delle operazioni di chiusura e riapertura dei conti?",
     [workflow.WAITING_SUPPORT, workflow.RESOLVED],
     [("s", "Prima le scritture di assestamento, poi chiusura e infine riapertura: trova la guida nelle FAQ.")], 2),
    ("chiara", "support", "question", "attendance", "low", "non_blocking",
     "Timbrature doppie", "Alcuni dipendenti risultano con due timbrature in entrata.",
     [workflow.WAITING_SUPPORT, workflow.RESOLVED, workflow.CLOSED],
     [("s", "Era attivo il doppio terminale: lo abbiamo disattivato.")], 20),
    ("anna", "operator", "question", "other", "low", "non_blocking",
     "Rinnovo del contratto di assistenza", "Quando scade il nostro contratto?",
     [workflow.BLOCKED], [("s", "Per il rinnovo contatti l'amministrazione.")], 12),
    ("bruno", "operator", "request", "other", "low", "non_blocking",
     "Offerta per nuovo modulo", "Vorremmo un preventivo per il modulo magazzino.",
     [workflow.DISCARDED], [("s", "Richiesta commerciale: la inoltriamo all'ufficio vendite.")], 15),
    ("carla", "support", "problem", "accounting", "urgent", "blocking",
     "Bank reconciliation import fails", "Importing the bank statement (CBI format) fails with 'invalid record 61'.",
     [workflow.WAITING_SUPPORT], [], 0.5),
    ("dario", "operator", "question", "accounting", "medium", "non_blocking",
     "Ritenute d'acconto nel 770", "Le ritenute dei professionisti non compaiono nel 770.",
     [workflow.WAITING_SUPPORT, workflow.WAITING_CUSTOMER],
     [("s", "Le fatture sono state registrate con la causale corretta?")], 3),
    ("carla", "operator", "request", "payroll", "medium", "non_blocking",
     "Add a cost centre to payroll", "We need a new cost centre 'R&D' in payroll reports.",
     [workflow.WAITING_SUPPORT, workflow.IN_PROGRESS, workflow.RESOLVED],
     [("s", "Done: the cost centre is available from today.")], 2.5),
    ("dario", "support", "question", "other", "low", "non_blocking",
     "Password scaduta", "Non riesco ad accedere: la password risulta scaduta.",
     [workflow.WAITING_SUPPORT, workflow.RESOLVED, workflow.CLOSED], [("s", "Abbiamo reimpostato la password.")], 30),
]


#: The service and sub-category (of the services module's demo contracts) each demo ticket is about.
SERVICES = {
    "Il cedolino di marzo non si stampa": ("Assistenza gestionale", "Paghe"),
    "Come registro una nota di credito?": ("Assistenza gestionale", "Contabilità"),
    "Export presenze per il consulente": ("Assistenza gestionale", "Paghe"),
    "Errore nella liquidazione IVA": ("Assistenza gestionale", "Contabilità"),
    "Installazione su un nuovo PC": ("Manutenzione postazioni di lavoro", "PC e portatili"),
    "Nuovo campo nel cedolino": ("Assistenza gestionale", "Paghe"),
    "Chiusura esercizio: ordine delle operazioni": ("Assistenza gestionale", "Contabilità"),
    "Timbrature doppie": ("Assistenza gestionale", "Paghe"),
    "Rinnovo del contratto di assistenza": ("Assistenza sistemistica", None),
    "Offerta per nuovo modulo": ("Assistenza gestionale", "Magazzino"),
    "Bank reconciliation import fails": ("Help desk", None),
    "Ritenute d'acconto nel 770": ("Help desk", None),
    "Add a cost centre to payroll": ("Help desk", None),
    "Password scaduta": ("Help desk", "Utenti"),
}

Choice = tuple[int, str]


def service_choices(ctx: DemoContext) -> dict[tuple[int | None, str], tuple[Choice, dict[str, Choice]]]:
    """The demo companies' services as ``{(company id, name): ((id, name), {sub-category name: (id, name)})}``,
    read through the services module's declaration (its record, company field and sub-categories);
    empty without the services module."""
    module = current_app.extensions["crm_portal"].modules.get("services")
    if module is None or module.record is None or module.company_field is None:
        return {}
    company_ids = [company.id for company in ctx.companies.values()]
    found = {}
    for service in module.base_query().where(module.company_field.in_(company_ids)):
        subs = {sub.name: (sub.id, sub.name) for sub in service.ordered_subcategories()}
        found[(service.company_id, service.name)] = ((service.id, service.name), subs)
    return found


@contextlib.contextmanager
def _at(moment: dt.datetime) -> Iterator[None]:
    original = workflow.clock
    workflow.clock = lambda: moment
    try:
        yield
    finally:
        workflow.clock = original


def load(ctx: DemoContext) -> None:
    """Create the demo tickets (after the services' demo data: ``demo_after``)."""
    # Resolved demo tickets are younger than the auto-close delay, so they wait for the customer.
    workflow.install_defaults()
    categories = {c.key: c.id for c in TicketCategory.select()}
    services = service_choices(ctx)
    now = utcnow()
    with workflow.quiet(), db.atomic():
        for (who, op, type_, cat, prio, sev, title, desc, path, talk, days) in DEMO:
            contact = ctx.contacts[who]
            staff = ctx.staff[op]
            moment = now - dt.timedelta(days=days)
            customer = workflow.Actor.customer(contact)
            operator = workflow.Actor.for_staff(staff)
            service_name, sub_name = SERVICES.get(title, (None, None))
            found = services.get((contact.company_id, service_name)) if service_name else None
            service, subs = found if found else (None, {})
            with _at(moment):
                ticket = workflow.create_ticket(customer, contact, title=title, description=desc, type=type_,
                                                category=categories.get(cat), priority=prio, severity=sev,
                                                service=service, subcategory=subs.get(sub_name) if sub_name else None)
            step = dt.timedelta(hours=max(1.0, days * 24 / (len(path) + len(talk) + 2)))
            moment += step
            talk = list(talk)
            for target in path:
                with _at(moment):
                    if target == workflow.WAITING_SUPPORT and ticket.status == workflow.OPEN:
                        workflow.take_charge(ticket, staff)
                    elif target == workflow.CLOSED:
                        workflow.close_by_customer(ticket, customer, 5, "Tutto ok, grazie.")
                    else:
                        if ticket.status == workflow.OPEN and target in (workflow.BLOCKED, workflow.DISCARDED):
                            workflow.assign(ticket, staff)
                        if talk and talk[0][0] == "s" and target in (workflow.RESOLVED, workflow.WAITING_CUSTOMER,
                                                                      workflow.PLANNED, workflow.WAITING_DEV,
                                                                      workflow.BLOCKED, workflow.DISCARDED):
                            workflow.add_comment(ticket, operator, talk.pop(0)[1], "public")
                        workflow.change_state(ticket, target, operator,
                                              planned_for=(now + dt.timedelta(days=6)).date()
                                              if target == workflow.PLANNED else None)
                moment += step
            for kind, text in talk:
                with _at(moment):
                    if kind == "c" and ticket.status not in workflow.final_keys():
                        workflow.add_comment(ticket, customer, text, "public")
                    elif kind in ("s", "n"):
                        workflow.add_comment(ticket, operator, text, "public" if kind == "s" else "internal")
                moment += step
