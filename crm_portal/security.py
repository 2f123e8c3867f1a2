"""CSRF on every form and the security headers every response carries.

Every response: a Content-Security-Policy without inline scripts or event handlers (admin pages admit
the script tags carrying a per-request nonce, which Flask-Admin puts on its own; the inline handlers of
its templates are replaced by data- attributes and static/js/admin.js), nosniff, frame denial, a
same-origin referrer (emailed tokens never leak in ``Referer``) and HSTS over HTTPS or in production.
``Cache-Control: no-store`` on every page of a logged-in user and on the login, account and admin
pages. Session and remember-me cookies are HttpOnly, SameSite=Lax and,
in production, Secure (see crm_portal.config).
"""
from __future__ import annotations

import secrets

from flask import Flask, g, request
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

#: Blueprints whose pages are never cached, logged in or not (login forms, emailed links).
PRIVATE_BLUEPRINTS = frozenset({"auth", "account", "second_factor"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def content_security_policy(nonce: str | None = None) -> str:
    """The policy of a page; with ``nonce`` (admin pages) also the script tags carrying it, and
    inline styles, which Flask-Admin's widgets (select2, date pickers) set. Never inline scripts
    without the nonce, event handler attributes or ``javascript:`` URLs: no 'unsafe-inline' and no
    'unsafe-hashes' for scripts."""
    if nonce is None:
        return CSP
    return CSP.replace("script-src 'self'", f"script-src 'self' 'nonce-{nonce}'").replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'")


def init_app(app: Flask) -> None:
    csrf.init_app(app)

    @app.before_request
    def _nonce() -> None:
        g.csp_nonce = secrets.token_urlsafe(16)

    @app.after_request
    def _headers(response):
        h = response.headers
        # Flask-Admin marks its script tags with this request's nonce (csp_nonce_generator).
        admin = request.path.startswith("/admin")
        h.setdefault("Content-Security-Policy", content_security_policy(g.get("csp_nonce", "") if admin else None))
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if request.is_secure or app.config.get("PRODUCTION"):
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if not request.path.startswith(("/static/", "/theme/")) and (
                request.blueprint in PRIVATE_BLUEPRINTS or request.path.startswith("/admin")
                or (current_user and current_user.is_authenticated)):
            # Personal pages and pages carrying one-time links never go to a shared or browser cache.
            h["Cache-Control"] = "no-store"
        return response
