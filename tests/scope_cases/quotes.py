from crm_portal.testing import Route

MODULE = "quotes"


def _sent(record_id):
    """Back to "sent" (the demo state of the three quotes), so that accept and reject both apply."""
    from crm_portal.modules.quotes import Quote

    Quote.update(status="sent", decided_by=None, decided_at=None, decision_comment=None).where(
        Quote.id == record_id).execute()


def _decided(status):
    def check(response, record_id):
        from crm_portal.modules.quotes import Quote

        assert Quote.get_by_id(record_id).status == status
    return check


def _shows_number(response, record_id):
    from crm_portal.modules.quotes import Quote

    assert Quote.get_by_id(record_id).number in response.text


def _is_pdf(response, record_id):
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")


ROUTES = [
    Route("GET", "/quotes/{id}/print", 200, check=_shows_number),
    Route("GET", "/quotes/{id}/pdf", 200, check=_is_pdf),
    # The first step asks for confirmation and changes nothing; the confirmed one decides.
    Route("POST", "/quotes/{id}/accept", 200, {"comment": "ok"}, prepare=_sent, check=_decided("sent")),
    Route("POST", "/quotes/{id}/accept", 302, {"comment": "ok", "confirm": "1"}, prepare=_sent,
          check=_decided("accepted")),
    Route("POST", "/quotes/{id}/reject", 302, {"comment": "no", "confirm": "1"}, prepare=_sent,
          check=_decided("rejected")),
    # Decided already: the route is reached and refuses the change, at either step.
    Route("POST", "/quotes/{id}/accept", 409, {"comment": "again"}, check=_decided("rejected")),
    Route("POST", "/quotes/{id}/accept", 409, {"comment": "again", "confirm": "1"}, check=_decided("rejected")),
]


def records(demo):
    from crm_portal.modules.quotes import Quote

    by_number = {q.number: q.id for q in Quote.select()}
    return {"own": by_number["P-2025-001"], "colleague": by_number["P-2025-002"], "other": by_number["P-2025-010"]}


def marker(record_id, demo):
    from crm_portal.modules.quotes import Quote

    return Quote.get_by_id(record_id).number
