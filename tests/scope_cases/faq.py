from crm_portal.testing import Route

MODULE = "faq"

# Articles are public or restricted to companies, not to contacts: "own" and "colleague" are two
# articles restricted to bruno's company, "other" one restricted to another company.
EXPECTED = {
    "own": {"own": True, "colleague": True, "other": False},
    "company": {"own": True, "colleague": True, "other": False},
}



def _vote_recorded(response, record_id):
    from crm_portal.models import Contact
    from crm_portal.modules.faq.models import Feedback

    bruno = Contact.get(Contact.email == "bruno@acme.example")
    vote = Feedback.get((Feedback.article == record_id) & (Feedback.contact == bruno))
    assert vote.helpful is True


ROUTES = [Route("POST", "/faq/{id}/feedback", 302, {"helpful": "1"}, check=_vote_recorded)]


def records(demo):
    from crm_portal.modules.faq import Article
    from crm_portal.modules.faq.models import ArticleCompany

    own = Article.get(Article.title == "Accesso remoto al gestionale Acme")
    colleague = Article.create(title="Stampanti della sede Acme", body="Solo per Acme.", public=False,
                               language="it")
    ArticleCompany.create(article=colleague, company=demo["companies"]["acme"])
    other = Article.get(Article.title == "Globex shared mailboxes")
    return {"own": own.id, "colleague": colleague.id, "other": other.id}


def marker(record_id, demo):
    from crm_portal.modules.faq import Article

    return Article.get_by_id(record_id).title


def content(record_id, demo):
    """The body's opening words, before any markdown markup (the heading shows the title)."""
    import re

    from crm_portal.modules.faq import Article

    return re.split(r"[*_`\[]", Article.get_by_id(record_id).body)[0].strip()
