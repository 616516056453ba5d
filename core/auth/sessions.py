"""Sessions: opening one, issuing its token pairs, signing out, describing the caller.

A session is one sign-in. Its refresh tokens rotate (:mod:`core.auth.rotation`), each use
extending it; access tokens are checked against it on every request
(:mod:`core.auth.principals`), so revoking it ends every token it issued at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from flask import current_app

from core import audit
from core.auth import tokens
from core.auth.errors import InvalidToken
from core.auth.models import AuthSession, Device, RefreshToken
from core.authz import Principal
from core.db import DbSession, utcnow
from core.people.models import Coordinator, Farmer, Staff
from core.places.models import Village

SUBJECTS: dict[str, type[Farmer] | type[Coordinator] | type[Staff]] = {
    "farmer": Farmer, "coordinator": Coordinator, "staff": Staff}

Subject = Farmer | Coordinator | Staff


def refresh_seconds(device_bound: bool) -> int:
    prefix = "NONGDAI_DEVICE_" if device_bound else "NONGDAI_"
    return int(current_app.config[f"{prefix}REFRESH_TOKEN_SECONDS"])


def subject_of(session: DbSession, auth: AuthSession) -> Subject | None:
    return cast("Subject | None", session.get(SUBJECTS[auth.subject_kind], auth.subject_id))


def answer(auth: AuthSession, subject: Subject, now: datetime, refresh_token: str,
           refresh_ttl: int) -> dict[str, Any]:
    """The token answer: a new access token for ``auth`` beside ``refresh_token``."""
    device = auth.device.public_id if auth.device is not None else None
    claims = tokens.AccessClaims(auth.subject_kind, subject.public_id, auth.public_id, device)
    return {
        "access_token": tokens.encode_access(claims, now),
        "token_type": "Bearer",
        "expires_in": tokens.access_seconds(),
        "refresh_token": refresh_token,
        "refresh_expires_in": refresh_ttl,
    }


def issue(session: DbSession, auth: AuthSession, subject: Subject, now: datetime,
          refresh: tuple[str, str]) -> dict[str, Any]:
    """Store ``refresh`` (the token and its hash) in ``auth``, extending the session, and
    answer with it and a new access token."""
    ttl = refresh_seconds(auth.device_id is not None)
    auth.expires_at = now + timedelta(seconds=ttl)
    token, token_hash = refresh
    session.add(RefreshToken(session=auth, token_hash=token_hash, expires_at=auth.expires_at))
    session.flush()
    return answer(auth, subject, now, token, ttl)


def start_session(session: DbSession, kind: str, subject_id: int,
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
    return auth, issue(session, auth, subject, now, tokens.new_refresh_token())


def issue_tokens(session: DbSession, kind: str, subject_id: int,
                 device_id: int | None = None) -> dict[str, Any]:
    return start_session(session, kind, subject_id, device_id)[1]


def sign_out(session: DbSession, session_id: int | None) -> AuthSession:
    """Revoke the caller's session: its access tokens stop working on their next use."""
    auth = session.get(AuthSession, session_id) if session_id is not None else None
    if auth is None:
        raise InvalidToken()
    auth.revoked_at = auth.revoked_at or utcnow()
    session.flush()
    audit.record(session, "auth.signed_out", auth, summary={"kind": auth.subject_kind})
    return auth


def whoami(session: DbSession, principal: Principal) -> dict[str, Any]:
    """The caller as ``GET /auth/me`` shows them."""
    subject = cast("Subject | None", session.get(SUBJECTS[principal.kind], principal.id))
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
