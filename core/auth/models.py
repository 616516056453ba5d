"""Authentication state: devices, sessions, refresh tokens and one-time-code challenges.

Nothing secret is stored in the clear: refresh tokens as SHA-256 (they are 256-bit random),
one-time codes as a keyed HMAC (a plain hash of six digits is brute-forced in a millisecond),
phone numbers of challenges as a keyed HMAC (a challenge is made for unknown numbers too).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Model, Timestamp, fk, utcnow
from core.people.models import Coordinator

SUBJECT_KINDS = ("farmer", "coordinator", "staff")


class Device(Model):
    """A coordinator's phone. ``public_id`` is the UUID the phone generated for itself."""

    __tablename__ = "devices"
    __noun__ = "device"

    coordinator_id: Mapped[int] = fk("coordinators.id", index=True)
    coordinator: Mapped[Coordinator] = relationship()
    label: Mapped[str] = mapped_column(sa.String(100), default="")
    last_seen_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    revoked_at: Mapped[Timestamp | None] = mapped_column(nullable=True)


class AuthSession(Model):
    """One sign-in: refresh tokens rotate within it; revoking it ends every token it issued."""

    __tablename__ = "auth_sessions"
    __noun__ = "session"
    __table_args__ = (
        sa.CheckConstraint(sa.text("subject_kind IN ('farmer', 'coordinator', 'staff')"),
                           name="subject_kind"),
        sa.Index("ix_auth_sessions_subject", "subject_kind", "subject_id"),
    )

    subject_kind: Mapped[str] = mapped_column(sa.String(12))
    subject_id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"))
    device_id: Mapped[int | None] = fk("devices.id", index=True, nullable=True)
    device: Mapped[Device | None] = relationship()
    expires_at: Mapped[Timestamp] = mapped_column(index=True)
    revoked_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    last_used_at: Mapped[Timestamp | None] = mapped_column(nullable=True)

    def is_live(self, now: datetime | None = None) -> bool:
        return self.revoked_at is None and self.expires_at > (now or utcnow())


class RefreshToken(Model):
    """An opaque refresh token (stored hashed); ``used_at`` is set when it is rotated."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[int] = fk("auth_sessions.id", index=True)
    session: Mapped[AuthSession] = relationship()
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    expires_at: Mapped[Timestamp] = mapped_column(index=True)
    used_at: Mapped[Timestamp | None] = mapped_column(nullable=True)


USED, REPLACED = "used", "replaced"  # why an OtpChallenge was closed


class OtpChallenge(Model):
    """A one-time code sent by SMS. ``consumed_at`` closes it and ``closed_reason`` says why:
    ``used`` (the farmer signed in with it) or ``replaced`` (a newer code was requested), so that
    the code of an earlier SMS can be told apart from a wrong one."""

    __tablename__ = "otp_challenges"
    __table_args__ = (
        sa.CheckConstraint(
            sa.text("closed_reason IS NULL OR closed_reason IN ('used', 'replaced')"),
            name="closed_reason"),
    )

    phone_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    farmer_id: Mapped[int | None] = fk("farmers.id", index=True, nullable=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    expires_at: Mapped[Timestamp] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    consumed_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    closed_reason: Mapped[str | None] = mapped_column(sa.String(12), nullable=True)
