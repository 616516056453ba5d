"""Job ``auth.purge``: dead sessions, their tokens and closed challenges are deleted."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from core import jobs
from core.auth.models import AuthSession, OtpChallenge, RefreshToken
from core.auth.sessions import start_session
from core.db import utcnow
from tests import factories


def _challenge(session, expires_in: int, closed: str | None = None) -> OtpChallenge:
    now = utcnow()
    row = OtpChallenge(phone_hash="0" * 64, code_hash="1" * 64,
                       expires_at=now + timedelta(seconds=expires_in),
                       consumed_at=now if closed else None,
                       closed_reason=closed if closed in ("used", "replaced") else None)
    session.add(row)
    return row


def test_purge_keeps_only_what_can_still_be_used(app, session):
    staff = factories.staff(session)
    live, _ = start_session(session, "staff", staff.id)
    expired, _ = start_session(session, "staff", staff.id)
    revoked, _ = start_session(session, "staff", staff.id)
    expired.expires_at = utcnow() - timedelta(seconds=1)
    revoked.revoked_at = utcnow()
    open_challenge = _challenge(session, 300)
    replaced = _challenge(session, 300, closed="replaced")  # its code is still recognised
    _challenge(session, -1)
    _challenge(session, -1, closed="replaced")
    _challenge(session, 300, closed="used")
    _challenge(session, 300, closed="before-0002")  # closed before reasons were recorded
    session.flush()
    live_id, kept = live.id, [open_challenge.id, replaced.id]
    session.commit()

    assert "auth.purge" in app.extensions["nongdai_jobs"]
    assert jobs.run("auth.purge") == "ok"

    assert session.scalars(sa.select(AuthSession.id)).all() == [live_id]
    assert session.scalars(sa.select(RefreshToken.session_id)).all() == [live_id]
    assert session.scalars(sa.select(OtpChallenge.id).order_by(OtpChallenge.id)).all() == kept
