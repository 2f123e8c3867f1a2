"""Queueing email: render it in the recipient's language and store it in the outbox.

Call :func:`queue_email` inside the transaction that makes the change the email is about: the
message exists if and only if the change does. A background worker delivers it.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, render_template, url_for
from flask_babel import force_locale
from jinja2 import TemplateNotFound

from .models import OutboxMessage


def _language(language: str | None) -> str:
    languages = current_app.config["LANGUAGES"]
    return language if language in languages else current_app.config["BABEL_DEFAULT_LOCALE"]


def render_email(template: str, language: str | None, **context: Any) -> tuple[str, str, str | None]:
    """Subject, plain text and HTML (or ``None``) of ``email/<template>.*`` in ``language``.

    Themes override these templates like any other. Every template is autoescaped except the
    ``.txt`` ones, which are plain text by nature.
    """
    with force_locale(_language(language)):
        subject = render_template(f"email/{template}.subject.txt", **context).strip()
        text = render_template(f"email/{template}.txt", **context)
        try:
            html = render_template(f"email/{template}.html", **context)
        except TemplateNotFound:
            html = None
    return " ".join(subject.split())[:300], text, html


def queue_email(to: str, template: str, *, language: str | None = None, **context: Any) -> OutboxMessage:
    """Render ``template`` for ``to`` in ``language`` and store it in the outbox (extension point)."""
    subject, text, html = render_email(template, language, **context)
    return OutboxMessage.create(to_address=to, template=template, language=_language(language),
                                subject=subject, body_text=text, body_html=html)


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute link for an email (``SERVER_NAME``/``PREFERRED_URL_SCHEME`` or the current request)."""
    return url_for(endpoint, _external=True, **values)
