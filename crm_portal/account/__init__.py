"""Accounts: my data, password change and reset, invitations, self-registration (blueprint ``account``).

Routes: ``/me`` (``account.me``), ``/me/password``, ``/me/request``, ``/forgot-password``,
``/reset-password/<token>``, ``/invitation/<token>``, ``/register`` and ``/register/confirm/<token>``
(only with ``SELF_REGISTRATION``). Its Italian strings live in ``account/translations``.
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask

TRANSLATIONS = Path(__file__).parent / "translations"


def compile_translations() -> None:
    """Compile the catalogue's ``.mo`` files when missing or older than the ``.po`` (tests, dev)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as f:
            catalog = read_po(f)
        with mo.open("wb") as f:
            write_mo(f, catalog)


def init_app(app: Flask) -> None:
    from ..i18n import add_translation_directory
    from .session_views import bp as sessions_bp
    from .views import bp

    app.register_blueprint(bp)
    app.register_blueprint(sessions_bp)
    add_translation_directory(app, TRANSLATIONS)
