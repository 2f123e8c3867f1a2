MODULE = "faq"

# Articles are public or restricted to companies, not to contacts: "own" and "colleague" are two
# articles restricted to bruno's company, "other" one restricted to another company.
EXPECTED = {
    "own": {"own": True, "colleague": True, "other": False},
    "company": {"own": True, "colleague": True, "other": False},
}

ROUTES = [("POST", "/faq/{id}/feedback", {"helpful": "1"})]


def records(demo):
    from modules.faq import Article
    from modules.faq.models import ArticleCompany

    own = Article.get(Article.title == "Accesso remoto al gestionale Acme")
    colleague = Article.create(title="Stampanti della sede Acme", body="Solo per Acme.", public=False,
                               language="it")
    ArticleCompany.create(article=colleague, company=demo["companies"]["acme"])
    other = Article.get(Article.title == "Globex shared mailboxes")
    return {"own": own.id, "colleague": colleague.id, "other": other.id}


def marker(record_id, demo):
    from modules.faq import Article

    return Article.get_by_id(record_id).title
