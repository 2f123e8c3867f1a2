"""Configuration: built-in defaults < ``<instance>/config.toml`` < ``CRM_PORTAL_*`` environment variables
< the mapping given to ``create_app`` (tests). See docs/configuration.md for every key."""
from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import re
import secrets
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.exceptions import SecurityError
from werkzeug.routing import MapAdapter
from werkzeug.sansio.utils import host_is_trusted


def _shipped(package: str) -> str:
    """The folder of a data package shipped inside ``crm_portal`` (themes, profiles, buttons …)."""
    return str(importlib.resources.files(package))

SECRET_FILE = "secret_key"

DEFAULTS: dict[str, Any] = {
    "PORTAL_NAME": "CRM Portal",
    "PRODUCTION": False,
    "PROXY_FIX": 0,  # number of reverse proxies in front (X-Forwarded-For/-Proto/-Host trusted from them)
    "DATABASE_URL": None,  # default: sqlite:///<instance>/crm_portal.db
    "DATABASE_LOCK_RETRIES": 2,  # SQLite: a request still locked out after the busy timeout runs again
    # Connection pool (crm_portal.db.POOL_DEFAULTS when unset): most connections per process, seconds
    # before an idle connection is replaced, seconds a request waits for a free one.
    "DATABASE_POOL_SIZE": None,
    "DATABASE_POOL_STALE_TIMEOUT": None,
    "DATABASE_POOL_TIMEOUT": None,
    # Every link in an email is built from this base URL, never from the request's Host.
    "EXTERNAL_URL": None,  # e.g. "https://portal.example.com"; required in production
    "TRUSTED_HOSTS": None,  # e.g. ["portal.example.com"]: requests for any other Host get 400
    "MODULE_FOLDERS": None,  # default: the built-in modules' folder and <instance>/modules
    "MODULES_ENABLED": None,  # None: every discovered module
    "MODULES_DISABLED": [],
    "MODULES_STRICT": False,
    "THEME": "default",
    "THEMES_FOLDER": None,  # default: the themes shipped with the package
    "PROFILES_FOLDER": None,  # default: the profiles shipped with the package
    "BUTTONS_FOLDER": None,  # default: the buttons shipped with the package
    "LANGUAGES": ["it", "en"],
    "BABEL_DEFAULT_LOCALE": "it",
    "BABEL_DEFAULT_TIMEZONE": "Europe/Rome",
    # The zone times are shown in (an IANA name); a staff member may choose their own.
    "DEFAULT_TIMEZONE": "Europe/Rome",
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
    "PASSWORD_MIN_SCORE": 3,  # zxcvbn's strength estimate, 0 (guessed at once) to 4; 0 switches it off
    "NEW_DEVICE_EMAIL": True,  # email a contact who logs in from a browser new to their account
    "VIEW_AS_MINUTES": 30,  # staff "view as this contact": the read-only view ends by itself after this
    "ACCOUNT_EDITABLE_FIELDS": ["phone", "mobile", "language", "notify_by_email"],
    "LOGIN_THROTTLE_ACCOUNT_LIMIT": 5,
    "MAIL_REQUEST_IP_LIMIT": 10,  # password-reset / registration requests per IP address per window
    "LOGIN_THROTTLE_IP_LIMIT": 20,
    "LOGIN_THROTTLE_BASE_DELAY": 2,
    "LOGIN_THROTTLE_MAX_DELAY": 300,
    "LOGIN_THROTTLE_WINDOW": 3600,
    # Staff must log in with a second factor (TOTP); None: on when PRODUCTION is, else off.
    "STAFF_REQUIRE_SECOND_FACTOR": None,
    "SECOND_FACTOR_REMEMBER_DAYS": 30,  # "remember this device": days a browser skips the code step
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
    "MAIL_BATCH_SIZE": 100,  # messages claimed and sent over one SMTP connection at a time
    "MAIL_CLAIM_SECONDS": 60,  # how long a crashed worker's messages wait before another sends them
    "MAIL_SENSITIVE_TEMPLATES": ["invitation", "password-reset", "registration-confirm",
                                 "staff-password-reset"],  # one-time links
    "MAIL_SENSITIVE_RETENTION_HOURS": 24,  # then the bodies of those sent emails are blanked
    "HUEY_URL": None,  # default: sqlite <instance>/huey.db; "redis://…" for Redis
    "HUEY_IMMEDIATE": None,  # None: immediate (in-process) when TESTING
    "HUEY_WORKERS": 2,
    "HUEY_NAME": "crm_portal",  # the queue's name (Redis key prefix): one per portal sharing a Redis
    "UPLOAD_FOLDER": None,  # default: <instance>/uploads (outside the web root)
    # Where uploaded files live (crm_portal.storage): "local" (UPLOAD_FOLDER) or "s3" (an S3-compatible
    # bucket; credentials: S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY or boto3's AWS_* environment/role chain).
    "STORAGE_BACKEND": "local",
    "S3_BUCKET": None,
    "S3_ENDPOINT_URL": None,  # None: AWS; "https://minio.example.com" for another S3-compatible service
    "S3_REGION": None,
    "S3_PREFIX": "",  # prepended to every key ("portal/" → portal/tickets/<name>)
    "S3_ACCESS_KEY_ID": None,
    "S3_SECRET_ACCESS_KEY": None,
    "UPLOAD_MAX_BYTES": 20 * 1024 * 1024,
    "UPLOAD_ALLOWED_TYPES": ["pdf", "png", "jpg", "gif", "webp", "txt", "csv", "zip",
                             "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "rtf"],
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": False,  # True: webhooks may target loopback/private addresses
    "WEBHOOK_TIMEOUT": 5,  # seconds to connect and to wait for the receiver's answer
    "WEBHOOK_DISABLE_AFTER_FAILURES": 15,  # consecutive failed attempts that switch an endpoint off
    # CRM sync (docs/api.md#crm-sync): fields the CRM owns per type (None: crm_portal.sync.ownership's
    # defaults), what a deletion in the CRM does per type, and after how many days "delete" deletes.
    "SYNC_CRM_OWNED_FIELDS": None,
    "SYNC_DELETION_POLICY": {"company": "deactivate", "contact": "deactivate"},
    "SYNC_DELETE_AFTER_DAYS": 30,
    # Email-in (crm_portal.mailin, docs/email.md "Email-in")
    "MAILIN_REPLY_TO": None,  # the support mailbox customers reply to (Reply-To of ticket emails)
    "MAILIN_MAX_BYTES": 25 * 1024 * 1024,  # a larger message is rejected (its headers are kept)
    "MAILIN_LOOP_LIMIT": 10,  # tickets one sender may open by email per window; more: a loop
    "MAILIN_LOOP_WINDOW_MINUTES": 60,
    "MAILIN_REJECT_REPLY_HOURS": 24,  # an explanatory reply to a refused sender at most this often
    "MAILIN_UNKNOWN_SENDER": "reject",  # inbound API and mailgate: "reject", "ignore" or "pending"
    "MAILIN_MAX_ATTEMPTS": 5,  # a message failing this often is set aside (IMAP: failed folder)
    "MAILIN_INLINE_MIN_BYTES": 8 * 1024,  # inline images smaller than this (logos) are skipped
    "MAILIN_POLL_LIMIT": 50,  # messages fetched per mailbox per poll
    "MAILIN_IMAP_TIMEOUT": 30,
    # Who sent an email (docs/email.md, "Trust boundary"): what authenticates the From domain
    # ("dmarc" | "dkim-or-spf" | "off"), the authserv-ids of the receiving servers whose
    # Authentication-Results are read, whether the portal verifies DKIM/DMARC itself when none is,
    # and the authserv-ids of forwarders whose ARC-sealed results count when a forward broke DKIM.
    "MAILIN_SENDER_AUTH": "dmarc",
    "MAILIN_TRUSTED_AUTHSERV_IDS": [],
    "MAILIN_VERIFY_DKIM": False,
    "MAILIN_TRUSTED_ARC_FORWARDERS": [],
    "CHANGES_KEEP_DAYS": 30,  # days GET /api/v1/changes can go back; older cursors answer 410
    "API_DOCS_PUBLIC": False,  # True: /api/v1/openapi.json and /api/v1/docs answer without an API key
}


def load(app: Flask, overrides: dict[str, Any] | None) -> None:
    app.config.update(DEFAULTS)
    config_file = Path(app.instance_path) / "config.toml"
    if config_file.exists():
        app.config.from_file(str(config_file), load=tomllib.load, text=False)
    app.config.from_prefixed_env("CRM_PORTAL")
    if overrides:
        app.config.update(overrides)

    for key, package in (("THEMES_FOLDER", "crm_portal.themes"), ("PROFILES_FOLDER", "crm_portal.profiles"),
                         ("BUTTONS_FOLDER", "crm_portal.buttons")):
        app.config[key] = app.config.get(key) or _shipped(package)
    if app.config.get("MODULE_FOLDERS") is None:
        app.config["MODULE_FOLDERS"] = [_shipped("crm_portal.modules"), str(Path(app.instance_path) / "modules")]
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'crm_portal.db'}"
    if isinstance(app.config.get("REMEMBER_COOKIE_DURATION"), (int, float)):
        app.config["REMEMBER_COOKIE_DURATION"] = dt.timedelta(days=app.config["REMEMBER_COOKIE_DURATION"])
    if app.config["STAFF_REQUIRE_SECOND_FACTOR"] is None:
        app.config["STAFF_REQUIRE_SECOND_FACTOR"] = bool(app.config["PRODUCTION"])
    if app.config["PRODUCTION"]:
        app.config.setdefault("SESSION_COOKIE_SECURE", True)
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
    _load_secret(app)
    _check_external_url(app)
    _check_trusted_hosts(app)
    _check_storage(app)
    _check_sender_auth(app)


class ConfigurationError(RuntimeError):
    """A setting that would make the portal unsafe or broken: the application refuses to start."""


#: True while ``crm-portal init`` builds its application: it is about to write the secret key and
#: ``EXTERNAL_URL`` that production requires, so their absence must not stop it from starting.
_preparing_instance: ContextVar[bool] = ContextVar("crm_portal_preparing_instance", default=False)


@contextmanager
def preparing_instance() -> Iterator[None]:
    """Build an application for ``crm-portal init`` inside this block: a production instance
    without its secret key or ``EXTERNAL_URL`` yet is accepted: init writes them."""
    token = _preparing_instance.set(True)
    try:
        yield
    finally:
        _preparing_instance.reset(token)


def normalize_external_url(value: Any) -> str:
    """``value`` as a base URL for links (``https://host[:port][/prefix]``, no trailing slash), or
    :class:`ConfigurationError` saying what is wrong with it."""
    text = str(value).strip() if isinstance(value, str) else ""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = urlsplit("")
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment
            or parts.username or parts.password or re.search(r"\s", text)):
        raise ConfigurationError(
            f"EXTERNAL_URL {value!r} is not a base URL: use the address users open, such as "
            "\"https://portal.example.com\" or \"https://www.example.com/portal\" (no query, no #).")
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _check_external_url(app: Flask) -> None:
    """Every link in an email is built from ``EXTERNAL_URL`` (see crm_portal.outbox.external_url);
    production refuses to start without it rather than guess from a request's forgeable Host."""
    value = app.config.get("EXTERNAL_URL")
    if value:
        app.config["EXTERNAL_URL"] = normalize_external_url(value)
    elif app.config["PRODUCTION"] and not _preparing_instance.get():
        raise ConfigurationError(_no_external_url_message(app))


def _no_external_url_message(app: Flask) -> str:
    return ("EXTERNAL_URL is not set. In production every link in an email is built from it: run "
            "'crm-portal init --external-url https://portal.example.com' (the address users open), add "
            f"EXTERNAL_URL = \"https://portal.example.com\" to {Path(app.instance_path) / 'config.toml'} "
            "or set CRM_PORTAL_EXTERNAL_URL.")


def _check_storage(app: Flask) -> None:
    """A storage backend the portal cannot use would lose every upload: refuse to start instead."""
    backend = str(app.config.get("STORAGE_BACKEND") or "local").lower()
    if backend not in ("local", "s3"):
        raise ConfigurationError(f"STORAGE_BACKEND {backend!r}: use \"local\" (UPLOAD_FOLDER) or \"s3\".")
    if backend == "s3" and not app.config.get("S3_BUCKET"):
        raise ConfigurationError("STORAGE_BACKEND \"s3\" needs S3_BUCKET (and S3_ENDPOINT_URL for a service "
                                 "other than AWS).")


def _check_sender_auth(app: Flask) -> None:
    """Email-in's trust boundary: a policy it knows, a list of authserv-ids (a comma-separated
    string is accepted from the environment) and a boolean; a typo must not open the door."""
    policy = app.config.get("MAILIN_SENDER_AUTH")
    if policy not in ("dmarc", "dkim-or-spf", "off"):
        raise ConfigurationError(f"MAILIN_SENDER_AUTH {policy!r}: use \"dmarc\", \"dkim-or-spf\" or \"off\".")
    for key in ("MAILIN_TRUSTED_AUTHSERV_IDS", "MAILIN_TRUSTED_ARC_FORWARDERS"):
        ids = app.config.get(key) or []
        if isinstance(ids, str):
            ids = [i for i in re.split(r"[\s,]+", ids) if i]
        if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) and i and ";" not in i for i in ids):
            raise ConfigurationError(f"{key} {ids!r} must be a list of authserv-ids, e.g. [\"mx.example.com\"].")
        app.config[key] = list(ids)
    verify = app.config.get("MAILIN_VERIFY_DKIM")
    if not isinstance(verify, bool):
        raise ConfigurationError(f"MAILIN_VERIFY_DKIM {verify!r} must be true or false.")


def _check_trusted_hosts(app: Flask) -> None:
    """``TRUSTED_HOSTS``: a list (a comma-separated string is accepted from the environment). Flask
    answers 400 to a request for any other host; ``EXTERNAL_URL``'s host must be among them."""
    hosts = app.config.get("TRUSTED_HOSTS")
    if hosts is None:
        return
    if isinstance(hosts, str):
        hosts = [h for h in re.split(r"[\s,]+", hosts) if h]
    if not isinstance(hosts, (list, tuple)) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise ConfigurationError(f"TRUSTED_HOSTS {hosts!r} must be a list of host names, "
                                 "e.g. [\"portal.example.com\"].")
    app.config["TRUSTED_HOSTS"] = list(hosts)
    external = app.config.get("EXTERNAL_URL")
    if external and not host_is_trusted(urlsplit(external).netloc, hosts):
        raise ConfigurationError(f"The host of EXTERNAL_URL ({external}) is not in TRUSTED_HOSTS {hosts}: "
                                 "every link in the portal's emails would be refused.")
    _error_pages_for_untrusted_hosts(app)


def _error_pages_for_untrusted_hosts(app: Flask) -> None:
    """Flask refuses a request for an untrusted host (400) but leaves it without a URL adapter, so
    its error page, which links the stylesheet, could not be rendered (500). Such a request gets
    an adapter bound to the external address whose matching raises the refusal: routing fails
    with the 400 as for an unknown path, and the page builds its links."""
    from .outbox import external_base

    create_url_adapter = app.create_url_adapter

    def create_url_adapter_or_refusal(request: Any) -> MapAdapter | None:
        try:
            return create_url_adapter(request)
        except SecurityError as exc:
            refusal = exc  # the except clause unbinds its own name
            base = urlsplit(external_base(app))
            adapter = app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)

            def refuse(*_args: Any, **_kwargs: Any):
                raise refusal

            adapter.match = refuse  # type: ignore[method-assign]
            return adapter

    app.create_url_adapter = create_url_adapter_or_refusal  # type: ignore[method-assign]


def write_setting(app: Flask, key: str, value: Any) -> Path:
    """Set a top-level ``key`` in ``<instance>/config.toml`` (created if missing), keeping every
    other line as it is (``crm-portal init``)."""
    config_file = Path(app.instance_path) / "config.toml"
    lines = config_file.read_text(encoding="utf-8").splitlines() if config_file.exists() else []
    line = f"{key} = {json.dumps(value)}"
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    top_level_end = next((i for i, text in enumerate(lines) if text.lstrip().startswith("[")), len(lines))
    for i in range(top_level_end):
        if pattern.match(lines[i]):
            lines[i] = line
            break
    else:
        lines.insert(top_level_end, line)  # before the first table, or it would belong to that table
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # never leave a file the next start cannot read
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(text, encoding="utf-8")
    app.config[key] = value
    return config_file


def _load_secret(app: Flask) -> None:
    if app.config.get("SECRET_KEY"):
        return
    secret_file = Path(app.instance_path) / SECRET_FILE
    if secret_file.exists():
        app.config["SECRET_KEY"] = secret_file.read_text().strip()
        return
    if app.config["PRODUCTION"]:
        if _preparing_instance.get():
            return  # init writes it next (write_secret)
        raise ConfigurationError(_no_secret_message(app))
    # Development without init: sessions last as long as the process.
    app.config["SECRET_KEY"] = secrets.token_hex(32)
    app.logger.warning("No secret key in %s; using a temporary one (run 'crm-portal init').", secret_file)


def _no_secret_message(app: Flask) -> str:
    return (f"No secret key: run 'crm-portal init' (writes {Path(app.instance_path) / SECRET_FILE}) "
            "or set CRM_PORTAL_SECRET_KEY.")


def write_secret(app: Flask) -> Path:
    """Create the instance secret key if it does not exist yet (``crm-portal init``)."""
    secret_file = Path(app.instance_path) / SECRET_FILE
    if not secret_file.exists():
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(secrets.token_hex(32))
        secret_file.chmod(0o600)
    app.config["SECRET_KEY"] = secret_file.read_text().strip()
    return secret_file
