"""Authenticating an access token: one SELECT from the token to a :class:`Principal`.

Every request pays for this, so it is one round trip: the session, its device (outer join),
the subject from the table the token's ``kind`` names and, for a coordinator, the villages of
their station (outer join, one row per village). The signature proves who issued the token;
the row proves it still holds: session live, device the token names and not revoked, subject
active and the one the token names. Any failure is ``invalid-token``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from core.auth import tokens
from core.auth.errors import InvalidToken
from core.auth.models import AuthSession, Device
from core.auth.sessions import SUBJECTS
from core.authz import Principal
from core.db import DbSession, begin_read, db, table, utcnow
from core.lifecycle import ride_along
from core.people.models import Coordinator, Farmer, Staff
from core.places.models import station_villages


def _grant_column(kind: str) -> Any:
    """What a subject is granted, as one column: a farmer's village, a coordinator's station
    villages (one row each), a staff member's roles."""
    if kind == "farmer":
        return Farmer.village_id
    if kind == "coordinator":
        return station_villages.c.village_id
    return Staff.roles


def _statement(kind: str) -> sa.Select[Any]:
    subject: Any = SUBJECTS[kind]
    stmt = (
        sa.select(AuthSession.id, AuthSession.device_id, AuthSession.expires_at,
                  AuthSession.revoked_at, AuthSession.last_used_at,
                  Device.public_id.label("device_public_id"),
                  Device.revoked_at.label("device_revoked_at"),
                  subject.id.label("subject_id"), subject.public_id.label("subject_public_id"),
                  subject.is_active.label("subject_active"),
                  _grant_column(kind).label("grant"))
        .select_from(AuthSession)
        .outerjoin(Device, Device.id == AuthSession.device_id)
        .join(subject, subject.id == AuthSession.subject_id)
        # The kind picks the subject's table: a session of another kind must match no row.
        .where(AuthSession.public_id == sa.bindparam("session", type_=sa.Uuid),
               AuthSession.subject_kind == kind)
    )
    if kind == "coordinator":
        stmt = stmt.outerjoin(station_villages,
                              station_villages.c.station_id == Coordinator.station_id)
    return stmt


# Built once: every request runs one of these, and building a statement costs more than
# running it from SQLAlchemy's compiled cache.
_STATEMENTS = {kind: _statement(kind) for kind in SUBJECTS}


def principal_query(claims: tokens.AccessClaims) -> tuple[sa.Select[Any], dict[str, Any]]:
    """The one statement behind :func:`authenticate` and its parameters (no row: unknown
    session or kind)."""
    stmt = _STATEMENTS.get(claims.kind)
    if stmt is None:
        raise InvalidToken()
    return stmt, {"session": claims.session}


def _check(row: Any, claims: tokens.AccessClaims, now: datetime) -> None:
    if row.revoked_at is not None or row.expires_at <= now:
        raise InvalidToken()
    if row.device_public_id != claims.device or row.device_revoked_at is not None:
        raise InvalidToken()
    if not row.subject_active or row.subject_public_id != claims.subject:
        raise InvalidToken()


def _grants(kind: str, rows: Sequence[Any]) -> tuple[frozenset[str], frozenset[int]]:
    if kind == "farmer":
        return frozenset({"farmer"}), frozenset({rows[0].grant})
    if kind == "coordinator":
        return frozenset({"coordinator"}), frozenset(r.grant for r in rows if r.grant is not None)
    return frozenset(str(rows[0].grant).split()), frozenset()


def _load(session: DbSession, claims: tokens.AccessClaims) -> tuple[Principal, datetime | None]:
    rows = session.connection().execute(*principal_query(claims)).all()  # no ORM machinery
    if not rows:
        raise InvalidToken()
    first = rows[0]
    _check(first, claims, utcnow())
    roles, villages = _grants(claims.kind, rows)
    principal = Principal(kind=claims.kind, id=first.subject_id,
                          public_id=first.subject_public_id, roles=roles, village_ids=villages,
                          session_id=first.id, device_id=first.device_id)
    return principal, first.last_used_at


def _touch(session_id: int, last_used_at: datetime | None) -> None:
    """Record use at most once per ``NONGDAI_SESSION_TOUCH_SECONDS`` (0 turns it off)."""
    interval = int(current_app.config["NONGDAI_SESSION_TOUCH_SECONDS"])
    now = utcnow()
    cutoff = now - timedelta(seconds=interval)
    if interval <= 0 or (last_used_at is not None and last_used_at >= cutoff):
        return
    # Written with the request's own transaction when it changes state (no commit of its own),
    # else alone after it; best effort either way.
    ride_along(_TOUCH, {"session_id": session_id, "cutoff": cutoff, "now": now})


_sessions = table(AuthSession)
_TOUCH = sa.update(_sessions).where(
    _sessions.c.id == sa.bindparam("session_id"),
    sa.or_(_sessions.c.last_used_at.is_(None),
           _sessions.c.last_used_at < sa.bindparam("cutoff", type_=_sessions.c.last_used_at.type)),
).values(last_used_at=sa.bindparam("now", type_=_sessions.c.last_used_at.type))


def authenticate(token: str) -> Principal:
    """Verify an access token against its live session and active subject (else 401).

    Ends its read-only transaction before returning, so that later side transactions in the
    same request (rate limits, the last-used time) may run.
    """
    claims = tokens.decode_access(token)
    begin_read(db.session)  # SQLite: no write lock, so it never waits for a writer
    try:
        principal, last_used_at = _load(db.session, claims)
    finally:
        db.session.rollback()
    _touch(int(principal.session_id or 0), last_used_at)
    return principal
