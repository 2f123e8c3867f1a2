"""Configuration: built-in defaults < ``<instance>/config.toml`` < ``CRM_PORTAL_*`` environment variables
< the mapping given to ``create_app`` (tests). See docs/configuration.md for every key."""
from __future__ import annotations

import datetime as dt
import secrets
import tomllib
from pathlib import Path
from typing import Any

from flask import Flask

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET_FILE = "secret_key"

DEFAULTS: dict[str, Any] = {
    "PORTAL_NAME": "CRM Portal",
    "PRODUCTION": False,
    "PROXY_FIX": 0,  # number of reverse proxies in front (X-Forwarded-For/-Proto/-Host trusted from them)
    "DATABASE_URL": None,  # default: sqlite:///<instance>/crm_portal.db
    "DATABASE_LOCK_RETRIES": 2,  # SQLite: a request still locked out after the busy timeout runs again
    # Every link in an email is built from this base URL, never from the request's Host.
    "EXTERNAL_URL": None,  # e.g. "https://portal.example.com"; required in production
    "TRUSTED_HOSTS": None,  # e.g. ["portal.example.com"]: requests for any other Host get 400
    "MODULE_FOLDERS": [str(PROJECT_ROOT / "modules")],
    "MODULES_ENABLED": None,  # None: every discovered module
    "MODULES_DISABLED": [],
    "MODULES_STRICT": False,
    "THEME": "default",
    "THEMES_FOLDER": str(PROJECT_ROOT / "themes"),
    "PROFILES_FOLDER": str(PROJECT_ROOT / "profiles"),
    "BUTTONS_FOLDER": str(PROJECT_ROOT / "buttons"),
    "LANGUAGES": ["it", "en"],
    "BABEL_DEFAULT_LOCALE": "it",
    "BABEL_DEFAULT_TIMEZONE": "Europe/Rome",
    "PER_PAGE": 50,
    "PER_PAGE_CHOICES": [10, 25, 50, 100],
    "MAX_CONTENT_LENGTH": 21 * 1024 * 1024,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "crm_portal_session",
    "REMEMBER_COOKIE_NAME": "crm_portal_remember",
    "REMEMBER_COOKIE_DURATION": dt.timedelta(days=30),
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,  # token lives as long as the session
    "ADMIN_EMAIL": "admin@example.com",
    "SUPPORT_EMAIL": "supporto@example.com",  # staff notifications with no assigned operator
    "MAIL_FROM": "CRM Portal <noreply@example.com>",
    # Accounts (see docs/operations.md)
    "SELF_REGISTRATION": False,
    "REGISTRATION_AUTO_APPROVE": "domain",  # "domain" | "domain_or_vat" | "never"
    "REGISTRATION_PROFILE": "user",
    "REGISTRATION_MAX_AGE": 24 * 3600,
    "INVITE_ON_PORTAL_ACCESS": True,
    "INVITATION_MAX_AGE": 7 * 24 * 3600,
    "PASSWORD_RESET_MAX_AGE": 3600,
    "PASSWORD_MIN_LENGTH": 10,
    "ACCOUNT_EDITABLE_FIELDS": ["phone", "mobile", "language", "notify_by_email"],
    "LOGIN_THROTTLE_ACCOUNT_LIMIT": 5,
    "MAIL_REQUEST_IP_LIMIT": 10,  # password-reset / registration requests per IP address per window
    "LOGIN_THROTTLE_IP_LIMIT": 20,
    "LOGIN_THROTTLE_BASE_DELAY": 2,
    "LOGIN_THROTTLE_MAX_DELAY": 300,
    "LOGIN_THROTTLE_WINDOW": 3600,
    # Email delivery and the background worker
    "MAIL_TRANSPORT": "file",  # "file" (<instance>/mail/*.eml) | "smtp"
    "MAIL_FILE_DIR": None,
    "MAIL_SERVER": "localhost",
    "MAIL_PORT": 25,
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    "MAIL_USE_TLS": False,
    "MAIL_USE_SSL": False,
    "MAIL_TIMEOUT": 30,
    "MAIL_MAX_ATTEMPTS": 8,
    "MAIL_RETRY_DELAY": 60,
    "MAIL_RETRY_MAX_DELAY": 6 * 3600,
    "HUEY_URL": None,  # default: sqlite <instance>/huey.db; "redis://…" for Redis
    "HUEY_IMMEDIATE": None,  # None: immediate (in-process) when TESTING
    "HUEY_WORKERS": 2,
    "UPLOAD_FOLDER": None,  # default: <instance>/uploads (outside the web root)
    "UPLOAD_MAX_BYTES": 20 * 1024 * 1024,
    "UPLOAD_ALLOWED_TYPES": ["pdf", "png", "jpg", "gif", "webp", "txt", "csv", "zip",
                             "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "rtf"],
}


def load(app: Flask, overrides: dict[str, Any] | None) -> None:
    app.config.update(DEFAULTS)
    config_file = Path(app.instance_path) / "config.toml"
    if config_file.exists():
        app.config.from_file(str(config_file), load=tomllib.load, text=False)
    app.config.from_prefixed_env("CRM_PORTAL")
    if overrides:
        app.config.update(overrides)

    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'crm_portal.db'}"
    if isinstance(app.config.get("REMEMBER_COOKIE_DURATION"), (int, float)):
        app.config["REMEMBER_COOKIE_DURATION"] = dt.timedelta(days=app.config["REMEMBER_COOKIE_DURATION"])
    if app.config["PRODUCTION"]:
        app.config.setdefault("SESSION_COOKIE_SECURE", True)
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
    _load_secret(app)


def _load_secret(app: Flask) -> None:
    if app.config.get("SECRET_KEY"):
        return
    secret_file = Path(app.instance_path) / SECRET_FILE
    if secret_file.exists():
        app.config["SECRET_KEY"] = secret_file.read_text().strip()
        return
    if app.config["PRODUCTION"]:
        raise RuntimeError(
            f"No secret key: run 'crm-portal init' (writes {secret_file}) or set CRM_PORTAL_SECRET_KEY."
        )
    # Development without init: sessions last as long as the process.
    app.config["SECRET_KEY"] = secrets.token_hex(32)
    app.logger.warning("No secret key in %s; using a temporary one (run 'crm-portal init').", secret_file)


def write_secret(app: Flask) -> Path:
    """Create the instance secret key if it does not exist yet (``crm-portal init``)."""
    secret_file = Path(app.instance_path) / SECRET_FILE
    if not secret_file.exists():
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(secrets.token_hex(32))
        secret_file.chmod(0o600)
    app.config["SECRET_KEY"] = secret_file.read_text().strip()
    return secret_file
