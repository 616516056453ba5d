"""Password sign-in for bank staff and coordinators (farmers use one-time codes).

Unknown user, wrong password and inactive account look the same from outside: one argon2
verification is spent in every case and the answer is ``invalid-credentials``. The username
arrives normalised (stripped, case-folded) from ``LoginSchema``, the one place that does it, so
the per-account failure limit and the lookup can never disagree on whose account it is.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core import audit
from core.auth import devices
from core.auth.errors import InvalidCredentials
from core.auth.sessions import start_session
from core.db import DbSession
from core.errors import ValidationFailed
from core.i18n import _
from core.people.models import Coordinator, Staff
from core.security import hash_password, needs_rehash, verify_password


def _find(session: DbSession, username: str) -> Staff | Coordinator | None:
    """``username`` as LoginSchema normalised it; stored usernames are lower-case ASCII,
    which case-folding leaves as they are."""
    staff = session.scalars(sa.select(Staff).where(Staff.username == username)).first()
    if staff is not None:
        return staff
    return session.scalars(sa.select(Coordinator).where(Coordinator.username == username)
                           ).first()


def _authenticate(session: DbSession, username: str, password: str) -> Staff | Coordinator:
    user = _find(session, username)
    valid = verify_password(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        raise InvalidCredentials()
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def sign_in(session: DbSession, username: str, password: str,
            device: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check the password, register the device (coordinators only), open a session."""
    user = _authenticate(session, username, password)
    kind = "staff" if isinstance(user, Staff) else "coordinator"
    bound = None
    if device is not None:
        if not isinstance(user, Coordinator):
            raise ValidationFailed(_("Only coordinators sign in with a device"),
                                   errors={"device": [_("Only coordinators register devices.")]})
        bound = devices.register(session, user, device["id"], device.get("label"))
    auth, pair = start_session(session, kind, user.id, bound.id if bound else None)
    audit.record(session, "auth.signed_in", auth,
                 summary={"method": "password", "kind": kind,
                          "device": str(bound.public_id) if bound else None},
                 actor=f"{kind}:{user.public_id}")
    return pair
