"""The core CRM model every module builds on: companies, contacts, staff, profiles, buttons, audit."""
from __future__ import annotations

import secrets

import peewee as pw
from flask_babel import get_locale

from .db import BaseModel, utcnow
from .sqlite_schema import SqliteAutoIncrementField

SCOPES = ("own", "company")
#: Actions every module understands; a module may declare more (``accept``, ``close`` …).
ACTIONS = ("view", "create", "edit", "export")
LANGUAGES = ("it", "en")


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Localized:
    """Mixin for rows that carry ``label_en`` / ``label_it``: ``label`` in the current language,
    ``label_for(language)`` in any (English, then the row's name or key, when a label is empty)."""

    def label_for(self, language: str | None) -> str:
        value = getattr(self, f"label_{language}", None) if language else None
        return (value or getattr(self, "label_en", None) or getattr(self, "name", None)
                or getattr(self, "key", None) or "")

    @property
    def label(self) -> str:
        return self.label_for(str(get_locale() or "en"))

    def __str__(self) -> str:  # admin selects and foreign-key columns: one stable (English) name
        return self.label_for("en")


class Company(BaseModel):
    name = pw.CharField(max_length=200, index=True)
    vat_number = pw.CharField(max_length=32, null=True, index=True)
    address = pw.CharField(max_length=200, null=True)
    city = pw.CharField(max_length=100, null=True, index=True)
    postal_code = pw.CharField(max_length=16, null=True)
    province = pw.CharField(max_length=64, null=True)
    country = pw.CharField(max_length=64, null=True)
    phone = pw.CharField(max_length=40, null=True)
    email = pw.CharField(max_length=254, null=True)
    website = pw.CharField(max_length=200, null=True)
    email_domain = pw.CharField(max_length=200, null=True, index=True)
    notes = pw.TextField(null=True)
    reserved_conditions = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    # Every portal user of the company must log in with a second factor (TOTP).
    second_factor_required = pw.BooleanField(default=False)

    class Meta:
        table_name = "core_company"


class Profile(Localized, BaseModel):
    """A portal profile: which modules a contact sees, with which scope and actions, and which buttons."""

    name = pw.CharField(max_length=64, unique=True)
    label_en = pw.CharField(max_length=100)
    label_it = pw.CharField(max_length=100, null=True)
    description = pw.TextField(null=True)
    # Customers' own administrators may give this profile to their colleagues.
    assignable = pw.BooleanField(default=False)
    # Contacts with this profile (a company's administrators, say) must use a second factor.
    second_factor_required = pw.BooleanField(default=False)

    class Meta:
        table_name = "core_profile"


class Contact(BaseModel):
    """A CRM contact; with portal access on, also a portal user."""

    # The foreign keys' raw ids, which peewee sets up (declared for type checkers only).
    company_id: int | None
    profile_id: int | None

    first_name = pw.CharField(max_length=100, index=True)
    last_name = pw.CharField(max_length=100, index=True)
    email = pw.CharField(max_length=254, unique=True)
    phone = pw.CharField(max_length=40, null=True)
    mobile = pw.CharField(max_length=40, null=True)
    office = pw.CharField(max_length=100, null=True, index=True)
    role = pw.CharField(max_length=100, null=True, index=True)
    company = pw.ForeignKeyField(Company, backref="contacts", null=True, index=True, on_delete="SET NULL")
    language = pw.CharField(max_length=5, null=True, choices=[(c, c) for c in LANGUAGES])
    portal_access = pw.BooleanField(default=False, index=True)
    profile = pw.ForeignKeyField(Profile, backref="contacts", null=True, index=True, on_delete="SET NULL")
    password_hash = pw.CharField(max_length=255, null=True)
    # Rotated on password change and logout-everywhere: it is part of the session id, so every
    # cookie issued before the rotation stops working.
    session_token = pw.CharField(max_length=64, default=new_token)
    must_change_password = pw.BooleanField(default=False)
    # Email notifications about the contact's own records (tickets …); account emails always go out.
    notify_by_email = pw.BooleanField(default=True)
    # The contact's own choices per notification event, JSON {"tickets.reply": false, …}; an event
    # missing here follows its declared default (crm_portal.notifications).
    notification_events = pw.TextField(null=True)
    last_login = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "core_contact"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def __str__(self) -> str:
        return f"{self.full_name} <{self.email}>"


class StaffUser(BaseModel):
    """Admins and operators: they work in Flask-Admin, never in the customer portal."""

    ROLES = ("admin", "operator")

    email = pw.CharField(max_length=254, unique=True)
    name = pw.CharField(max_length=200)
    role = pw.CharField(max_length=16, default="operator", choices=[(r, r) for r in ROLES])
    active = pw.BooleanField(default=True)
    language = pw.CharField(max_length=5, null=True, choices=[(c, c) for c in LANGUAGES])
    # An IANA zone ("Europe/Rome") the admin shows times in; empty: the portal's DEFAULT_TIMEZONE.
    timezone = pw.CharField(max_length=64, null=True)
    password_hash = pw.CharField(max_length=255, null=True)
    session_token = pw.CharField(max_length=64, default=new_token)
    last_login = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    # May open the portal as a contact sees it (read-only, audited); admins may by their role.
    can_view_as = pw.BooleanField(default=False)

    class Meta:
        table_name = "core_staff_user"

    @property
    def may_view_as(self) -> bool:
        """Whether this staff member may open the portal as a contact (crm_portal.viewas)."""
        return bool(self.active) and (self.role == "admin" or bool(self.can_view_as))

    def __str__(self) -> str:
        return self.name or self.email


class ProfileModule(BaseModel):
    """One enabled module in a profile, with its scope and the actions granted."""

    profile = pw.ForeignKeyField(Profile, backref="module_grants", on_delete="CASCADE", index=True)
    module = pw.CharField(max_length=64, index=True)
    scope = pw.CharField(max_length=16, default="own", choices=[(s, s) for s in SCOPES])
    actions = pw.CharField(max_length=255, default="view")  # comma-separated
    position = pw.IntegerField(default=0)

    class Meta:
        table_name = "core_profile_module"
        indexes = ((("profile", "module"), True),)

    @property
    def action_set(self) -> frozenset[str]:
        # Read dozens of times a page (navigation, buttons, permission checks): parsed once per
        # value of ``actions``, again whenever it changes.
        raw = self.actions
        cached = self.__dict__.get("_action_set")
        if cached is None or cached[0] != raw:
            cached = self.__dict__["_action_set"] = (raw, frozenset(a.strip() for a in (raw or "").split(",")
                                                                     if a.strip()))
        return cached[1]

    def __str__(self) -> str:
        return f"{self.module} ({self.scope}: {self.actions})"


class Button(Localized, BaseModel):
    """A dashboard button. ``endpoint`` (+ JSON ``args``) or a plain ``url``; ``module`` hides it when
    the module is not enabled for the user."""

    key = pw.CharField(max_length=100, unique=True)
    label_en = pw.CharField(max_length=100)
    label_it = pw.CharField(max_length=100, null=True)
    description_en = pw.CharField(max_length=255, null=True)
    description_it = pw.CharField(max_length=255, null=True)
    icon = pw.CharField(max_length=64, default="grid")
    module = pw.CharField(max_length=64, null=True, index=True)
    endpoint = pw.CharField(max_length=128, null=True)
    args = pw.TextField(null=True)  # JSON object of URL arguments
    url = pw.CharField(max_length=255, null=True)
    style = pw.CharField(max_length=32, default="primary")

    class Meta:
        table_name = "core_button"

    @property
    def description(self) -> str:
        locale = str(get_locale() or "en")
        return getattr(self, f"description_{locale}", None) or self.description_en or ""

    def __str__(self) -> str:
        return self.key


class ProfileButton(BaseModel):
    profile = pw.ForeignKeyField(Profile, backref="button_links", on_delete="CASCADE", index=True)
    button = pw.ForeignKeyField(Button, backref="profile_links", on_delete="CASCADE", index=True)
    position = pw.IntegerField(default=0, index=True)

    class Meta:
        table_name = "core_profile_button"
        indexes = ((("profile", "button"), True),)

    def __str__(self) -> str:
        return f"{self.position}: {self.button_id}"


class AuditEntry(BaseModel):
    """Who did what to which record, and when."""

    created_at = pw.DateTimeField(default=utcnow, index=True)
    actor_type = pw.CharField(max_length=16, index=True)  # contact | staff | system | anonymous | integration
    actor_id = pw.IntegerField(null=True, index=True)
    actor_label = pw.CharField(max_length=300, null=True)
    action = pw.CharField(max_length=64, index=True)
    object_type = pw.CharField(max_length=64, null=True, index=True)
    object_id = pw.CharField(max_length=64, null=True, index=True)
    details = pw.TextField(null=True)
    ip_address = pw.CharField(max_length=64, null=True)

    class Meta:
        table_name = "core_audit_entry"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.object_type or ''} {self.object_id or ''}"


class OutboxMessage(BaseModel):
    """An email waiting to be sent, written in the same transaction as the change that caused it."""

    STATUSES = ("pending", "sent", "failed")

    created_at = pw.DateTimeField(default=utcnow, index=True)
    template = pw.CharField(max_length=100, index=True)
    to_address = pw.CharField(max_length=254, index=True)
    language = pw.CharField(max_length=5, default="it")
    subject = pw.CharField(max_length=300)
    body_text = pw.TextField()
    body_html = pw.TextField(null=True)
    status = pw.CharField(max_length=16, default="pending", index=True, choices=[(s, s) for s in STATUSES])
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow, index=True)
    last_error = pw.TextField(null=True)
    sent_at = pw.DateTimeField(null=True)
    # The batch that holds the message while ``next_attempt_at`` (the claim's expiry) is ahead.
    claim_token = pw.CharField(max_length=32, null=True, index=True)
    #: What the message is about (``tickets:<id>``): messages of one thread carry ``In-Reply-To`` /
    #: ``References`` to each other, ``Reply-To`` the support mailbox and a signed reference, so that
    #: replies come back to the same record (crm_portal.mailin).
    thread = pw.CharField(max_length=64, null=True, index=True)
    #: The ``Auto-Submitted`` value (RFC 3834): ``auto-replied`` for an answer to an incoming email,
    #: else ``auto-generated``.
    auto_submitted = pw.CharField(max_length=32, null=True)

    class Meta:
        table_name = "core_outbox_message"

    def __str__(self) -> str:
        return f"{self.to_address}: {self.subject}"


class AccountToken(BaseModel):
    """A one-time link sent by email (invitation, password reset). The signed token carries the
    ``nonce``; the row says whether it may still be used. Issuing a new link of the same purpose
    revokes the older ones, and so does a password change."""

    PURPOSES = ("invite", "reset")

    contact = pw.ForeignKeyField(Contact, backref="account_tokens", on_delete="CASCADE", index=True)
    purpose = pw.CharField(max_length=16, choices=[(p, p) for p in PURPOSES])
    nonce = pw.CharField(max_length=64, unique=True, default=new_token)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    used_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "core_account_token"


class StaffToken(BaseModel):
    """A staff member's one-time password-reset link: like :class:`AccountToken` for contacts."""

    staff_id: int

    staff = pw.ForeignKeyField(StaffUser, backref="reset_tokens", on_delete="CASCADE", index=True)
    nonce = pw.CharField(max_length=64, unique=True, default=new_token)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    used_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "core_staff_token"


class LoginThrottle(BaseModel):
    """Failed login attempts per account or per IP address (``key``), shared by every worker process
    (see crm_portal.ratelimit).

    After ``limit`` failures the key waits a delay that doubles with each further failure, up to a
    maximum; a quiet period resets it. Never a permanent lock-out."""

    key = pw.CharField(max_length=100, unique=True)
    failures = pw.IntegerField(default=0)
    last_failure_at = pw.DateTimeField(default=utcnow, index=True)
    blocked_until = pw.DateTimeField(null=True)
    #: Attempts whose password is being checked right now, and when the last one started.
    pending = pw.IntegerField(default=0)
    pending_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "core_login_throttle"


class LoginSession(BaseModel):
    """One signed-in browser of a contact (crm_portal.account.sessions): listed in "My data", ended
    there one by one or all but the current one, and by staff. The session cookie and the
    remember-me cookie carry the row's id and ``key``; a revoked row refuses both."""

    contact_id: int

    contact = pw.ForeignKeyField(Contact, backref="login_sessions", on_delete="CASCADE", index=True)
    key = pw.CharField(max_length=64, default=new_token)
    #: A digest of the contact's ``session_token`` when the session started: a later rotation
    #: (password change, logout everywhere) ends the session without touching this row.
    token_digest = pw.CharField(max_length=64)
    #: The browser as a device of the account (crm_portal.device_cookies.device_id).
    device = pw.CharField(max_length=64, null=True, index=True)
    user_agent = pw.CharField(max_length=512, null=True)
    ip_address = pw.CharField(max_length=45, null=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_seen_at = pw.DateTimeField(default=utcnow)
    revoked_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "core_login_session"


class MigrationHistory(BaseModel):
    """Which schema steps of which module (or of the core) have run."""

    module = pw.CharField(max_length=64, index=True)
    name = pw.CharField(max_length=128)
    applied_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "core_migration_history"
        indexes = ((("module", "name"), True),)


class Integration(BaseModel):
    """An external system using the REST API (CRM, helpdesk …); it holds the API keys."""

    name = pw.CharField(max_length=100, unique=True)
    active = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "core_integration"

    def __str__(self) -> str:
        return self.name


class ApiKey(BaseModel):
    """A bearer token of an integration, ``crmp_<key_id>_<secret>``: only the key id and a keyed
    hash of the secret are stored (see crm_portal.rest.keys)."""

    integration_id: int

    integration = pw.ForeignKeyField(Integration, backref="api_keys", on_delete="CASCADE", index=True)
    key_id = pw.CharField(max_length=32, unique=True)
    secret_hash = pw.CharField(max_length=64)
    scopes = pw.TextField(default="")  # space-separated
    allowed_ips = pw.TextField(null=True)  # space-separated CIDR ranges; empty: any address
    expires_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)
    last_used_at = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "core_api_key"

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset((self.scopes or "").split())

    def __str__(self) -> str:
        return self.key_id


class WebhookEndpoint(BaseModel):
    """Where an integration receives signed webhooks (see crm_portal.webhooks). ``secrets`` holds the
    current signing secret first, then, until ``previous_until``, the one it replaced."""

    integration_id: int

    integration = pw.ForeignKeyField(Integration, backref="webhooks", on_delete="CASCADE", index=True)
    url = pw.CharField(max_length=2000)
    events = pw.TextField(default="")  # space-separated event types
    secret = pw.CharField(max_length=100)
    previous_secret = pw.CharField(max_length=100, null=True)
    previous_until = pw.DateTimeField(null=True)
    active = pw.BooleanField(default=True)
    disabled_reason = pw.CharField(max_length=300, null=True)
    failure_count = pw.IntegerField(default=0)  # consecutive failed deliveries
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "core_webhook_endpoint"

    @property
    def event_set(self) -> frozenset[str]:
        return frozenset((self.events or "").split())

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(BaseModel):
    """One event for one endpoint: the exact body sent, and how its delivery went."""

    endpoint_id: int

    endpoint = pw.ForeignKeyField(WebhookEndpoint, backref="deliveries", on_delete="CASCADE", index=True)
    event_type = pw.CharField(max_length=60)
    webhook_id = pw.CharField(max_length=40, unique=True)
    payload = pw.BlobField(default=b"")  # always given; the default serves generic row factories
    status = pw.CharField(max_length=12, default="pending", index=True,
                          choices=[(s, s) for s in ("pending", "delivered", "failed")])
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow, index=True)
    last_status = pw.IntegerField(null=True)  # HTTP status of the last attempt
    last_error = pw.CharField(max_length=500, null=True)
    delivered_at = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "core_webhook_delivery"


class ExternalRef(BaseModel):
    """A record as another system knows it: ``external_id`` of ``type`` in ``integration`` is our
    ``record_id`` (see crm_portal.sync). ``deleted_at``: the system deleted it; what happens then
    follows the type's deletion policy (``SYNC_DELETION_POLICY``)."""

    integration_id: int

    integration = pw.ForeignKeyField(Integration, backref="external_refs", on_delete="CASCADE", index=True)
    type = pw.CharField(max_length=32)  # company, contact, product, service, deadline, document
    external_id = pw.CharField(max_length=200)
    record_id = pw.IntegerField()
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    deleted_at = pw.DateTimeField(null=True, index=True)

    class Meta:
        table_name = "core_external_ref"
        indexes = (
            (("integration", "type", "external_id"), True),
            (("type", "record_id"), False),
        )

    def __str__(self) -> str:
        return f"{self.type} {self.external_id}"


class SyncConflict(BaseModel):
    """A synced record that matched several of ours by its attributes (VAT number, email domain,
    email): staff choose the right one in the admin, then the push is applied to it."""

    integration_id: int

    integration = pw.ForeignKeyField(Integration, backref="sync_conflicts", on_delete="CASCADE", index=True)
    type = pw.CharField(max_length=32)
    external_id = pw.CharField(max_length=200)
    payload = pw.TextField()  # JSON: the pushed data, applied when the conflict is resolved
    candidates = pw.TextField()  # JSON list of record ids that matched
    created_at = pw.DateTimeField(default=utcnow, index=True)
    resolved_at = pw.DateTimeField(null=True, index=True)
    record_id = pw.IntegerField(null=True)  # the record staff chose

    class Meta:
        table_name = "core_sync_conflict"
        indexes = ((("integration", "type", "external_id"), False),)

    def __str__(self) -> str:
        return f"{self.type} {self.external_id}"
class ChangeEntry(BaseModel):
    """One change of a module's record for ``GET /api/v1/changes`` (see crm_portal.changes),
    written in the change's transaction. ``txid`` is the writing transaction's id on PostgreSQL
    (0 on SQLite, whose writers commit one at a time): the feed follows (txid, id). Ids are never
    given twice, even after pruning empties the table (a reader's cursor names the last id it saw)."""

    id = SqliteAutoIncrementField()
    type = pw.CharField(max_length=60)  # the module's name
    record_id = pw.BigIntegerField()
    change = pw.CharField(max_length=6, choices=[("upsert", "upsert"), ("delete", "delete")])
    at = pw.DateTimeField(default=utcnow, index=True)
    txid = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "core_change"
        indexes = ((("txid", "id"), False),)


class IdempotencyRecord(BaseModel):
    """The outcome of a POST under ``/api/v1`` sent with an ``Idempotency-Key`` (see
    crm_portal.rest.idempotency): a retry with the same key gets this answer instead of a second
    write. ``status`` is empty while the first request runs. Pruned after 24 hours."""

    integration_id: int

    integration = pw.ForeignKeyField(Integration, on_delete="CASCADE", index=False)
    key = pw.CharField(max_length=255)
    method = pw.CharField(max_length=10)
    path = pw.CharField(max_length=2000)
    request_hash = pw.CharField(max_length=64)
    status = pw.IntegerField(null=True)
    response_body = pw.BlobField(null=True)
    #: The answer's headers a retry needs again (Content-Type, Location, ETag), as JSON.
    response_headers = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "core_idempotency_record"
        indexes = ((("integration", "key"), True),)


class SecondFactor(BaseModel):
    """The TOTP second factor of one contact or staff member (``account`` is ``c:<id>`` or ``s:<id>``).

    ``enabled_at`` is empty while the enrolment waits for its first code. ``last_step`` is the
    30-second time step of the last code accepted: a code is used once. ``nonce`` is new at every
    enrolment, so "remember this device" cookies die with a reset."""

    account = pw.CharField(max_length=32, unique=True)
    secret = pw.TextField()  # encrypted (crm_portal.mailin.crypto, a key of its own)
    enabled_at = pw.DateTimeField(null=True)
    last_step = pw.BigIntegerField(default=0)
    nonce = pw.CharField(max_length=32, default=lambda: secrets.token_hex(16))
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "core_second_factor"


class RecoveryCode(BaseModel):
    """A single-use recovery code of a second factor, stored as a keyed SHA-256 digest."""

    factor = pw.ForeignKeyField(SecondFactor, backref="recovery_codes", on_delete="CASCADE")
    code_hash = pw.CharField(max_length=64, index=True)
    used_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "core_recovery_code"


CORE_MODELS: list[type[BaseModel]] = [
    Company, Profile, Contact, StaffUser, ProfileModule, Button, ProfileButton, AuditEntry, OutboxMessage,
    MigrationHistory, AccountToken, LoginThrottle, StaffToken, Integration, ApiKey,
    WebhookEndpoint, WebhookDelivery, ExternalRef, SyncConflict, ChangeEntry, IdempotencyRecord,
    SecondFactor, RecoveryCode, LoginSession,
]


def _mailin_models() -> list[type[BaseModel]]:
    from .mailin.models import MODELS

    return MODELS


CORE_MODELS += _mailin_models()
