"""Demo folders and documents, with real files (PDF, CSV, text)."""
from __future__ import annotations

import datetime as dt
import io

from werkzeug.datastructures import FileStorage

from crm_portal.api import DemoContext, save_upload

from .models import AREA, Document, Folder

FOLDERS = [("manuals", "Manuals", "Manuali"), ("contracts", "Contracts", "Contratti"),
           ("reports", "Reports", "Rapporti di intervento"), ("howto", "How-tos", "Guide rapide")]
#: folder, title, public, company, contact, product code, file name
DOCUMENTS = [
    ("manuals", "Manuale utente del gestionale", True, None, None, "GES-USR", "manuale-gestionale.pdf"),
    ("howto", "Come configurare la VPN", True, None, None, "FW-200", "guida-vpn.txt"),
    ("contracts", "Contratto di assistenza 2025", False, "acme", None, None, "contratto-acme-2025.pdf"),
    ("reports", "Rapporto intervento server", False, "acme", "bruno", None, "rapporto-bruno.pdf"),
    ("reports", "Verifica backup trimestrale", False, "acme", "anna", "BCK-1T", "backup-anna.csv"),
    ("contracts", "Contract summary", False, "globex", "carla", None, "globex-contract.pdf"),
    ("reports", "Intervento Initech", False, "initech", "elena", None, "initech.txt"),
]


def load(ctx: DemoContext) -> None:
    """Create the demo folders and documents, their files stored like uploads."""
    folders = {key: Folder.create(label_en=en, label_it=it, position=n) for n, (key, en, it) in enumerate(FOLDERS)}
    year = dt.date.today().year
    c, co = ctx.contacts, ctx.companies
    for folder, title, public, company, contact, code, filename in DOCUMENTS:
        data = _demo_file(title, filename)
        stored = save_upload(FileStorage(stream=io.BytesIO(data), filename=filename), AREA)
        Document.create(folder=folders[folder], title=title, public=public,
                        company=co[company] if company else None, contact=c[contact] if contact else None,
                        product_code=code, description=f"{title} ({year}).",
                        stored_name=stored.stored_name, original_name=stored.original_name, size=stored.size,
                        mimetype=stored.mimetype, kind=stored.kind, download_count=ctx.rng.randint(0, 12))


def _demo_file(title: str, filename: str) -> bytes:
    if filename.endswith(".pdf"):
        from fpdf import FPDF  # only the demo needs it

        pdf = FPDF()
        pdf.add_page()
        pdf.set_font("Helvetica", size=14)
        pdf.cell(0, 10, title.encode("latin-1", "replace").decode("latin-1"))
        return bytes(pdf.output())
    if filename.endswith(".csv"):
        return b"data;esito\n2025-01-15;ok\n2025-04-15;ok\n"
    return f"{title}\n\nDocumento dimostrativo.\n".encode()
