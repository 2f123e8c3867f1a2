"""The demo data tells one story: the demo tickets are about the demo contracts' services, and the
FAQ answers their topics in Italian and English (the wizard's suggestions find them)."""
from __future__ import annotations

from crm_portal.db import db
from crm_portal.modules.faq import Article
from crm_portal.modules.faq import search as fts
from crm_portal.modules.services.models import Service, ServiceSubcategory
from crm_portal.modules.tickets.demo import DEMO
from crm_portal.modules.tickets.models import Ticket

#: demo ticket → the FAQ article its title suggests first, in the requester's language.
ANSWERED_BY = {
    "Il cedolino di marzo non si stampa": 'I cedolini non si stampano: "modello non trovato"',
    "Come registro una nota di credito?": "Registrare una nota di credito di un fornitore",
    "Export presenze per il consulente": "Esportare le presenze per il consulente del lavoro",
    "Errore nella liquidazione IVA": "La liquidazione IVA non corrisponde al registro",
    "Installazione su un nuovo PC": "Installare il gestionale su un nuovo PC",
    "Chiusura esercizio: ordine delle operazioni": "Chiusura e riapertura dei conti",
    "Timbrature doppie": "Timbrature doppie in entrata",
    "Rinnovo del contratto di assistenza": "Quando scade il contratto di assistenza?",
    "Bank reconciliation import fails": "Importing bank statements (CBI) for reconciliation",
    "Ritenute d'acconto nel 770": "Le ritenute d'acconto non compaiono nel 770",
    "Add a cost centre to payroll": "Add a cost centre to payroll",
    "Password scaduta": "La password del gestionale è scaduta",
}


def test_demo_tickets_are_on_their_companys_services(app, demo):
    with app.app_context(), db.connection_context():
        tickets = list(Ticket.select())
        assert len(tickets) == len(DEMO)
        for ticket in tickets:
            service = Service.get_by_id(ticket.service_id)
            assert service.company_id == ticket.company_id and service.name == ticket.service_name, ticket.title
            if ticket.subcategory_id is not None:
                sub = ServiceSubcategory.get_by_id(ticket.subcategory_id)
                assert sub.service_id == service.id and sub.name == ticket.subcategory_name, ticket.title
        assert sum(t.subcategory_id is not None for t in tickets) >= len(tickets) // 2
        # The list's global search reads the service too.
        assert all(t.service_name.lower() in t.search_text for t in tickets)


def test_faq_answers_the_demo_tickets_in_both_languages(app, demo):
    with app.app_context(), db.connection_context():
        articles = {a.id: a for a in Article.select()}
        for ticket in Ticket.select():
            if ticket.title not in ANSWERED_BY:
                continue
            language = ticket.contact.language
            found = fts.search_languages(ticket.title, language, any_word=True, prefix=True)
            assert found, ticket.title
            top = articles[found[0][0]]
            assert top.title == ANSWERED_BY[ticket.title], ticket.title
            # The same category has an article in the other language.
            other = {a.language for a in articles.values() if a.category_id == top.category_id}
            assert other == {"it", "en"}, top.title
