"""Scope-matrix case of the contacts module: bruno himself, his colleague anna, carla of Globex.

The administrator's routes (``manage``, granted here with every other action) answer 404 out of
scope before anything else; in scope they reach the colleague and apply their own rules, which are
the same for oneself and a colleague in the two cases below."""
from crm_portal.testing import Route

MODULE = "contacts"

#: The id of a profile staff did not make assignable, found by ``_not_assignable`` (app context).
_forged: dict[str, int] = {}


def _not_assignable(record_id):
    from crm_portal.models import Contact, Profile

    _forged["profile"] = Profile.get(Profile.name == "company").id
    _forged["before"] = Contact.get_by_id(record_id).profile_id
    assert not Profile.get_by_id(_forged["profile"]).assignable


def _forged_profile():
    return {"profile": str(_forged["profile"])}


def _profile_unchanged(response, record_id):
    from crm_portal.models import Contact

    assert 'data-testid="manage-error"' in response.text
    assert Contact.get_by_id(record_id).profile_id == _forged["before"]


def _access_unchanged(response, record_id):
    from crm_portal.models import Contact, OutboxMessage

    assert Contact.get_by_id(record_id).portal_access
    assert not OutboxMessage.select().where(OutboxMessage.to_address == Contact.get_by_id(record_id).email).exists()


ROUTES = [
    # Access already on (oneself included): nothing to do, no email.
    Route("POST", "/contacts/{id}/enable", 302, check=_access_unchanged),
    # A profile staff did not make assignable: refused, for oneself and for a colleague alike.
    Route("POST", "/contacts/{id}/profile", 400, _forged_profile, prepare=_not_assignable, check=_profile_unchanged),
]


def records(demo):
    c = demo["contacts"]
    return {"own": c["bruno"].id, "colleague": c["anna"].id, "other": c["carla"].id}


def marker(record_id, demo):
    """Text that identifies the record in list pages and CSV exports."""
    return next(c.email for c in demo["contacts"].values() if c.id == record_id)
