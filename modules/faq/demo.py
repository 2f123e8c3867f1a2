"""Demo FAQ: a few articles in Italian and English, and two restricted to one company each."""
from __future__ import annotations

from crm_portal.api import DemoContext

from .models import Article, ArticleCompany, Category

#: key, English and Italian label.
CATEGORIES = [("account", "Account and access", "Account e accesso"), ("printing", "Printing", "Stampa"),
              ("email", "Email", "Posta elettronica"), ("network", "Network and VPN", "Rete e VPN")]

#: category, language, title, Markdown body.
ARTICLES = [
    ("account", "it", "Come reimposto la password del portale?",
     ("Dalla pagina di accesso scegli **Password dimenticata** e segui il link che ricevi via email.\n\n"
      "Il link vale un'ora.")),
    ("account", "en", "How do I reset my portal password?",
     ("On the login page choose **Forgot password** and follow the link we email you.\n\n"
      "The link is valid for one hour.")),
    ("printing", "it", "La stampante di rete non stampa",
     ("1. Verifica che la stampante sia accesa e collegata alla rete.\n"
      "2. Riavvia lo spooler di stampa.\n3. Se la stampante mostra un errore, apri un ticket.")),
    ("printing", "en", "The network printer does not print",
     ("1. Check the printer is on and connected to the network.\n2. Restart the print spooler.\n"
      "3. If the printer shows an error, open a ticket.")),
    ("email", "it", "Configurare la posta sul telefono",
     "Usa l'app Outlook e accedi con l'indirizzo aziendale. Per Android e iPhone la procedura è la stessa."),
    ("email", "en", "Set up email on your phone",
     "Use the Outlook app and sign in with your work address. The steps are the same on Android and iPhone."),
    ("network", "it", "Connettersi alla VPN aziendale",
     "Installa il client VPN indicato nella [guida](https://example.com/vpn) e usa le credenziali di dominio."),
]


def load(ctx: DemoContext) -> None:
    """Create the demo categories and articles (indexed as they are saved)."""
    cats = {key: Category.create(label_en=en, label_it=it, position=n)
            for n, (key, en, it) in enumerate(CATEGORIES)}
    for n, (cat, language, title, body) in enumerate(ARTICLES):
        Article.create(category=cats[cat], language=language, title=title, body=body, position=n)
    restricted = Article.create(category=cats["network"], language="it", public=False,
                                title="Accesso remoto al gestionale Acme",
                                body="Per Acme il gestionale è raggiungibile solo tramite VPN: "
                                     "usa il profilo **ACME-GES**.")
    ArticleCompany.create(article=restricted, company=ctx.companies["acme"])
    globex = Article.create(category=cats["email"], language="en", public=False,
                            title="Globex shared mailboxes",
                            body="Shared mailboxes for Globex appear automatically in Outlook.")
    ArticleCompany.create(article=globex, company=ctx.companies["globex"])
