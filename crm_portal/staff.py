"""The staff directory for modules: who works on customers' requests (admins and operators).

Modules reference a staff member with a foreign key to :class:`StaffUser` (a core table) and list
the people who can be given work with :func:`staff_members`.
"""
from __future__ import annotations

from collections.abc import Sequence

from .models import StaffUser


def staff_members(roles: Sequence[str] = ("admin", "operator"), *, active_only: bool = True) -> list[StaffUser]:
    """Staff users with one of ``roles``, by name."""
    query = StaffUser.select().where(StaffUser.role.in_(list(roles)))
    if active_only:
        query = query.where(StaffUser.active == True)  # noqa: E712
    return list(query.order_by(StaffUser.name, StaffUser.id))


def current_staff():
    """The logged-in staff user (a :class:`StaffUser`), or ``None`` for contacts and visitors."""
    from flask_login import current_user

    if current_user and current_user.is_authenticated and getattr(current_user, "is_staff", False):
        return current_user.staff
    return None
