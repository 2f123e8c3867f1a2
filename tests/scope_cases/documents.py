from crm_portal.testing import Route

MODULE = "documents"


def _is_the_file(response, record_id):
    from crm_portal.modules.documents.models import Document

    document = Document.get_by_id(record_id)
    assert len(response.data) == document.size
    assert "attachment" in response.headers["Content-Disposition"]


ROUTES = [Route("GET", "/documents/{id}/download", 200, check=_is_the_file)]


def records(demo):
    from crm_portal.modules.documents.models import Document

    by_title = {d.title: d.id for d in Document.select()}
    return {"own": by_title["Rapporto intervento server"], "colleague": by_title["Verifica backup trimestrale"],
            "other": by_title["Contract summary"]}


def marker(record_id, demo):
    from crm_portal.modules.documents.models import Document

    return Document.get_by_id(record_id).title
