"""Scope-matrix case of the tickets module: bruno's own ticket, anna's (same company), carla's (Globex).

Every ticket route that reads or acts on one ticket must answer 404 out of scope: comment, private
note, upload, attachment download, close, reopen."""
import io

MODULE = "tickets"

TITLES = {"own": "Come registro una nota di credito?",
          "colleague": "Il cedolino di marzo non si stampa",
          "other": "Bank reconciliation import fails"}

ROUTES = [
    ("POST", "/tickets/{id}/comment", {"body": "A comment"}),
    ("POST", "/tickets/{id}/comment", {"body": "A note", "kind": "private"}),
    ("POST", "/tickets/{id}/upload", {}),
    ("GET", "/tickets/{id}/attachments/{id}", None),
    ("POST", "/tickets/{id}/close", {"rating": "5"}),
    ("POST", "/tickets/{id}/reopen", {"body": "Still broken"}),
]


def records(demo):
    """The three demo tickets; each gets an attachment whose id is the ticket's (for the download route)."""
    from werkzeug.datastructures import FileStorage

    from crm_portal.api import save_upload
    from modules.tickets.models import Ticket, TicketAttachment

    out = {}
    for which, title in TITLES.items():
        ticket = Ticket.get(Ticket.title == title)
        if TicketAttachment.get_or_none(TicketAttachment.id == ticket.id) is None:
            stored = save_upload(FileStorage(io.BytesIO(b"log line\n"), filename="log.txt"), "tickets")
            TicketAttachment.insert(id=ticket.id, ticket=ticket.id, stored_name=stored.stored_name,
                                    original_name=stored.original_name, size=stored.size,
                                    mimetype=stored.mimetype).execute()
        out[which] = ticket.id
    return out


def marker(record_id, demo):
    """The ticket's title: unique in the demo data (numbers are not: TT1 is part of TT10)."""
    return next(t for t in TITLES.values() if _title(record_id) == t)


def _title(record_id):
    from modules.tickets.models import Ticket

    return Ticket.get_by_id(record_id).title
