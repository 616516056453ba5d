"""Refresh-token rotation, with a grace window for answers lost on a weak network.

A refresh token is good for one use. Its successor is not random but derived from it
(:func:`core.auth.keys.successor_token`) and stored hashed like every refresh token. So when a
coordinator's phone on 2G loses the answer to a refresh and retries with the same token within
``NONGDAI_REFRESH_GRACE_SECONDS``, it gets the *same* successor again (recomputed, never stored
in the clear) and a fresh access token, as long as that successor has not been used itself.
Two concurrent refreshes of one token end the same way: the loser of the claim (on PostgreSQL
its ``UPDATE ... WHERE used_at IS NULL`` waits for the winner's commit; on SQLite the second
transaction waits for the first) takes that grace path, and the session lives on.

Any other reuse means the token was copied: the whole session is revoked. The revocation must
outlive the 401, so the request's work is rolled back first and the revocation committed on a
side connection (the rule of :func:`core.db.side_transaction`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session, joinedload

from core import audit
from core.auth import sessions, tokens
from core.auth.errors import InvalidToken, RefreshReused
from core.auth.models import AuthSession, RefreshToken
from core.db import DbSession, rowcount, side_transaction, table, utcnow
from core.lifecycle import rollback

AFTER_GRACE, SUCCESSOR_USED = "after-grace", "successor-used"  # why a reuse revoked


class _Reused(Exception):
    """A spent refresh token presented again outside the grace of a lost answer."""

    def __init__(self, session_id: int, reason: str) -> None:
        super().__init__(reason)
        self.session_id, self.reason = session_id, reason


def grace_seconds() -> int:
    return int(current_app.config["NONGDAI_REFRESH_GRACE_SECONDS"])


def refresh(session: DbSession, presented: str) -> dict[str, Any]:
    """Rotate ``presented`` into its successor and a new access token in the same session.

    A retry within the grace window gets the same successor; any other reuse revokes the
    session for good and answers ``refresh-reused``.
    """
    try:
        return _rotate(session, presented, utcnow())
    except _Reused as reused:
        rollback(session)  # the request's work is void; the side transaction needs that
        _revoke(reused)
        raise RefreshReused() from None


def _rotate(session: DbSession, presented: str, now: datetime) -> dict[str, Any]:
    token = session.scalars(
        sa.select(RefreshToken)
        .options(joinedload(RefreshToken.session).joinedload(AuthSession.device))
        .where(RefreshToken.token_hash == tokens.refresh_hash(presented))).first()
    if token is None:
        raise InvalidToken()
    subject = _live_subject(session, token.session, now)
    if token.used_at is None:
        if token.expires_at <= now:
            raise InvalidToken()
        if _claim(session, token, now):
            return _rotated(session, token, presented, subject, now)
        session.refresh(token, ["used_at"])  # a parallel refresh won: read when it did
    return _retried(session, token, presented, subject, now)


def _live_subject(session: DbSession, auth: AuthSession, now: datetime) -> sessions.Subject:
    """The session's subject, when the session, its device and the subject are all usable."""
    if not auth.is_live(now):
        raise InvalidToken()
    if auth.device is not None and auth.device.revoked_at is not None:
        raise InvalidToken()
    subject = sessions.subject_of(session, auth)
    if subject is None or not subject.is_active:
        raise InvalidToken()
    return subject


def _claim(session: DbSession, token: RefreshToken, now: datetime) -> bool:
    """Spend ``token``; only one of two parallel refreshes can."""
    refresh_tokens = table(RefreshToken)
    spent = session.execute(sa.update(refresh_tokens).where(
        refresh_tokens.c.id == token.id, refresh_tokens.c.used_at.is_(None)
    ).values(used_at=now))
    return rowcount(spent) == 1


def _rotated(session: DbSession, token: RefreshToken, presented: str, subject: sessions.Subject,
             now: datetime) -> dict[str, Any]:
    auth = token.session
    if auth.device is not None:
        auth.device.last_seen_at = now
    pair = sessions.issue(session, auth, subject, now, tokens.successor_of(presented))
    audit.record(session, "auth.token_refreshed", auth, summary={"kind": auth.subject_kind},
                 actor=f"{auth.subject_kind}:{subject.public_id}")
    return pair


def _retried(session: DbSession, token: RefreshToken, presented: str, subject: sessions.Subject,
             now: datetime) -> dict[str, Any]:
    """``token`` was spent already: answer its successor again if this is a retry in grace."""
    auth = token.session
    successor, successor_hash = tokens.successor_of(presented)
    following = session.scalars(sa.select(RefreshToken).where(
        RefreshToken.token_hash == successor_hash,
        RefreshToken.session_id == token.session_id)).first()
    # How long after the rotation this retry came (unknown: not a retry, fail closed).
    after = now - token.used_at if token.used_at is not None else None
    if following is None or after is None or after > timedelta(seconds=grace_seconds()):
        raise _Reused(auth.id, AFTER_GRACE)
    if following.used_at is not None:
        raise _Reused(auth.id, SUCCESSOR_USED)
    audit.record(session, "auth.token_refresh_retried", auth,
                 summary={"kind": auth.subject_kind,
                          "seconds_after_rotation": max(0, round(after.total_seconds()))},
                 actor=f"{auth.subject_kind}:{subject.public_id}")
    ttl = max(0, int((following.expires_at - now).total_seconds()))
    return sessions.answer(auth, subject, now, successor, ttl)


def _revoke(reused: _Reused) -> None:
    """Revoke the session on a side connection, so that it stays revoked after the 401."""
    with side_transaction() as conn, Session(bind=conn,
                                             join_transaction_mode="create_savepoint") as side:
        auth = side.get(AuthSession, reused.session_id)
        auth_sessions = table(AuthSession)
        ended = rowcount(side.execute(sa.update(auth_sessions).where(
            auth_sessions.c.id == reused.session_id, auth_sessions.c.revoked_at.is_(None)
        ).values(revoked_at=utcnow())))
        if auth is not None and ended:
            audit.record(side, "auth.refresh_reused", auth,
                         summary={"kind": auth.subject_kind, "revoked": True,
                                  "reason": reused.reason})
        side.commit()
