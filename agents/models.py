"""What coordinators record in the field: visits (parcel, post-loan) and identity checks.

A :class:`FieldVisit` is immutable (a correction is a new visit). Its ``public_id`` *is* the
``entity_id`` the device generated for it, so the device and the server name it the same way
without a second unique column (``entity_id`` is a synonym); ``created_at`` is when the server
received it (``received_at``), ``recorded_at`` the device's claim (metadata, never an order).

Locations are integers in 1e-7 degrees, as the protocol sends them (no float rounds them).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, synonym

from core.authz import Principal, village_condition
from core.db import Model, Timestamp, fk

PARCEL_VISIT: Final = "parcel_visit"
POST_LOAN_VISIT: Final = "post_loan_visit"
IDENTITY_CHECK: Final = "identity_check"
KINDS: Final = (PARCEL_VISIT, POST_LOAN_VISIT, IDENTITY_CHECK)


class FieldVisit(Model):
    """One visit or identity check a coordinator recorded on a device."""

    __tablename__ = "field_visits"
    __noun__ = "visit"
    __table_args__ = (
        # a coordinator's previous and next visit by recorded time (impossible travel)
        sa.Index("ix_field_visits_coordinator_recorded", "coordinator_id", "recorded_at"),
        # a station's visits, paged by id (the feed's first pull)
        sa.Index("ix_field_visits_village_public", "village_id", "public_id"),
    )

    kind: Mapped[str] = mapped_column(sa.String(20))
    coordinator_id: Mapped[int] = fk("coordinators.id")
    device_id: Mapped[int] = fk("devices.id", index=True)
    farmer_id: Mapped[int] = fk("farmers.id", index=True)
    village_id: Mapped[int] = fk("villages.id")
    assignment_id: Mapped[int | None] = fk("field_assignments.id", nullable=True, index=True)
    parcel_code: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    lat_e7: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    lon_e7: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    accuracy_m: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    crop_seen: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)
    estimated_area_mu: Mapped[Decimal | None] = mapped_column(sa.Numeric(10, 2), nullable=True)
    # the rest of the payload: crop_condition, funds_used_as_declared, risk_flags, verified, notes
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    photos: Mapped[list[str]] = mapped_column(sa.JSON)  # SHA-256 hex digests
    flags: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)  # plausibility: {code, ...}
    recorded_at: Mapped[Timestamp]  # the device's clock

    entity_id: Mapped[uuid.UUID] = synonym("public_id")
    received_at: Mapped[datetime] = synonym("created_at")

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        return village_condition(cls.village_id, principal)
