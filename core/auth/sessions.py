"""Sessions: issuing token pairs, authenticating access tokens, rotating refresh tokens.

A refresh token is good for one use; presenting a used one means it was copied, so the whole
session is revoked (on a side connection, so the revocation outlives the 401).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from core import audit
from core.auth import keys, tokens
from core.auth.errors import InvalidToken, RefreshReused
from core.auth.models import AuthSession, Device, RefreshToken
from core.authz import Principal
from core.db import db, side_transaction, utcnow
from core.people.models import Coordinator, Farmer, Staff
from core.places.models import Village, station_villages

log = logging.getLogger(__name__)

SUBJECTS: dict[str, type[Farmer] | type[Coordinator] | type[Staff]] = {
    "farmer": Farmer, "coordinator": Coordinator, "staff": Staff}

Subject = Farmer | Coordinator | Staff


def refresh_seconds(device_bound: bool) -> int:
    prefix = "NONGDAI_DEVICE_" if device_bound else "NONGDAI_"
    return int(current_app.config[f"{prefix}REFRESH_TOKEN_SECONDS"])


def subject_of(session: Any, auth: AuthSession) -> Subject | None:
    return session.get(SUBJECTS[auth.subject_kind], auth.subject_id)


def _pair(session: Any, auth: AuthSession, subject: Subject, now: datetime) -> dict[str, Any]:
    """A new refresh token in ``auth`` (extending it) and an access token for it."""
    ttl = refresh_seconds(auth.device_id is not None)
    auth.expires_at = now + timedelta(seconds=ttl)
    refresh, token_hash = tokens.new_refresh_token()
    session.add(RefreshToken(session=auth, token_hash=token_hash, expires_at=auth.expires_at))
    session.flush()
    device = auth.device.public_id if auth.device is not None else None
    claims = tokens.AccessClaims(auth.subject_kind, subject.public_id, auth.public_id, device)
    return {
        "access_token": tokens.encode_access(claims, now),
        "token_type": "Bearer",
        "expires_in": tokens.access_seconds(),
        "refresh_token": refresh,
        "refresh_expires_in": ttl,
    }


def start_session(session: Any, kind: str, subject_id: int,
                  device_id: int | None = None) -> tuple[AuthSession, dict[str, Any]]:
    """Open a session for a subject already authenticated; returns it and its first tokens."""
    if kind not in SUBJECTS:
        raise ValueError(f"unknown subject kind {kind!r}")
    now = utcnow()
    auth = AuthSession(subject_kind=kind, subject_id=subject_id, device_id=device_id,
                       expires_at=now)
    session.add(auth)
    session.flush()
    subject = subject_of(session, auth)
    if subject is None:
        raise ValueError(f"no {kind} with id {subject_id}")
    return auth, _pair(session, auth, subject, now)


def issue_tokens(session: Any, kind: str, subject_id: int,
                 device_id: int | None = None) -> dict[str, Any]:
    return start_session(session, kind, subject_id, device_id)[1]


# --- authenticating access tokens -----------------------------------------------------------

def _grants(session: Any, subject: Subject) -> tuple[frozenset[str], frozenset[int]]:
    if isinstance(subject, Farmer):
        return frozenset({"farmer"}), frozenset({subject.village_id})
    if isinstance(subject, Coordinator):
        villages = session.scalars(sa.select(station_villages.c.village_id).where(
            station_villages.c.station_id == subject.station_id)).all()
        return frozenset({"coordinator"}), frozenset(villages)
    return subject.role_set, frozenset()


def _load(session: Any, claims: tokens.AccessClaims) -> tuple[Principal, datetime | None]:
    row = session.execute(
        sa.select(AuthSession, Device)
        .outerjoin(Device, AuthSession.device_id == Device.id)
        .where(AuthSession.public_id == claims.session)
    ).first()
    if row is None:
        raise InvalidToken()
    auth, device = row
    if not auth.is_live() or auth.subject_kind != claims.kind:
        raise InvalidToken()
    if (device.public_id if device else None) != claims.device or (
            device is not None and device.revoked_at is not None):
        raise InvalidToken()
    subject = subject_of(session, auth)
    if subject is None or not subject.is_active or subject.public_id != claims.subject:
        raise InvalidToken()
    roles, villages = _grants(session, subject)
    principal = Principal(kind=auth.subject_kind, id=subject.id, public_id=subject.public_id,
                          roles=roles, village_ids=villages, session_id=auth.id,
                          device_id=auth.device_id)
    return principal, auth.last_used_at


def _touch(session_id: int, last_used_at: datetime | None) -> None:
    """Record use at most once per ``NONGDAI_SESSION_TOUCH_SECONDS`` (0 turns it off)."""
    interval = int(current_app.config["NONGDAI_SESSION_TOUCH_SECONDS"])
    now = utcnow()
    cutoff = now - timedelta(seconds=interval)
    if interval <= 0 or (last_used_at is not None and last_used_at >= cutoff):
        return
    table = AuthSession.__table__
    try:
        with side_transaction() as conn:
            conn.execute(sa.update(table).where(
                table.c.id == session_id,
                sa.or_(table.c.last_used_at.is_(None), table.c.last_used_at < cutoff),
            ).values(last_used_at=now))
    except sa.exc.OperationalError:  # best effort: a busy database must not fail a read
        log.info("session last-used time not recorded", extra={"session": session_id})


def authenticate(token: str) -> Principal:
    """Verify an access token against its live session and active subject (else 401).

    Ends its read-only transaction before returning, so that later side transactions in the
    same request (rate limits, idempotency claims) never wait on it.
    """
    try:
        principal, last_used_at = _load(db.session, tokens.decode_access(token))
    finally:
        db.session.rollback()
    _touch(int(principal.session_id or 0), last_used_at)
    return principal


# --- refresh and sign-out -------------------------------------------------------------------

def _revoke_if_reused(token_hash: str) -> bool:
    """If this refresh token was used before, revoke its session for good. True when reused."""
    with side_transaction() as conn, Session(bind=conn,
                                             join_transaction_mode="create_savepoint") as side:
        used = side.scalars(sa.select(RefreshToken).where(
            RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_not(None))).first()
        if used is None:
            return False
        auth = used.session
        if auth.revoked_at is None:
            auth.revoked_at = utcnow()
            audit.record(side, "auth.refresh_reused", auth,
                         summary={"kind": auth.subject_kind, "revoked": True})
        side.commit()
        return True


def _claim(session: Any, token: RefreshToken, now: datetime) -> bool:
    table = RefreshToken.__table__
    result = session.execute(sa.update(table).where(
        table.c.id == token.id, table.c.used_at.is_(None)).values(used_at=now))
    return result.rowcount == 1


def refresh(session: Any, refresh_token: str) -> dict[str, Any]:
    """Rotate: spend ``refresh_token`` and return a new pair in the same session."""
    token_hash = keys.sha256_hex(refresh_token)
    if _revoke_if_reused(token_hash):  # before the request's own transaction begins
        raise RefreshReused()
    now = utcnow()
    token = session.scalars(sa.select(RefreshToken).where(
        RefreshToken.token_hash == token_hash)).first()
    if token is None or token.expires_at <= now or not token.session.is_live(now):
        raise InvalidToken()
    if not _claim(session, token, now):  # a parallel refresh won the race
        raise RefreshReused()
    auth = token.session
    subject = subject_of(session, auth)
    if subject is None or not subject.is_active:
        raise InvalidToken()
    if auth.device is not None:
        if auth.device.revoked_at is not None:
            raise InvalidToken()
        auth.device.last_seen_at = now
    pair = _pair(session, auth, subject, now)
    audit.record(session, "auth.token_refreshed", auth, summary={"kind": auth.subject_kind},
                 actor=f"{auth.subject_kind}:{subject.public_id}")
    return pair


def sign_out(session: Any, session_id: int | None) -> AuthSession:
    """Revoke the caller's session: its access tokens stop working on their next use."""
    auth = session.get(AuthSession, session_id) if session_id is not None else None
    if auth is None:
        raise InvalidToken()
    auth.revoked_at = auth.revoked_at or utcnow()
    session.flush()
    audit.record(session, "auth.signed_out", auth, summary={"kind": auth.subject_kind})
    return auth


def whoami(session: Any, principal: Principal) -> dict[str, Any]:
    """The caller as ``GET /auth/me`` shows them."""
    subject = session.get(SUBJECTS[principal.kind], principal.id)
    device = session.get(Device, principal.device_id) if principal.device_id else None
    villages = session.scalars(sa.select(Village.public_id).where(
        Village.id.in_(sorted(principal.village_ids))).order_by(Village.code)).all()
    return {
        "kind": principal.kind,
        "id": principal.public_id,
        "name": subject.name if subject else "",
        "roles": sorted(principal.roles),
        "device_id": device.public_id if device else None,
        "village_ids": list(villages),
    }
