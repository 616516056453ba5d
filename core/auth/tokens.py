"""Token formats: short-lived HS256 access tokens (JWT) and opaque refresh tokens.

Access tokens carry ``sub`` (the subject's public id), ``kind``, ``sid`` (the session's public
id) and ``did`` (the device's public id, or null). They are signed with a key derived from
``SECRET_KEY``; every use is still checked against the session, so revocation is immediate.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from flask import current_app

from core import security
from core.auth import keys
from core.auth.errors import InvalidToken

ISSUER = "nongdai"
AUDIENCE = "nongdai-api"
ALGORITHM = "HS256"
REQUIRED = ["iss", "aud", "exp", "iat", "jti", "sub", "kind", "sid"]


@dataclass(frozen=True)
class AccessClaims:
    kind: str
    subject: uuid.UUID
    session: uuid.UUID
    device: uuid.UUID | None


def access_seconds() -> int:
    return int(current_app.config["NONGDAI_ACCESS_TOKEN_SECONDS"])


def encode_access(claims: AccessClaims, now: datetime) -> str:
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=access_seconds()),
        "jti": uuid.uuid4().hex,
        "sub": str(claims.subject),
        "kind": claims.kind,
        "sid": str(claims.session),
        "did": str(claims.device) if claims.device else None,
    }
    return jwt.encode(payload, keys.derive(keys.ACCESS_TOKEN), algorithm=ALGORITHM)


def decode_access(token: str) -> AccessClaims:
    """Verify signature, issuer, audience and expiry; any failure is ``invalid-token``."""
    try:
        payload = jwt.decode(token, keys.derive(keys.ACCESS_TOKEN), algorithms=[ALGORITHM],
                             audience=AUDIENCE, issuer=ISSUER, options={"require": REQUIRED})
        device = payload.get("did")
        return AccessClaims(kind=str(payload["kind"]), subject=uuid.UUID(payload["sub"]),
                            session=uuid.UUID(payload["sid"]),
                            device=uuid.UUID(device) if device else None)
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidToken() from exc


def refresh_hash(token: str) -> str:
    """What is stored for a refresh token: SHA-256 is enough for 256 random bits."""
    return security.sha256_hex(token)


def new_refresh_token() -> tuple[str, str]:
    """A fresh opaque refresh token (a session's first) and the hash stored for it."""
    token = secrets.token_urlsafe(32)
    return token, refresh_hash(token)


def successor_of(token: str) -> tuple[str, str]:
    """The refresh token that replaces ``token`` on rotation, and its hash (see
    :func:`core.auth.keys.successor_token`)."""
    successor = keys.successor_token(token)
    return successor, refresh_hash(successor)
