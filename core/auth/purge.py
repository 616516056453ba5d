"""Job ``auth.purge``: drop what can never be used again.

Expired or revoked sessions go with their refresh tokens (the audit trail keeps the story);
expired refresh tokens and closed or expired one-time-code challenges go too.
"""

from __future__ import annotations

import sqlalchemy as sa

from core.auth.models import AuthSession, OtpChallenge, RefreshToken
from core.db import db, utcnow


def purge() -> dict[str, int]:
    now = utcnow()
    sessions, tokens, challenges = (AuthSession.__table__, RefreshToken.__table__,
                                    OtpChallenge.__table__)
    dead = sa.select(sessions.c.id).where(
        sa.or_(sessions.c.expires_at < now, sessions.c.revoked_at.is_not(None)))
    run = db.session.execute
    counts = {
        "refresh_tokens": run(sa.delete(tokens).where(
            sa.or_(tokens.c.expires_at < now, tokens.c.session_id.in_(dead)))).rowcount,
        "sessions": run(sa.delete(sessions).where(  # a session that died meanwhile: next run
            sessions.c.id.in_(dead),
            ~sa.exists().where(tokens.c.session_id == sessions.c.id))).rowcount,
        "otp_challenges": run(sa.delete(challenges).where(
            sa.or_(challenges.c.expires_at < now, challenges.c.consumed_at.is_not(None)))
        ).rowcount,
    }
    return {name: int(count or 0) for name, count in counts.items()}
