"""FAQ: full-text search (ranking, both languages, hostile syntax), suggestions, markdown, feedback."""
from __future__ import annotations

import pytest
from conftest import login, staff_login

from crm_portal.db import db
from crm_portal.modules.faq import Article, Feedback
from crm_portal.modules.faq import search as fts
from crm_portal.modules.faq.models import ArticleCompany, ArticleDocument, Category
from crm_portal.modules.faq.views import render_markdown

CORPUS = [
    ("it", "Configurare la stampante di rete",
     "La stampante di rete va configurata dal pannello. Se la stampante non risponde, riavvia la stampante."),
    ("it", "Reimpostare la password", "Per la password usa il link. Non serve chiamare per la stampante."),
    ("it", "Ferie e permessi", "Come chiedere ferie dal portale del personale."),
    ("en", "Printer setup", "Connect the printer to the network. If the printer is offline, restart the printer."),
    ("en", "Reset your password", "Use the password reset link; printers are not involved."),
    ("en", "Holiday requests", "How to request holidays."),
]


def load_corpus(app, corpus) -> dict[str, int]:
    """Replace every article with ``corpus`` ((language, title, body) …): {title: id}."""
    with app.app_context(), db.connection_context():
        Article.delete().execute()
        fts.reindex_all()
        return {title: Article.create(language=language, title=title, body=body).id
                for language, title, body in corpus}


@pytest.fixture
def corpus(app):
    return load_corpus(app, CORPUS)


def _titles(results, ids):
    names = {v: k for k, v in ids.items()}
    return [names[article_id] for article_id, _ in results]


def test_ranking_in_italian(app, corpus):
    with app.app_context(), db.connection_context():
        results = fts.search("stampante", "it")
        assert _titles(results, corpus) == ["Configurare la stampante di rete", "Reimpostare la password"]
        assert results[0][1] > results[1][1]
        assert _titles(fts.search("password", "it"), corpus) == ["Reimpostare la password"]
        assert fts.search("printer", "it") == []  # English words are not searched in Italian articles


def test_ranking_in_english_with_stemming(app, corpus):
    with app.app_context(), db.connection_context():
        assert _titles(fts.search("printer", "en"), corpus) == ["Printer setup", "Reset your password"]
        assert _titles(fts.search("printers", "en"), corpus)[0] == "Printer setup"
        assert _titles(fts.search("password reset", "en"), corpus) == ["Reset your password"]
        assert _titles(fts.search("holiday request", "en"), corpus) == ["Holiday requests"]


def test_any_word_and_prefix(app, corpus):
    with app.app_context(), db.connection_context():
        assert fts.search("password ferie", "it") == []
        both = _titles(fts.search("password ferie", "it", any_word=True), corpus)
        assert set(both) == {"Reimpostare la password", "Ferie e permessi"}
        assert _titles(fts.search("stamp", "it", prefix=True), corpus)[0] == "Configurare la stampante di rete"


@pytest.mark.parametrize("hostile", ['"', '"stampante', "*", "stamp*", "NEAR(a b)", "(((", ")", "a AND OR NOT",
                                     "'; DROP TABLE faq_article; --", "title:password", "^x", "-", "{}[]",
                                     "stampante NEAR/2 rete", "é" * 300, "\x00", "a:* & !"])
def test_query_syntax_is_plain_text(app, demo, corpus, client, hostile):
    with app.app_context(), db.connection_context():
        fts.search(hostile, "it")
        fts.search(hostile, "en", any_word=True, prefix=True)
    login(client, "anna@acme.example")
    assert client.get("/faq/search", query_string={"q": hostile}).status_code == 200
    assert client.get("/faq/suggest", query_string={"q": hostile}).status_code == 200


def test_syntax_words_are_searchable(app, client):
    with app.app_context(), db.connection_context():
        article = Article.create(language="en", title="The NEAR operator", body="Use NEAR and OR carefully")
        assert [a for a, _ in fts.search("near or", "en")] == [article.id]


def test_search_page_is_scoped_and_ranked(app, demo, client):
    login(client, "bruno@acme.example")
    page = client.get("/faq/search?q=vpn&lang=it")
    assert page.status_code == 200
    assert "Connettersi alla VPN aziendale" in page.text
    assert "Accesso remoto al gestionale Acme" in page.text  # restricted to acme
    client.post("/logout")
    login(client, "carla@globex.example")
    page = client.get("/faq/search?q=vpn&lang=it")
    assert "Connettersi alla VPN aziendale" in page.text
    assert "Accesso remoto al gestionale Acme" not in page.text


def test_suggest_endpoint(app, demo, client):
    assert client.get("/faq/suggest?q=password").status_code in (302, 401)  # login required
    login(client, "carla@globex.example")  # English
    data = client.get("/faq/suggest?q=passw").get_json()
    assert data["language"] == "en"
    # Her language first, then the Italian articles on the same topic.
    titles = [r["title"] for r in data["results"]]
    assert set(titles[:2]) == {"How do I reset my portal password?", "My business software password has expired"}
    assert set(titles[2:]) == {"Come reimposto la password del portale?", "La password del gestionale è scaduta"}
    assert [r["language"] for r in data["results"]] == ["en", "en", "it", "it"]
    assert data["results"][0]["url"].startswith("/faq/")
    assert client.get("/faq/suggest?q=pa").get_json()["results"] == []  # too short
    data = client.get("/faq/suggest?q=shared mailboxes").get_json()
    assert "Globex shared mailboxes" in [r["title"] for r in data["results"]]
    client.post("/logout")
    login(client, "anna@acme.example")
    data = client.get("/faq/suggest?q=shared mailboxes&lang=en").get_json()
    assert "Globex shared mailboxes" not in [r["title"] for r in data["results"]]
    data = client.get("/faq/suggest?q=la stampante non stampa").get_json()
    assert data["results"][0]["title"] == "La stampante di rete non stampa"


def test_unpublished_articles_are_hidden(app, demo, client):
    with app.app_context(), db.connection_context():
        article = Article.get(Article.title == "Configurare la posta sul telefono")
        article.published = False
        article.save()
    login(client, "anna@acme.example")
    assert client.get(f"/faq/{article.id}").status_code == 404
    assert client.get("/faq/suggest?q=posta telefono").get_json()["results"] == []


def test_index_follows_edits_and_deletes(app, corpus):
    with app.app_context(), db.connection_context():
        article = Article.get_by_id(corpus["Ferie e permessi"])
        article.title = "Malattia"
        article.body = "Come comunicare la malattia."
        article.save()
        assert fts.search("ferie", "it") == []
        assert [a for a, _ in fts.search("malattia", "it")] == [article.id]
        article.delete_instance()
        assert fts.search("malattia", "it") == []


def test_markdown_is_rendered_and_sanitised():
    html = render_markdown("**bold** <script>alert(1)</script> [x](javascript:alert(1)) "
                           "<img src=x onerror=alert(1)> [ok](https://example.com)")
    assert "<strong>bold</strong>" in html
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_detail_renders_markdown_and_documents(app, demo, client):
    from crm_portal.modules.documents import Document

    with app.app_context(), db.connection_context():
        article = Article.get(Article.title == "Connettersi alla VPN aziendale")
        doc = Document.get(Document.title == "Come configurare la VPN")
        ArticleDocument.create(article=article, document_id=doc.id, title="Guida VPN")
    login(client, "bruno@acme.example")
    page = client.get(f"/faq/{article.id}")
    assert 'href="https://example.com/vpn"' in page.text
    assert f'href="/documents/{doc.id}"' in page.text and "Guida VPN" in page.text


def test_feedback_one_vote_per_user(app, demo, client):
    login(client, "bruno@acme.example")
    with app.app_context(), db.connection_context():
        article = Article.get(Article.title == "Come reimposto la password del portale?")
    assert client.post(f"/faq/{article.id}/feedback", data={"helpful": "1"}).status_code == 302
    assert client.post(f"/faq/{article.id}/feedback", data={"helpful": "1"}).status_code == 302
    assert client.post(f"/faq/{article.id}/feedback", data={"helpful": "0"}).status_code == 302
    with app.app_context(), db.connection_context():
        votes = list(Feedback.select().where(Feedback.article == article.id))
        assert len(votes) == 1 and votes[0].helpful is False
    assert 'data-testid="voted"' in client.get(f"/faq/{article.id}").text
    assert client.post(f"/faq/{article.id}/feedback", data={"helpful": "maybe"}).status_code == 303
    client.post("/logout")
    login(client, "anna@acme.example")
    client.post(f"/faq/{article.id}/feedback", data={"helpful": "1"})
    with app.app_context(), db.connection_context():
        assert Feedback.select().where(Feedback.article == article.id).count() == 2


def test_browse_by_category(app, demo, client):
    login(client, "carla@globex.example")
    page = client.get("/faq/browse?lang=en")
    assert page.status_code == 200
    assert "Printing" in page.text and "The network printer does not print" in page.text
    assert "La stampante di rete non stampa" not in page.text
    assert "Globex shared mailboxes" in page.text and "Accesso remoto" not in page.text


def test_list_query_count_is_constant(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/faq/?per_page=100")  # the first request fills the process's caches (profiles)
    with queries:
        client.get("/faq/?per_page=100")
    few = queries.count
    with app.app_context(), db.connection_context():
        category = Category.select().first()
        for n in range(30):
            Article.create(category=category, language="it", title=f"Extra {n}", body="x")
    with queries:
        page = client.get("/faq/?per_page=100")
    assert "Extra 29" in page.text
    assert queries.count == few


def test_admin_crud_keeps_index(app, demo, client):
    staff_login(client)
    acme = demo["companies"]["acme"]
    form = {"category": "__None", "language": "en", "title": "Scanner drivers", "body": "Install the *scanner* driver.",
            "public": "", "published": "y", "position": "0",
            "company_links-0-id": "", "company_links-0-company": str(acme.id)}
    assert client.post("/admin/faq_article/new/", data=form).status_code == 302
    with app.app_context(), db.connection_context():
        article = Article.get(Article.title == "Scanner drivers")
        assert [a for a, _ in fts.search("scanner", "en")] == [article.id]
        assert ArticleCompany.select().where(ArticleCompany.article == article.id).count() == 1
        link_id = ArticleCompany.get(ArticleCompany.article == article.id).id
    form.update({"title": "Scanner and copier drivers", "company_links-0-id": str(link_id)})
    assert client.post(f"/admin/faq_article/edit/?id={article.id}", data=form).status_code == 302
    with app.app_context(), db.connection_context():
        assert [a for a, _ in fts.search("copier", "en")] == [article.id]
    assert client.post("/admin/faq_article/delete/", data={"id": str(article.id)}).status_code == 302
    with app.app_context(), db.connection_context():
        assert fts.search("scanner", "en") == []
    assert client.get("/admin/faq_category/").status_code == 200


def test_index_follows_the_model_signals_and_reindex_all_repairs_it(app, corpus):
    from playhouse.signals import post_delete, post_save

    from crm_portal.modules.faq import jobs

    with app.app_context(), db.connection_context():
        # The index is kept by receivers of the article's signals, not by the model's own methods.
        assert "save" not in Article.__dict__ and "delete_instance" not in Article.__dict__
        assert any(r is jobs.index_saved for _, r, _ in post_save._receiver_list)
        assert any(r is jobs.unindex_deleted for _, r, _ in post_delete._receiver_list)
        jobs.connect()  # a second application connects nothing twice
        assert sum(r is jobs.index_saved for _, r, _ in post_save._receiver_list) == 1
        # Bulk queries send no signal: the index is stale until rebuilt.
        Article.update(title="Vacanze estive").where(Article.id == corpus["Ferie e permessi"]).execute()
        assert fts.search("vacanze", "it") == []
        assert fts.reindex_all() == len(CORPUS)
        assert [a for a, _ in fts.search("vacanze", "it")] == [corpus["Ferie e permessi"]]
        assert fts.search("ferie", "it") != []  # the body still speaks of "ferie"


def test_save_stamps_updated_at(app, corpus):
    import datetime as dt

    with app.app_context(), db.connection_context():
        article = Article.get_by_id(corpus["Printer setup"])
        Article.update(updated_at=dt.datetime(2000, 1, 1)).where(Article.id == article.id).execute()
        article = Article.get_by_id(article.id)
        article.body = "Changed."
        article.save()
        assert Article.get_by_id(article.id).updated_at.year > 2000


def test_category_labels_follow_the_language(app):
    from flask_babel import force_locale

    with app.test_request_context(), db.connection_context():
        both = Category.create(label_en="Printing", label_it="Stampa")
        english_only = Category.create(label_en="Network")
        with force_locale("it"):
            assert (both.label, english_only.label) == ("Stampa", "Network")
        with force_locale("en"):
            assert (both.label, english_only.label) == ("Printing", "Network")
        assert str(both) == "Printing"


def test_detail_data_comes_from_the_view(app, demo, client, queries):
    from crm_portal.modules.documents import Document

    assert "faq_article_context" not in app.jinja_env.globals  # templates never query
    with app.app_context(), db.connection_context():
        article = Article.get(Article.title == "Connettersi alla VPN aziendale")
        doc = Document.get(Document.title == "Come configurare la VPN")
    login(client, "bruno@acme.example")
    client.get(f"/faq/{article.id}")  # the first request fills the process's caches (profiles, workflow)
    with queries:
        page = client.get(f"/faq/{article.id}")
    few = queries.count
    assert 'aria-pressed="true"' not in page.text
    with app.app_context(), db.connection_context():
        for n in range(5):
            ArticleDocument.create(article=article, document_id=doc.id, title=f"Guida {n}", position=n)
    client.post(f"/faq/{article.id}/feedback", data={"helpful": "1"})
    with queries:
        page = client.get(f"/faq/{article.id}")
    assert "Guida 4" in page.text and 'data-testid="voted"' in page.text
    assert page.text.count('aria-pressed="true"') == 1
    assert queries.count == few
