"""Every signal CRM Portal sends, in one namespace (extension points for modules and integrations).

Connect with ``signals.record_created.connect(receiver)``. Receivers run synchronously inside the
request and, for record signals, inside the transaction that made the change: work that must not be
lost (an email, a webhook) goes into the outbox there; slow work belongs in a background job.
Every signal here has a docstring naming its sender and keyword arguments (a test enforces it).
"""
from __future__ import annotations

from blinker import NamedSignal, Namespace

_signals = Namespace()


def _signal(name: str, doc: str) -> NamedSignal:
    sig = _signals.signal(name, doc)
    sig.__doc__ = doc
    return sig


record_created = _signal("record-created", """A portal user or an integration (through the API) created a module record.

Sender: the module name (str). Keyword arguments: ``module`` (the Module), ``record`` (the saved
row), ``user`` (the PortalUser, or the IntegrationPrincipal of an API key). Sent inside the creating
transaction.""")

record_updated = _signal("record-updated", """A portal user or an integration (through the API) changed a module record.

Sender: the module name (str). Keyword arguments: ``module``, ``record`` (the saved row),
``user``, ``changes`` (dict field name → (old, new)). Sent inside the updating transaction.""")

user_logged_in = _signal("user-logged-in", """A contact or staff user logged in.

Sender: the Flask app. Keyword arguments: ``user`` (PortalUser or StaffPrincipal), ``ip`` (str).""")

user_logged_out = _signal("user-logged-out", """A contact or staff user logged out.

Sender: the Flask app. Keyword arguments: ``user`` (PortalUser or StaffPrincipal).""")

login_failed = _signal("login-failed", """A login attempt failed.

Sender: the Flask app. Keyword arguments: ``email`` (str, as typed), ``ip`` (str), ``staff`` (bool).""")

modules_loaded = _signal("modules-loaded", """Module discovery finished for an application.

Sender: the Flask app. Keyword arguments: ``registry`` (crm_portal.registry.Registry), whose
``modules`` are the enabled ones and ``states`` every discovered one with its error, if any.""")

admin_record_changed = _signal("admin-record-changed", """Staff created, changed or deleted a row in Flask-Admin.

Sender: the model class. Keyword arguments: ``record``, ``action`` ("created", "updated" or
"deleted"), ``staff`` (StaffPrincipal).""")

change_requested = _signal("change-requested", """A contact asked, from "My data", to change data they cannot edit.

Sender: the Flask app. Keyword arguments: ``contact`` (Contact), ``field`` (str: ``name``,
``email``, ``phone``, ``mobile`` (when a CRM keeps them, see crm_portal.sync.ownership), ``office``,
``role``, ``company``, ``profile`` or ``other``), ``message`` (str, the
correct data as typed). Sent inside the request's transaction. A receiver that takes the request
over (the tickets module opens a support ticket) returns a true value, e.g. the ticket; when no
receiver does, the host emails the request to ``SUPPORT_EMAIL``.""")

password_changed = _signal("password-changed", """A contact's password was set or changed (change, reset,
invitation accepted, temporary password from staff). Every other session of that contact has
already been ended.

Sender: the Flask app. Keyword arguments: ``contact`` (Contact). Sent inside the transaction.""")

portal_access_revoked = _signal("portal-access-revoked", """A contact's portal access was switched off. Their
sessions and emailed links have already been ended; a receiver ends what its module issued (the
deadlines module deletes the calendar feed address).

Sender: the Flask app. Keyword arguments: ``contact`` (Contact). Sent inside the transaction.""")

account_registered = _signal("account-registered", """A self-registered contact confirmed their email.

Sender: the Flask app. Keyword arguments: ``contact`` (the new Contact), ``active`` (bool: False
while the account waits for staff approval). Sent inside the transaction.""")

colleague_changed = _signal("colleague-changed", """A contact administering their company's portal users
(the contacts module's ``manage`` action) invited a colleague, switched a colleague's portal access
off or on, or gave them another profile.

Sender: the Flask app. Keyword arguments: ``contact`` (the colleague's Contact, as saved),
``by`` (the Contact who made the change), ``change`` (str: ``invited``, ``access-revoked``,
``access-enabled`` or ``profile-changed``), ``details`` (dict: for ``profile-changed`` the old and
new profile names under ``from`` and ``to``; empty otherwise). Sent inside the transaction.""")

ALL = [record_created, record_updated, user_logged_in, user_logged_out, login_failed,
       modules_loaded, admin_record_changed, change_requested, password_changed, portal_access_revoked,
       account_registered, colleague_changed]
