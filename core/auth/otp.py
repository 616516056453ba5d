"""Farmers sign in with a one-time code sent by SMS.

A request for an unknown number answers exactly like one for a farmer's number and even makes
a challenge (whose code nobody receives), so neither the request nor the verification tells
whether an account exists. Each challenge allows ``NONGDAI_OTP_MAX_TRIES`` tries: the attempt
is counted on a side connection *before* the code is compared, so a failed request still counts.

Requesting a new code closes the open one as ``replaced``: a farmer who then types the code of
the earlier SMS is told so (``otp-replaced``) rather than that the code is wrong. The try still
counts, against the newest challenge.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from core import audit, outbox
from core.auth import keys
from core.auth.errors import OtpExpired, OtpInvalid, OtpLocked, OtpReplaced
from core.auth.models import REPLACED, USED, OtpChallenge
from core.auth.sessions import start_session
from core.db import DbSession, rowcount, side_transaction, table, utcnow, uuid7
from core.i18n import _, ngettext
from core.people.models import Farmer
from core.sms import mask_phone

_table = table(OtpChallenge)


def otp_seconds() -> int:
    return int(current_app.config["NONGDAI_OTP_SECONDS"])


def _code_hash(challenge_id: uuid.UUID, code: str) -> str:
    return keys.keyed_hash(keys.OTP_CODE, f"{challenge_id}:{code}")


def _new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def sms_text(code: str, minutes: int) -> str:
    """The SMS with the code, in the language of the request that asked for it: the person
    holding the phone. (The Chinese text, with its full-width punctuation, is in the zh_CN
    catalog.)"""
    return ngettext("[Nongdai] Your code is %(code)s, valid for %(num)d minute. "
                    "Do not tell it to anyone.",
                    "[Nongdai] Your code is %(code)s, valid for %(num)d minutes. "
                    "Do not tell it to anyone.", minutes, code=code)


def request_code(session: DbSession, phone: str, *, sign_up: bool = False) -> OtpChallenge:
    """Close earlier open challenges for ``phone``, open a new one, text the code to a farmer
    (``sign_up``: to any number, for a person who is not a farmer of the bank yet)."""
    now = utcnow()
    phone_hash = keys.phone_hash(phone)
    session.execute(sa.update(_table).where(
        _table.c.phone_hash == phone_hash, _table.c.consumed_at.is_(None)
    ).values(consumed_at=now, closed_reason=REPLACED))
    farmer = session.scalars(sa.select(Farmer).where(
        Farmer.phone == phone, Farmer.is_active.is_(True))).first()
    code = _new_code()
    challenge = OtpChallenge(public_id=uuid7(), phone_hash=phone_hash,
                             farmer_id=farmer.id if farmer else None,
                             expires_at=now + timedelta(seconds=otp_seconds()))
    challenge.code_hash = _code_hash(challenge.public_id, code)
    session.add(challenge)
    session.flush()
    if farmer is not None or sign_up:
        body = sms_text(code, max(1, otp_seconds() // 60))
        outbox.queue_sms(session, phone, body, expires_at=challenge.expires_at)
    audit.record(session, "auth.otp_requested", challenge,
                 summary={"phone": mask_phone(phone), "account": farmer is not None})
    return challenge


def _count_attempt(phone_hash: str) -> Any:
    """Add one attempt to the newest open challenge, committed now; the row after it, or None."""
    with side_transaction() as conn:
        target = conn.scalar(
            sa.select(_table.c.id)
            .where(_table.c.phone_hash == phone_hash, _table.c.consumed_at.is_(None))
            .order_by(_table.c.id.desc()).limit(1))
        if target is None:
            return None
        return conn.execute(
            sa.update(_table).where(_table.c.id == target, _table.c.consumed_at.is_(None))
            .values(attempts=_table.c.attempts + 1)
            .returning(_table.c.id, _table.c.public_id, _table.c.code_hash,
                       _table.c.expires_at, _table.c.attempts, _table.c.farmer_id)
        ).first()


def _max_tries() -> int:
    return int(current_app.config["NONGDAI_OTP_MAX_TRIES"])


def _tries_left(attempt: Any) -> str:
    left = _max_tries() - attempt.attempts
    if left:
        return ngettext("%(num)d try left", "%(num)d tries left", left)
    return _("no tries left, request a new code")


def _check(attempt: Any, code: str, now: datetime) -> None:
    if attempt.expires_at <= now:
        raise OtpExpired()
    if attempt.attempts > _max_tries():
        raise OtpLocked()
    if not _matches(attempt.public_id, attempt.code_hash, code):
        raise OtpInvalid(_("Wrong code; %(tries)s", tries=_tries_left(attempt)))


def _matches(challenge_id: uuid.UUID, code_hash: str, code: str) -> bool:
    return hmac.compare_digest(code_hash, _code_hash(challenge_id, code))


def _replaced(session: DbSession, phone_hash: str, code: str, now: datetime) -> bool:
    """True when ``code`` is that of a challenge of this phone replaced by a newer one (and
    still within its lifetime, so that an old SMS found days later is just a wrong code)."""
    rows = session.execute(sa.select(_table.c.public_id, _table.c.code_hash).where(
        _table.c.phone_hash == phone_hash, _table.c.closed_reason == REPLACED,
        _table.c.expires_at > now)).all()
    return any(_matches(row.public_id, row.code_hash, code) for row in rows)


def _consume(session: DbSession, attempt: Any, now: datetime) -> Farmer:
    """Close the challenge; only one of two parallel verifications can do it."""
    closed = session.execute(sa.update(_table).where(
        _table.c.id == attempt.id, _table.c.consumed_at.is_(None)
    ).values(consumed_at=now, closed_reason=USED))
    farmer = session.get(Farmer, attempt.farmer_id) if attempt.farmer_id else None
    if rowcount(closed) != 1 or farmer is None or not farmer.is_active:
        raise OtpInvalid(_("Wrong code or no code requested for this number"))
    return farmer


def checked_attempt(session: DbSession, phone: str, code: str) -> Any:
    """Count one try of ``code`` for ``phone`` (committed at once) and check it: the
    challenge's row, or the reason it fails (wrong, expired, locked, replaced)."""
    phone_hash = keys.phone_hash(phone)
    attempt = _count_attempt(phone_hash)  # before the request's transaction
    if attempt is None:
        raise OtpInvalid(_("Wrong code or no code requested for this number"))
    now = utcnow()
    try:
        _check(attempt, code, now)
    except OtpInvalid:
        if _replaced(session, phone_hash, code, now):
            raise OtpReplaced(_("This code was replaced by a newer one; use the code in the "
                                "latest SMS (%(tries)s)", tries=_tries_left(attempt))) from None
        raise
    return attempt


def close(session: DbSession, attempt: Any) -> None:
    """Close a checked challenge as used; only one of two parallel uses can."""
    closed = session.execute(sa.update(_table).where(
        _table.c.id == attempt.id, _table.c.consumed_at.is_(None)
    ).values(consumed_at=utcnow(), closed_reason=USED))
    if rowcount(closed) != 1:
        raise OtpInvalid(_("Wrong code or no code requested for this number"))


def verify_code(session: DbSession, phone: str, code: str) -> dict[str, Any]:
    """Check ``code`` for ``phone``; on success close the challenge and sign the farmer in."""
    attempt = checked_attempt(session, phone, code)
    farmer = _consume(session, attempt, utcnow())
    auth, pair = start_session(session, "farmer", farmer.id)
    audit.record(session, "auth.signed_in", auth,
                 summary={"method": "otp", "kind": "farmer", "phone": mask_phone(phone)},
                 actor=f"farmer:{farmer.public_id}")
    return pair
