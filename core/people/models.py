"""People: farmers (borrowers), their consents, coordinators (协贷员) and bank staff."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.authz import Principal, village_condition
from core.db import Model, Timestamp, fk, utcnow
from core.places.models import Station, Village


class Farmer(Model):
    """A farming household's borrower, identified by resident ID number and phone.

    The ID number is stored only encrypted (``id_number_ciphertext``); ``id_number_hash`` is a
    keyed HMAC for lookup and deduplication; ``id_number_masked`` is what every response shows.
    """

    __tablename__ = "farmers"
    __noun__ = "farmer"

    name: Mapped[str] = mapped_column(sa.String(100))
    phone: Mapped[str] = mapped_column(sa.String(11), unique=True)
    id_number_ciphertext: Mapped[str] = mapped_column(sa.Text)
    id_number_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    id_number_masked: Mapped[str] = mapped_column(sa.String(18))
    birth_date: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    village_id: Mapped[int] = fk("villages.id", index=True)
    village: Mapped[Village] = relationship()
    is_active: Mapped[bool] = mapped_column(default=True)
    # "verified": a coordinator or staff member saw the person and their ID (everyone they
    # register); "pending": signed up alone from a phone, waiting for a coordinator's check.
    identity_status: Mapped[str] = mapped_column(sa.String(10), default="verified",
                                                 server_default="verified")
    # The language the farmer is written to in (SMS): set from the phone at sign-up.
    language: Mapped[str] = mapped_column(sa.String(10), default="zh_CN",
                                          server_default="zh_CN")

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        return village_condition(cls.village_id, principal, own=lambda p: cls.id == p.id)


class Consent(Model):
    """A farmer's consent (PIPL) for one purpose, e.g. querying their land or insurance records."""

    __tablename__ = "consents"
    __noun__ = "consent"

    farmer_id: Mapped[int] = fk("farmers.id", index=True)
    farmer: Mapped[Farmer] = relationship()
    purpose: Mapped[str] = mapped_column(sa.String(40))
    granted_at: Mapped[Timestamp]
    expires_at: Mapped[Timestamp]
    revoked_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    channel: Mapped[str] = mapped_column(sa.String(20))  # "app" | "coordinator"
    recorded_by: Mapped[str] = mapped_column(sa.String(60))  # principal ref who recorded it
    evidence: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)

    __table_args__ = (sa.Index("ix_consents_farmer_id_purpose", "farmer_id", "purpose"),)

    def status(self, at: datetime | None = None) -> str:
        """``revoked``, ``expired``, ``active`` or (before it was granted) ``pending`` at ``at``."""
        at = at or utcnow()
        if self.revoked_at is not None and self.revoked_at <= at:
            return "revoked"
        if self.expires_at <= at:
            return "expired"
        return "active" if self.granted_at <= at else "pending"

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        farmers = sa.select(Farmer.id).where(Farmer.visible_to(principal))
        return cls.farmer_id.in_(farmers)


class Coordinator(Model):
    """A village coordinator, attached to one station; sees only that station's villages."""

    __tablename__ = "coordinators"
    __noun__ = "coordinator"

    username: Mapped[str] = mapped_column(sa.String(60), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    phone: Mapped[str] = mapped_column(sa.String(11))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    station_id: Mapped[int] = fk("stations.id", index=True)
    station: Mapped[Station] = relationship()
    is_active: Mapped[bool] = mapped_column(default=True)

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        """Staff see every coordinator; a coordinator only itself; farmers none."""
        if principal.is_staff:
            return sa.true()
        if principal.kind == "coordinator":
            return cls.id == principal.id
        return sa.false()


class Staff(Model):
    """A bank employee; roles are any of ``reviewer``, ``approver``, ``admin``."""

    __tablename__ = "staff"
    __noun__ = "staff member"

    username: Mapped[str] = mapped_column(sa.String(60), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    roles: Mapped[str] = mapped_column(sa.String(100))  # space-separated, sorted
    is_active: Mapped[bool] = mapped_column(default=True)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(self.roles.split())

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        """Staff records are visible to staff only."""
        return sa.true() if principal.is_staff else sa.false()
