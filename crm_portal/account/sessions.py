"""A contact's signed-in browsers: one :class:`~crm_portal.models.LoginSession` row per session.

A row is written when a session starts (login, a password set from an emailed link, the new
session after a password change); the session cookie and the remember-me cookie name it, and the
request loader (crm_portal.auth) refuses them once it is revoked. "My data" lists the live ones;
the contact ends one, or every one but the current; staff end them all from the admin.

A password login from a browser that is not a device of the account — no device cookie for it
(crm_portal.device_cookies), or one no earlier session of the account began with — is announced to
the contact by email (``NEW_DEVICE_EMAIL``), except the account's very first session, which has
nothing to compare with: the first login after an invitation or a temporary password.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from flask import after_this_request, current_app, request
from flask_babel import LazyString
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from .. import device_cookies, ratelimit
from ..auth import PortalUser, client_ip
from ..db import utcnow
from ..models import Contact, LoginSession, new_token
from ..outbox import external_url, queue_email

USER_AGENT_LENGTH = 512


def token_digest(session_token: str) -> str:
    """What a row keeps of the session token it started under (never the token itself)."""
    return hashlib.sha256(session_token.encode()).hexdigest()


def begin(user: PortalUser, *, announce: bool) -> PortalUser:
    """Write the session row of ``user``'s new browser session and return the user carrying it.

    With ``announce`` (a login: the password, and the second factor when on), a browser unknown to
    the account gets the new-device email, unless this is the account's first session ever. The
    browser becomes a device of the account either way. Call inside the login's transaction."""
    contact = user.contact
    account = ratelimit.account_key(contact.email, staff=False)
    device = device_cookies.device_id(account)
    earlier = LoginSession.select(LoginSession.id).where(LoginSession.contact == contact.id)
    first = not earlier.exists()
    # Known: the browser brought the account's device cookie and a session of the account began
    # with it. The cookie alone is not enough: the password step issues it before a second factor.
    known = device_cookies.knows(account) and earlier.where(LoginSession.device == device).exists()
    user_agent = (request.user_agent.string or "")[:USER_AGENT_LENGTH] or None
    record = LoginSession.create(contact=contact.id, token_digest=token_digest(contact.session_token),
                                 device=device, user_agent=user_agent, ip_address=client_ip())
    if announce and not first and not known and current_app.config["NEW_DEVICE_EMAIL"]:
        _announce(contact, record)

    @after_this_request
    def _remember_device(response: Response) -> Response:  # the same nonce as the record's
        device_cookies.remember(response, account)
        return response
    return PortalUser(contact, record)


def _announce(contact: Contact, record: LoginSession) -> None:
    user_agent = record.user_agent
    queue_email(contact.email, "new-device-login", language=contact.language, contact=contact,
                when=record.created_at, device=LazyString(lambda: describe(user_agent)),  # in the email's language
                ip=record.ip_address or "?",
                link=external_url("account.me") + "#sessions",
                password_link=external_url("account.change_password"))


def describe(user_agent: str | None) -> str:
    """The browser and system of ``user_agent`` in plain words ("Firefox on Windows"), read by
    ua-parser; "Unknown browser" when it says nothing we know."""
    if not user_agent:
        return _("Unknown browser")
    import ua_parser  # imported here: its rules load on first use only

    parsed = ua_parser.parse(user_agent)
    browser = parsed.user_agent.family if parsed.user_agent and parsed.user_agent.family != "Other" else None
    system = parsed.os.family if parsed.os and parsed.os.family != "Other" else None
    if browser and system:
        return _("%(browser)s on %(system)s", browser=browser, system=system)
    return browser or system or _("Unknown browser")


@dataclass(frozen=True)
class SessionRow:
    """A live session as listed to the contact or to staff."""

    id: int
    device: str
    ip_address: str | None
    created_at: object
    last_seen_at: object
    current: bool


def live(contact: Contact) -> list[LoginSession]:
    """``contact``'s sessions that still work: not revoked, started under the current session token,
    used within the remember-me lifetime; the most recently seen first."""
    since = utcnow() - current_app.config["REMEMBER_COOKIE_DURATION"]
    return list(LoginSession.select()
                .where((LoginSession.contact == contact.id) & LoginSession.revoked_at.is_null()
                       & (LoginSession.token_digest == token_digest(contact.session_token))
                       & (LoginSession.last_seen_at >= since))
                .order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc()))


def rows(records: Iterable[LoginSession], current_id: int | None = None) -> list[SessionRow]:
    """``records`` ready for a page, the current browser's marked."""
    return [SessionRow(r.id, describe(r.user_agent), r.ip_address, r.created_at, r.last_seen_at, r.id == current_id)
            for r in records]


def revoke(contact: Contact, record_id: int) -> bool:
    """End one of ``contact``'s sessions (its cookies stop working); False when there is no such live
    session of theirs. Call inside a transaction."""
    return bool(LoginSession.update(revoked_at=utcnow())
                .where((LoginSession.id == record_id) & (LoginSession.contact == contact.id)
                       & LoginSession.revoked_at.is_null())
                .execute())


def revoke_all(contact: Contact, *, keep: LoginSession | None = None) -> int:
    """End every session of ``contact`` but ``keep``: the rows are revoked and the session token
    rotates, so remember-me cookies and sessions without a row die as well. ``keep`` is moved to the
    new token (the caller logs its browser in again). Call inside a transaction."""
    now = utcnow()
    query = LoginSession.update(revoked_at=now).where(
        (LoginSession.contact == contact.id) & LoginSession.revoked_at.is_null())
    if keep is not None:
        query = query.where(LoginSession.id != keep.id)
    ended = query.execute()
    contact.session_token = new_token()
    Contact.update(session_token=contact.session_token).where(Contact.id == contact.id).execute()
    if keep is not None:
        keep.token_digest = token_digest(contact.session_token)
        LoginSession.update(token_digest=keep.token_digest).where(LoginSession.id == keep.id).execute()
    return int(ended)
