"""CSRF on every form and the security headers every response carries."""
from __future__ import annotations

import secrets

from flask import Flask, g, request
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def init_app(app: Flask) -> None:
    csrf.init_app(app)

    @app.before_request
    def _nonce() -> None:
        g.csp_nonce = secrets.token_urlsafe(16)

    @app.after_request
    def _headers(response):
        h = response.headers
        if request.path.startswith("/admin"):
            # Flask-Admin's own pages carry a few inline scripts, each marked with this request's nonce.
            nonce = g.get("csp_nonce", "")
            h.setdefault("Content-Security-Policy", CSP.replace(
                "script-src 'self'", f"script-src 'self' 'nonce-{nonce}'").replace(
                "style-src 'self'", "style-src 'self' 'unsafe-inline'"))
        else:
            h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if request.is_secure:
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if current_user and current_user.is_authenticated and not request.path.startswith(("/static/", "/theme/")):
            h["Cache-Control"] = "no-store"
        return response
