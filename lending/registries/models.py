"""Registry tables: the short cache of answers, the imported batch extracts, and the bank's
copy of its farmers' parcels.

Extract rows are keyed by the registry's own natural keys (certificate number, parcel code,
policy number...), so importing the same file twice changes nothing. Decimal quantities are
stored as scaled integers (hundredths of a mu, millionths of a degree, basis points of a loss
ratio), exact on every backend, as money is in fen. Cache and extract rows never leave the
server; :class:`LandParcel` rows are what coordinators' devices receive (``lending.devicefeed``).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, Fen, IntPK, Model, Timestamp, UTCDateTime, fk, utcnow


class RegistryCache(Base):
    """A registry's answer to one request, reused until ``expires_at`` (short: minutes).

    ``request_key`` is a SHA-256 of the registry, the holder hash and the certificate numbers
    asked for; ``body`` is the answer in the wire format (``lending.registries.wire``).
    Expired rows are deleted by the ``registries.purge_cache`` job.
    """

    __tablename__ = "registry_cache"
    __table_args__ = (sa.UniqueConstraint("registry_name", "request_key"),)

    id: Mapped[IntPK]
    registry_name: Mapped[str] = mapped_column(sa.String(20))  # "land" | "insurance"
    request_key: Mapped[str] = mapped_column(sa.String(64))
    body: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    fetched_at: Mapped[Timestamp]
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class RegistryImport(Model):
    """One run of ``flask registry import-land|import-insurance``: what came in, how it went."""

    __tablename__ = "registry_imports"
    __noun__ = "registry import"

    registry_name: Mapped[str] = mapped_column(sa.String(20))
    file_name: Mapped[str] = mapped_column(sa.String(200))
    file_sha256: Mapped[str] = mapped_column(sa.String(64))
    started_at: Mapped[Timestamp]
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lines: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    inserted: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)

    __table_args__ = (sa.Index("ix_registry_imports_registry_name_finished_at",
                               "registry_name", "finished_at"),)


class ExtractCertificate(Base):
    """A land-contract certificate from an imported land-registry extract."""

    __tablename__ = "registry_certificates"

    id: Mapped[IntPK]
    number: Mapped[str] = mapped_column(sa.String(40), unique=True)
    holder_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    holder_name: Mapped[str] = mapped_column(sa.String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    parcels: Mapped[list[ExtractParcel]] = relationship(
        back_populates="certificate", order_by="ExtractParcel.code")


class ExtractParcel(Base):
    """A parcel (地块) of an extract certificate; the parcel code is unique nationally."""

    __tablename__ = "registry_parcels"

    id: Mapped[IntPK]
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    certificate_id: Mapped[int] = fk("registry_certificates.id", index=True)
    certificate: Mapped[ExtractCertificate] = relationship(back_populates="parcels")
    area_cmu: Mapped[int]  # hundredths of a mu
    land_class: Mapped[str] = mapped_column(sa.String(30))
    village_code: Mapped[str] = mapped_column(sa.String(12))
    latitude_e6: Mapped[int]  # millionths of a degree
    longitude_e6: Mapped[int]
    contract_start: Mapped[date]
    contract_end: Mapped[date]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    pledges: Mapped[list[ExtractPledge]] = relationship(
        back_populates="parcel", order_by="ExtractPledge.start")


class ExtractPledge(Base):
    """A registered pledge on an extract parcel; active while its term covers the day."""

    __tablename__ = "registry_pledges"
    __table_args__ = (sa.UniqueConstraint("parcel_id", "creditor", "start"),)

    id: Mapped[IntPK]
    parcel_id: Mapped[int] = fk("registry_parcels.id")
    parcel: Mapped[ExtractParcel] = relationship(back_populates="pledges")
    creditor: Mapped[str] = mapped_column(sa.String(200))
    amount_fen: Mapped[Fen]
    start: Mapped[date]
    end: Mapped[date]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExtractPolicy(Base):
    """An agricultural-insurance policy from an imported insurance extract."""

    __tablename__ = "registry_policies"

    id: Mapped[IntPK]
    number: Mapped[str] = mapped_column(sa.String(40), unique=True)
    holder_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    crop: Mapped[str] = mapped_column(sa.String(30))
    insured_area_cmu: Mapped[int]  # hundredths of a mu
    sum_insured_fen: Mapped[Fen]
    start: Mapped[date]
    end: Mapped[date]
    status: Mapped[str] = mapped_column(sa.String(20))
    parcel_codes: Mapped[list[str]] = mapped_column(sa.JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claims: Mapped[list[ExtractClaim]] = relationship(
        back_populates="policy", order_by="ExtractClaim.event_date")


class ExtractClaim(Base):
    """A claim on an extract policy, keyed by policy, event and event date."""

    __tablename__ = "registry_claims"
    __table_args__ = (sa.UniqueConstraint("policy_id", "event", "event_date"),)

    id: Mapped[IntPK]
    policy_id: Mapped[int] = fk("registry_policies.id")
    policy: Mapped[ExtractPolicy] = relationship(back_populates="claims")
    event: Mapped[str] = mapped_column(sa.String(30))
    event_date: Mapped[date]
    loss_ratio_bp: Mapped[int]  # basis points: 3500 = 0.35
    status: Mapped[str] = mapped_column(sa.String(20))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LandParcel(Base):
    """A registered parcel of one of the bank's farmers, as the registry last answered it.

    Written by :mod:`lending.registries.parcels` from every successful land answer (HTTP or an
    imported extract), keyed by the nationally unique parcel code: the devices of the farmer's
    village pull these with the farmer, and the plausibility checks compare a visit's GPS fix
    with ``lat_e7``/``lon_e7`` (1e-7 degrees, the protocol's unit: integers, no floats).
    ``village_id`` is the farmer's village (the scope a device pulls), not the parcel's.
    """

    __tablename__ = "land_parcels"

    id: Mapped[IntPK]
    farmer_id: Mapped[int] = fk("farmers.id", index=True)
    village_id: Mapped[int] = fk("villages.id")
    certificate_number: Mapped[str] = mapped_column(sa.String(40))
    parcel_code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    area_mu: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))
    land_class: Mapped[str] = mapped_column(sa.String(30))
    lat_e7: Mapped[int]
    lon_e7: Mapped[int]
    contract_end: Mapped[date]
    pledged: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(sa.String(10))  # "registry" | "extract"
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
