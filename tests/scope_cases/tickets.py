"""Scope-matrix case of the tickets module: bruno's own ticket, anna's (same company), carla's (Globex).

Every ticket route that reads or acts on one ticket must answer 404 out of scope: comment, private
note, upload, attachment download, close, reopen; in scope each does its work."""
import io

from crm_portal.testing import Route

MODULE = "tickets"

TITLES = {"own": "Come registro una nota di credito?",
          "colleague": "Il cedolino di marzo non si stampa",
          "other": "Bank reconciliation import fails"}


def _ticket(record_id):
    from crm_portal.modules.tickets.models import Ticket

    return Ticket.get_by_id(record_id)


def _resolved(record_id):
    """As support leaves it after solving it: the state in which the customer may close or reopen."""
    from crm_portal.modules.tickets import workflow
    from crm_portal.modules.tickets.models import Ticket

    Ticket.update(status=workflow.RESOLVED, resolved_at=workflow.clock(), closed_at=None).where(
        Ticket.id == record_id).execute()


def _commented(body, kind):
    def check(response, record_id):
        from crm_portal.modules.tickets.models import TicketComment

        assert TicketComment.select().where((TicketComment.ticket == record_id) & (TicketComment.body == body)
                                            & (TicketComment.kind == kind)).count() == 1
    return check


def _attached(response, record_id):
    from crm_portal.modules.tickets.models import TicketAttachment

    assert TicketAttachment.select().where((TicketAttachment.ticket == record_id)
                                           & (TicketAttachment.original_name == "scope-matrix.txt")).count() == 1


def _log_id(record_id):
    """The attachment records() gave the ticket."""
    from crm_portal.modules.tickets.models import TicketAttachment

    return TicketAttachment.get((TicketAttachment.ticket == record_id)
                                & (TicketAttachment.original_name == "log.txt")).id


def _downloaded(response, record_id):
    assert response.data == b"log line\n"


def _status(expected):
    def check(response, record_id):
        assert _ticket(record_id).status == expected
    return check


ROUTES = [
    Route("POST", "/tickets/{id}/comment", 302, {"body": "A comment"}, check=_commented("A comment", "public")),
    Route("POST", "/tickets/{id}/comment", 302, {"body": "A note", "kind": "private"},
          check=_commented("A note", "private")),
    Route("POST", "/tickets/{id}/upload", 302, lambda: {"file": (io.BytesIO(b"more logs\n"), "scope-matrix.txt")},
          check=_attached),
    Route("GET", lambda record_id: f"/tickets/{record_id}/attachments/{_log_id(record_id)}", 200, check=_downloaded),
    Route("POST", "/tickets/{id}/reopen", 302, {"body": "Still broken"}, prepare=_resolved,
          check=_status("waiting_support")),
    Route("POST", "/tickets/{id}/close", 302, {"rating": "5"}, prepare=_resolved, check=_status("closed")),
    # Closed now: the routes are reached and refuse to change it.
    Route("POST", "/tickets/{id}/comment", 409, {"body": "Too late"}),
    Route("POST", "/tickets/{id}/close", 409, {"rating": "5"}),
]


def records(demo):
    """The three demo tickets, each with a "log.txt" attachment (for the download route)."""
    from werkzeug.datastructures import FileStorage

    from crm_portal.api import save_upload
    from crm_portal.modules.tickets.models import Ticket, TicketAttachment

    out = {}
    for which, title in TITLES.items():
        ticket = Ticket.get(Ticket.title == title)
        stored = save_upload(FileStorage(io.BytesIO(b"log line\n"), filename="log.txt"), "tickets")
        TicketAttachment.create(ticket=ticket.id, stored_name=stored.stored_name, original_name=stored.original_name,
                                size=stored.size, mimetype=stored.mimetype)
        out[which] = ticket.id
    return out


def marker(record_id, demo):
    """The ticket's title: unique in the demo data (numbers are not: TT1 is part of TT10)."""
    return next(t for t in TITLES.values() if _ticket(record_id).title == t)


def content(record_id, demo):
    """The description: the page's heading shows the title, the body the description."""
    return _ticket(record_id).description
