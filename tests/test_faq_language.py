"""FAQ search in Italian and English: Snowball stemming and stop words on SQLite and PostgreSQL
alike, articles of the other language ranked after the user's own, suggestions without stop
words, visibility unchanged, and the migration step that rebuilds an older index."""
from __future__ import annotations

import pytest
from conftest import login
from test_faq import load_corpus

from crm_portal.api import is_postgres
from crm_portal.db import db
from crm_portal.modules.faq import Article
from crm_portal.modules.faq import search as fts
from crm_portal.modules.faq.models import ArticleCompany

CORPUS = [
    ("it", "Configurare la stampante di rete",
     "La stampante di rete va configurata dal pannello di controllo."),
    ("it", "La stampa dei cedolini si blocca", "Se la stampa si ferma, riavvia la procedura paghe."),
    ("it", "Registrare una nota di credito", "Nella contabilità la nota di credito si registra con la causale NC."),
    ("it", "Ferie e permessi", "Come chiedere ferie dal portale del personale."),
    ("en", "Printer setup", "Connect the printers to the network, configure the driver and print a test page."),
    ("en", "Payroll reports", "Cost centres in payroll reports are configured by support."),
    ("en", "Holiday requests", "How to request holidays."),
]


@pytest.fixture
def corpus(app):
    return load_corpus(app, CORPUS)


def _found(text, language, corpus, **options):
    names = {v: k for k, v in corpus.items()}
    return [names[article_id] for article_id, _ in fts.search(text, language, **options)]


def test_italian_stems_and_stop_words():
    assert fts.analyse("Le stampanti non stampano", "it") == ["stampant", "stamp"]
    assert fts.analyse("configurazione configurare configurata", "it") == ["configur"] * 3
    assert fts.analyse("Contabilità", "it") == ["contabil"]
    assert fts.analyse("la di che per", "it") == []
    assert fts.analyse("The printers are not printing", "en") == ["printer", "print"]


@pytest.mark.parametrize("typed, expected", [
    ("stampanti", ["Configurare la stampante di rete"]),
    ("stampare", ["La stampa dei cedolini si blocca"]),
    ("configurazione", ["Configurare la stampante di rete"]),
    ("configurate le stampanti", ["Configurare la stampante di rete"]),
    ("contabilita", ["Registrare una nota di credito"]),   # typed without the accent
    ("registrazione note", ["Registrare una nota di credito"]),
    ("cedolino", ["La stampa dei cedolini si blocca"]),
])
def test_italian_word_forms_find_the_article(app, corpus, typed, expected):
    with app.app_context(), db.connection_context():
        assert _found(typed, "it", corpus) == expected


@pytest.mark.parametrize("typed, expected", [
    ("printing", ["Printer setup"]),
    ("configuring printers", ["Printer setup"]),
    ("configuration", ["Printer setup", "Payroll reports"]),
    ("holiday request", ["Holiday requests"]),
])
def test_english_word_forms_find_the_article(app, corpus, typed, expected):
    with app.app_context(), db.connection_context():
        assert sorted(_found(typed, "en", corpus)) == sorted(expected)


def test_the_title_outranks_the_body(app, corpus):
    with app.app_context(), db.connection_context():
        assert _found("stampante", "it", corpus) == ["Configurare la stampante di rete"]
        assert _found("stampa", "it", corpus) == ["La stampa dei cedolini si blocca"]
        assert _found("payroll", "en", corpus) == ["Payroll reports"]


def test_stop_words_alone_find_nothing(app, corpus):
    with app.app_context(), db.connection_context():
        assert fts.search("la di", "it", any_word=True, prefix=True) == []
        assert fts.search("the and", "en", any_word=True) == []


def test_other_language_ranks_after_the_users_own(app, corpus):
    with app.app_context(), db.connection_context():
        found = fts.search_languages("printers", "it")
        assert [language for _, language in found] == ["en"]  # nothing in Italian, the English one still
        found = fts.search_languages("ferie holidays", "it", any_word=True)
        names = {v: k for k, v in corpus.items()}
        assert [names[i] for i, _ in found] == ["Ferie e permessi", "Holiday requests"]
        found = fts.search_languages("ferie holidays", "en", any_word=True)
        assert [names[i] for i, _ in found] == ["Holiday requests", "Ferie e permessi"]


def test_search_page_lists_the_other_language_after(app, demo, client):
    login(client, "bruno@acme.example")  # Italian
    page = client.get("/faq/search", query_string={"q": "password"})
    italian = [page.text.index(t) for t in ("Come reimposto la password del portale?",
                                            "La password del gestionale è scaduta")]
    english = [page.text.index(t) for t in ("How do I reset my portal password?",
                                            "My business software password has expired")]
    assert max(italian) < min(english)
    assert page.text.count('data-testid="other-language"') == len(english)


def test_suggestions_ignore_stop_words(app, demo, client):
    login(client, "anna@acme.example")
    assert client.get("/faq/suggest", query_string={"q": "la "}).get_json()["results"] == []
    def suggested(q):
        return [r["title"] for r in client.get("/faq/suggest", query_string={"q": q}).get_json()["results"]]

    # "la" adds nothing: the articles about printers, and only those, as for "stampante" alone.
    assert suggested("la stampante") == suggested("stampante") != []
    assert suggested("la stampante non stampa") == suggested("stampante stampa")
    titles = [r["title"] for r in client.get("/faq/suggest", query_string={"q": "come la"}).get_json()["results"]]
    assert titles == []


def test_suggestions_find_word_forms_and_prefixes(app, demo, client):
    login(client, "anna@acme.example")
    titles = [r["title"] for r in client.get("/faq/suggest", query_string={"q": "stampanti"}).get_json()["results"]]
    assert titles[0] == "La stampante di rete non stampa"
    titles = [r["title"] for r in client.get("/faq/suggest", query_string={"q": "cedolino non si stamp"})
              .get_json()["results"]]
    assert titles and titles[0] != "How do I reset my portal password?"


def test_visibility_is_unchanged_across_languages(app, demo, client):
    login(client, "anna@acme.example")  # Italian, Acme: the Globex article (English) stays hidden
    data = client.get("/faq/suggest", query_string={"q": "shared mailboxes"}).get_json()
    assert "Globex shared mailboxes" not in [r["title"] for r in data["results"]]
    page = client.get("/faq/search", query_string={"q": "mailboxes"})
    assert "Globex shared mailboxes" not in page.text
    assert "Accesso remoto al gestionale Acme" in client.get("/faq/search", query_string={"q": "gestionale"}).text
    client.post("/logout")
    login(client, "carla@globex.example")  # English, Globex: the Acme article (Italian) stays hidden
    page = client.get("/faq/search", query_string={"q": "gestionale accesso remoto"})
    assert "Accesso remoto al gestionale Acme" not in page.text
    assert "Globex shared mailboxes" in client.get("/faq/search", query_string={"q": "mailbox"}).text
    with app.app_context(), db.connection_context():
        restricted = Article.get(Article.title == "Globex shared mailboxes")
        ArticleCompany.delete().where(ArticleCompany.article == restricted.id).execute()
    assert "Globex shared mailboxes" not in client.get("/faq/search", query_string={"q": "mailbox"}).text


def test_search_runs_a_constant_number_of_queries(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/faq/search", query_string={"q": "password"})  # fills the process's caches
    with queries:
        client.get("/faq/search", query_string={"q": "password"})
    few = queries.count
    with app.app_context(), db.connection_context():
        for n in range(20):
            Article.create(language="it" if n % 2 else "en", title=f"Password {n}", body="password")
    with queries:
        page = client.get("/faq/search", query_string={"q": "password"})
    assert "Password 19" in page.text and "Password 18" in page.text
    assert queries.count == few


def test_migration_rebuilds_an_older_index(app, corpus):
    """A database indexed before stemming (raw text; on SQLite with the Porter tokenizer) is
    rebuilt by the step: Italian word forms are found afterwards."""
    from playhouse.migrate import SchemaMigrator, migrate

    from crm_portal.modules.faq.migrations import MIGRATIONS

    with app.app_context(), db.connection_context():
        table = fts.TABLE
        with db.atomic():
            if is_postgres():
                db.execute_sql(f"UPDATE {table} SET document = to_tsvector('simple', 'stampante')")
            else:
                db.execute_sql(f"DROP TABLE {table}")
                db.execute_sql(f"CREATE VIRTUAL TABLE {table} USING fts5(title, body, language UNINDEXED, "
                               "tokenize = 'porter unicode61 remove_diacritics 2')")
                for article in Article.select():
                    db.execute_sql(f"INSERT INTO {table} (rowid, title, body, language) VALUES (?, ?, ?, ?)",
                                   (article.id, article.title, article.body, article.language))
        assert _found("configurazione", "it", corpus) == []
        step = next(m for m in MIGRATIONS if m.name == "0001_stemmed_search")
        with db.atomic():
            migrate(*step.apply(SchemaMigrator.from_database(db.obj)))
        assert _found("configurazione", "it", corpus) == ["Configurare la stampante di rete"]
        assert _found("printing", "en", corpus) == ["Printer setup"]
        if not is_postgres():
            sql = db.execute_sql("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            assert "porter" not in sql
