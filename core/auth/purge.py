"""Job ``auth.purge``: drop what can never be used again.

Expired or revoked sessions go with their refresh tokens (the audit trail keeps the story);
expired refresh tokens and closed or expired one-time-code challenges go too, except a
challenge replaced by a newer code, kept until it expires so that its code is recognised
(``otp-replaced``) rather than called wrong.
"""

from __future__ import annotations

import sqlalchemy as sa

from core.auth.models import REPLACED, AuthSession, OtpChallenge, RefreshToken
from core.db import db, rowcount, table, utcnow
from core.jobs import JobRun


def purge(_run: JobRun | None = None) -> dict[str, int]:
    now = utcnow()
    sessions, tokens, challenges = table(AuthSession), table(RefreshToken), table(OtpChallenge)
    dead = sa.select(sessions.c.id).where(
        sa.or_(sessions.c.expires_at < now, sessions.c.revoked_at.is_not(None)))
    closed = sa.and_(challenges.c.consumed_at.is_not(None), sa.or_(
        challenges.c.closed_reason.is_(None), challenges.c.closed_reason != REPLACED))
    run = db.session.execute
    counts = {
        "refresh_tokens": run(sa.delete(tokens).where(
            sa.or_(tokens.c.expires_at < now, tokens.c.session_id.in_(dead)))),
        "sessions": run(sa.delete(sessions).where(  # a session that died meanwhile: next run
            sessions.c.id.in_(dead),
            ~sa.exists().where(tokens.c.session_id == sessions.c.id))),
        "otp_challenges": run(sa.delete(challenges).where(
            sa.or_(challenges.c.expires_at < now, closed))),
    }
    return {name: rowcount(result) for name, result in counts.items()}
