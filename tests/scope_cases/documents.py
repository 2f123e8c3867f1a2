MODULE = "documents"

ROUTES = [("GET", "/documents/{id}/download", None)]


def records(demo):
    from modules.documents import Document

    by_title = {d.title: d.id for d in Document.select()}
    return {"own": by_title["Rapporto intervento server"], "colleague": by_title["Verifica backup trimestrale"],
            "other": by_title["Contract summary"]}


def marker(record_id, demo):
    from modules.documents import Document

    return Document.get_by_id(record_id).title
