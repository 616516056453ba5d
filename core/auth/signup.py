"""A farmer not yet known to the bank signs up from the phone.

The phone number is proven by a one-time code (the same challenges as sign-in, sent here to
any number); the person gives a name, a resident ID number and their village. That makes a
**pending** profile (``identity_status = "pending"``): the farmer can sign in, apply and
follow the application, and the application waits for a coordinator to check the person and
their ID on the ground before anything is decided. Someone already registered is sent to sign
in instead; an ID number already registered with another phone is refused (``farmer-exists``:
the coordinator sorts out a changed phone number in person).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core import audit
from core.auth import otp
from core.auth.sessions import start_session
from core.db import DbSession
from core.errors import Conflict, NotFound
from core.i18n import _, current_locale, lazy_gettext
from core.people import services as people
from core.people.models import Farmer
from core.places.models import Village
from core.sms import mask_phone

PENDING = "pending"


class AlreadyRegistered(Conflict):
    code = "already-registered"
    title = lazy_gettext("This phone number is already registered")


def request_code(session: DbSession, phone: str) -> None:
    """Text a sign-up code to ``phone`` (to a registered farmer: a sign-in code)."""
    otp.request_code(session, phone, sign_up=True)


def sign_up(session: DbSession, *, phone: str, code: str, name: str, id_number: str,
            village_code: str) -> dict[str, Any]:
    """Check the code, create the pending profile, sign the farmer in: their first tokens."""
    attempt = otp.checked_attempt(session, phone, code)
    if session.scalar(sa.select(Farmer.id).where(Farmer.phone == phone)) is not None:
        raise AlreadyRegistered(_("This phone number is already registered: sign in with a "
                                  "code instead"))
    village = session.scalars(sa.select(Village).where(Village.code == village_code)).first()
    if village is None:
        raise NotFound(_("No village with that code"))
    otp.close(session, attempt)
    farmer = people.create_farmer(session, name=name, phone=phone, id_number=id_number,
                                  village=village)
    farmer.identity_status = PENDING
    farmer.language = current_locale()
    auth, pair = start_session(session, "farmer", farmer.id)
    audit.record(session, "farmer.signed_up", farmer, actor=f"farmer:{farmer.public_id}",
                 summary={"phone": mask_phone(phone), "village_id": str(village.public_id),
                          "id_number": farmer.id_number_masked, "session": str(auth.public_id)})
    return pair
