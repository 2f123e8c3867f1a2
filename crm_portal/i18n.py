"""Languages: the user's own, then the one picked on this browser, then the browser's, then the default."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app, has_request_context, request, session
from flask_babel import Babel, Domain, _get_current_context
from flask_login import current_user


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    user_lang = getattr(current_user, "language", None) if current_user else None
    if user_lang in languages:
        return user_lang
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]


def valid_timezone(name: str | None) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows ("Europe/Rome")."""
    if not name or not isinstance(name, str) or len(name) > 64:
        return False
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return True


def default_timezone() -> str:
    """The portal's zone: ``DEFAULT_TIMEZONE`` (``BABEL_DEFAULT_TIMEZONE`` for older settings)."""
    config = current_app.config
    return config.get("DEFAULT_TIMEZONE") or config.get("BABEL_DEFAULT_TIMEZONE") or "UTC"


def select_timezone() -> str:
    """The zone times are shown in: the staff member's own, else the portal's default."""
    if has_request_context():
        own = getattr(current_user, "timezone", None) if current_user else None
        if valid_timezone(own):
            return str(own)
    return default_timezone()


def human_size(size: int | float | None) -> str:
    """A file size for people, in the current language: "1,5 MB" in Italian, "1.5 MB" in English."""
    from babel.numbers import format_decimal
    from flask_babel import get_locale

    value = float(size or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    pattern = "#,##0" if unit == "B" else "#,##0.#"
    return f"{format_decimal(value, format=pattern, locale=get_locale() or 'en')} {unit}"


def format_money(value: Any, currency: str | None = "EUR") -> str:
    """An amount with its currency as people of the current language write it (Babel's
    ``format_currency``): "2.702,91 €" in Italian, "€2,702.91" in English. Emails render in the
    recipient's language, so they get the recipient's format."""
    from babel.numbers import format_currency
    from flask_babel import get_locale

    amount = Decimal(str(value if value is not None else 0))
    return format_currency(amount, currency or "EUR", locale=get_locale() or "en")


def add_translation_directory(app: Flask, folder: Path) -> None:
    """Merge a module's own catalogue (``<package>/translations``) into the host's."""
    if folder.is_dir():
        dirs = app.extensions["babel"].translation_directories
        if str(folder) not in dirs:
            dirs.append(str(folder))


class RequestDomain(Domain):
    """flask-babel's catalogue lookup, done once per request and language.

    flask-babel finds the catalogue again for every string it translates (the locale's name is
    rebuilt for its cache key each time): a list page translates a hundred strings. The one found
    is kept beside flask-babel's own per-request state, for the locale object it was found for,
    so :func:`flask_babel.force_locale` (emails in the recipient's language) still switches it."""

    def get_translations(self) -> Any:
        state = _get_current_context()
        if state is None:
            return super().get_translations()
        cached = getattr(state, "crm_translations", None)
        if cached is not None and cached[0] is getattr(state, "babel_locale", None) and cached[1] is self:
            return cached[2]
        translations = super().get_translations()  # resolves and keeps the request's locale
        state.crm_translations = (getattr(state, "babel_locale", None), self, translations)
        return translations


def _install_template_gettext(app: Flask) -> None:
    """Jinja's ``_``, ``gettext``, ``ngettext``, ``pgettext`` and ``npgettext``, as Jinja's
    "newstyle" gettext behaves (escaped when autoescaping, always %-formatted), but given only
    the evaluation context. Jinja's own take the whole context, which Jinja copies (every
    variable) for each call made inside a loop or a block that sets variables: a list page made
    hundreds of such copies."""
    from flask_babel import get_translations
    from jinja2 import pass_eval_context
    from markupsafe import Markup

    def finish(eval_ctx: Any, text: str, variables: dict[str, Any]) -> str:
        return (Markup(text) if eval_ctx.autoescape else text) % variables

    @pass_eval_context
    def gettext(eval_ctx: Any, string: str, **variables: Any) -> str:
        return finish(eval_ctx, get_translations().ugettext(string), variables)

    @pass_eval_context
    def ngettext(eval_ctx: Any, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        return finish(eval_ctx, get_translations().ungettext(singular, plural, num), variables)

    @pass_eval_context
    def pgettext(eval_ctx: Any, context: str, string: str, **variables: Any) -> str:
        variables.setdefault("context", context)
        return finish(eval_ctx, get_translations().upgettext(context, string), variables)

    @pass_eval_context
    def npgettext(eval_ctx: Any, context: str, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("context", context)
        variables.setdefault("num", num)
        return finish(eval_ctx, get_translations().unpgettext(context, singular, plural, num), variables)

    app.jinja_env.globals.update(_=gettext, gettext=gettext, ngettext=ngettext, pgettext=pgettext,
                                 npgettext=npgettext)


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(Path(__file__).parent / "translations"))
    # One Babel per application: its translation cache then holds exactly this app's catalogues.
    if not valid_timezone(app.config.get("DEFAULT_TIMEZONE")):
        from .config import ConfigurationError

        raise ConfigurationError(f"DEFAULT_TIMEZONE {app.config.get('DEFAULT_TIMEZONE')!r} is not a time zone "
                                 "name such as \"Europe/Rome\".")
    babel = Babel(app, locale_selector=select_locale, timezone_selector=select_timezone)
    with app.app_context():
        babel.domain_instance = RequestDomain(domain=babel.domain)  # type: ignore[misc]
    _install_template_gettext(app)
    from flask_babel import get_locale

    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.filters["human_size"] = human_size
    app.jinja_env.filters["money"] = format_money
