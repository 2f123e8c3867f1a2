MODULE = "quotes"

ROUTES = [
    ("GET", "/quotes/{id}/print", None),
    ("GET", "/quotes/{id}/pdf", None),
    ("POST", "/quotes/{id}/accept", {"comment": "ok"}),
    ("POST", "/quotes/{id}/reject", {"comment": "no"}),
]


def records(demo):
    from modules.quotes import Quote

    by_number = {q.number: q.id for q in Quote.select()}
    return {"own": by_number["P-2025-001"], "colleague": by_number["P-2025-002"], "other": by_number["P-2025-010"]}


def marker(record_id, demo):
    from modules.quotes import Quote

    return Quote.get_by_id(record_id).number
