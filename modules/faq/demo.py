"""Demo FAQ: a few articles in Italian and English, and two restricted to one company each."""
from __future__ import annotations

from crm_portal.api import DemoContext

from .models import Article, ArticleCompany, Category

#: key, English and Italian label.
CATEGORIES = [("account", "Account and access", "Account e accesso"), ("printing", "Printing", "Stampa"),
              ("email", "Email", "Posta elettronica"), ("network", "Network and VPN", "Rete e VPN"),
              ("payroll", "Payroll and attendance", "Paghe e presenze"), ("accounting", "Accounting", "Contabilità"),
              ("software", "Business software and PCs", "Gestionale e postazioni"),
              ("contract", "Contract and support", "Contratto e assistenza")]

#: category, language, title, Markdown body. The topics follow the demo tickets (payroll,
#: accounting, attendance, installation, contract, passwords) and are written in both languages.
ARTICLES = [
    ("account", "it", "Come reimposto la password del portale?",
     ("Dalla pagina di accesso scegli **Password dimenticata** e segui il link che ricevi via email.\n\n"
      "Il link vale un'ora.")),
    ("account", "en", "How do I reset my portal password?",
     ("On the login page choose **Forgot password** and follow the link we email you.\n\n"
      "The link is valid for one hour.")),
    ("account", "it", "La password del gestionale è scaduta",
     ("Le password del dominio scadono ogni 90 giorni. Alla scadenza il sistema chiede di sceglierne una "
      "nuova; se l'accesso è bloccato apri un ticket e la reimpostiamo noi.")),
    ("account", "en", "My business software password has expired",
     ("Domain passwords expire every 90 days. When yours expires you are asked to choose a new one; "
      "if access is locked, open a ticket and we reset it for you.")),
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
    ("network", "en", "Connect to the company VPN",
     "Install the VPN client named in the [guide](https://example.com/vpn) and sign in with your domain account."),
    ("payroll", "it", "I cedolini non si stampano: \"modello non trovato\"",
     ("Se la stampa dei cedolini si interrompe con *modello non trovato*, il modello di stampa del mese "
      "non è stato installato con l'aggiornamento delle paghe.\n\n"
      "1. Da **Paghe → Utilità** scegli *Reinstalla modelli di stampa*.\n"
      "2. Ristampa i cedolini del mese.\n3. Se l'errore resta, apri un ticket indicando la versione.")),
    ("payroll", "en", "Payslips do not print: \"template not found\"",
     ("If printing payslips stops with *template not found*, the month's print template was not installed "
      "with the payroll update.\n\n1. In **Payroll → Utilities** choose *Reinstall print templates*.\n"
      "2. Print the month's payslips again.\n3. If the error remains, open a ticket with the version.")),
    ("payroll", "it", "Aggiungere un centro di costo alle paghe",
     ("I centri di costo si creano da **Paghe → Tabelle → Centri di costo** e si assegnano ai dipendenti; "
      "i riepiloghi e i cedolini li riportano dal mese successivo.")),
    ("payroll", "en", "Add a cost centre to payroll",
     ("Create cost centres in **Payroll → Tables → Cost centres** and assign them to employees; payroll "
      "reports and payslips show them from the following month.")),
    ("payroll", "it", "Esportare le presenze per il consulente del lavoro",
     ("Da **Presenze → Stampe ed export** scegli il mese e il tracciato del consulente (CSV o TXT) e "
      "salva il file. Timbrature doppie vanno corrette prima dell'export.")),
    ("payroll", "en", "Export attendance for the payroll consultant",
     ("In **Attendance → Reports and exports** choose the month and the consultant's layout (CSV or TXT) "
      "and save the file. Duplicate clock-ins must be fixed before exporting.")),
    ("payroll", "it", "Timbrature doppie in entrata",
     ("Due timbrature uguali a pochi secondi di distanza arrivano di solito da due terminali attivi sullo "
      "stesso ingresso: disattiva quello in più e ricalcola il mese.")),
    ("payroll", "en", "Duplicate clock-ins",
     ("Two identical clock-ins a few seconds apart usually come from two terminals active at the same "
      "entrance: switch off the extra one and recalculate the month.")),
    ("accounting", "it", "Registrare una nota di credito di un fornitore",
     ("Usa la causale **NC fornitore**; per un esercizio chiuso registra la nota nell'esercizio aperto "
      "con data documento originale. Per un fornitore estero UE usa la causale *NC intracomunitaria*.")),
    ("accounting", "en", "Record a supplier credit note",
     ("Use the **Supplier credit note** reason; for a closed financial year record it in the open year "
      "with the original document date. For an EU supplier use the *intra-EU credit note* reason.")),
    ("accounting", "it", "La liquidazione IVA non corrisponde al registro",
     ("Ricalcola i progressivi IVA da **Contabilità → Utilità → Ricostruzione progressivi** e controlla "
      "che non ci siano protocolli duplicati. Se la differenza resta, apri un ticket.")),
    ("accounting", "en", "The VAT settlement does not match the register",
     ("Rebuild the VAT totals from **Accounting → Utilities → Rebuild totals** and check for duplicate "
      "record numbers. If the difference remains, open a ticket.")),
    ("accounting", "it", "Chiusura e riapertura dei conti",
     ("L'ordine corretto: scritture di assestamento, stampa del bilancio di verifica, chiusura dei "
      "conti, riapertura nel nuovo esercizio.")),
    ("accounting", "en", "Closing and reopening the accounts at year end",
     ("The right order: adjusting entries, trial balance, closing the accounts, reopening them in the "
      "new financial year.")),
    ("accounting", "it", "Importare l'estratto conto bancario (CBI)",
     ("Per la riconciliazione bancaria importa il file CBI da **Contabilità → Banche → Importa**. "
      "L'errore *record 61 non valido* indica un file di un formato non aggiornato: riscaricalo dalla banca.")),
    ("accounting", "en", "Importing bank statements (CBI) for reconciliation",
     ("For bank reconciliation import the CBI file from **Accounting → Banks → Import**. The error "
      "*invalid record 61* means the file has an outdated layout: download it again from your bank.")),
    ("accounting", "it", "Le ritenute d'acconto non compaiono nel 770",
     ("Le fatture dei professionisti devono essere registrate con una causale che gestisce la ritenuta "
      "e il pagamento deve essere registrato: solo le ritenute pagate entrano nel 770.")),
    ("accounting", "en", "Withholding taxes missing from form 770",
     ("Professionals' invoices must be recorded with a reason that handles withholding tax, and their "
      "payment must be recorded: only withholdings paid appear in form 770.")),
    ("software", "it", "Installare il gestionale su un nuovo PC",
     ("Apri un ticket indicando il nome del PC e l'utente: pianifichiamo l'installazione da remoto e "
      "configuriamo stampanti e collegamenti al server.")),
    ("software", "en", "Install the business software on a new PC",
     ("Open a ticket with the PC's name and the user: we plan a remote installation and set up printers "
      "and server connections.")),
    ("contract", "it", "Quando scade il contratto di assistenza?",
     ("Le date di rinnovo del contratto e le ore residue sono nel portale, in **Servizi a contratto** e "
      "**Scadenze**. Per il rinnovo contatta l'amministrazione.")),
    ("contract", "en", "When does our support contract expire?",
     ("Renewal dates and the hours left are in the portal, under **Contracted services** and "
      "**Deadlines**. For the renewal please contact our accounts department.")),
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
