"""The ``extract:`` source: registry records read from imported batch extracts, same types.

For banks that receive files instead of an API (``flask registry import-land|import-insurance``
fills the tables). Reading needs the database, so it happens in the caller's session, where
``service.cached()`` reads the cache: an extract is local data, already "fetched".

An extract that was never imported is not "the holder has nothing": it is a registry that
cannot answer (``RegistryUnavailable``, reason ``error``), and so is one older than
``extract_max_age_days`` when that is set.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from core.db import DbSession, utcnow
from core.i18n import _
from lending.registries.clients import wanted_numbers
from lending.registries.config import INSURANCE, LAND, RegistryConfig
from lending.registries.models import (
    ExtractCertificate,
    ExtractClaim,
    ExtractParcel,
    ExtractPolicy,
    RegistryImport,
)
from lending.registries.types import (
    Certificate,
    Claim,
    InsurancePolicy,
    InsuranceRecord,
    LandRecord,
    Parcel,
    Pledge,
    RegistryUnavailable,
)

CENTI = Decimal("0.01")
MICRO = Decimal("0.000001")
BASIS_POINT = Decimal("0.0001")


def check_fresh(session: DbSession, registry: str, config: RegistryConfig) -> None:
    """Raise unless an extract of ``registry`` was imported (recently enough, if limited)."""
    last = last_import(session, registry)
    if last is None:
        raise RegistryUnavailable(registry, "error",
                                  _("No extract of the %(registry)s registry was imported",
                                    registry=registry))
    max_age = config.extract_max_age_days
    if max_age and utcnow() - last > timedelta(days=max_age):
        raise RegistryUnavailable(registry, "error",
                                  _("The imported %(registry)s extract is out of date",
                                    registry=registry))


def last_import(session: DbSession, registry: str) -> datetime | None:
    return session.scalar(sa.select(sa.func.max(RegistryImport.finished_at))
                          .where(RegistryImport.registry_name == registry))


# --- land ------------------------------------------------------------------------------------

def land_records(session: DbSession, config: RegistryConfig, holder_hash: str,
                 certificate_numbers: Iterable[str], as_of: date) -> LandRecord:
    """As ``LandRegistryClient.records``: the holder's certificates, others' in ``foreign``."""
    check_fresh(session, LAND, config)
    numbers = wanted_numbers(certificate_numbers)
    rows = session.scalars(
        sa.select(ExtractCertificate)
        .where(sa.or_(ExtractCertificate.holder_hash == holder_hash,
                      ExtractCertificate.number.in_(numbers)))
        .options(selectinload(ExtractCertificate.parcels).selectinload(ExtractParcel.pledges))
        .order_by(ExtractCertificate.number)).all()
    certificates = [_certificate(row, as_of) for row in rows]
    return LandRecord(holder_hash=holder_hash,
                      certificates=tuple(c for c in certificates if c.holder_hash == holder_hash),
                      foreign=tuple(c for c in certificates if c.holder_hash != holder_hash))


def _certificate(row: ExtractCertificate, as_of: date) -> Certificate:
    return Certificate(number=row.number, holder_hash=row.holder_hash,
                       holder_name=row.holder_name,
                       parcels=tuple(_parcel(p, as_of) for p in row.parcels))


def _parcel(row: ExtractParcel, as_of: date) -> Parcel:
    return Parcel(
        code=row.code, area_mu=Decimal(row.area_cmu) * CENTI, land_class=row.land_class,
        village_code=row.village_code, latitude=Decimal(row.latitude_e6) * MICRO,
        longitude=Decimal(row.longitude_e6) * MICRO, contract_start=row.contract_start,
        contract_end=row.contract_end,
        pledges=tuple(Pledge(creditor=p.creditor, amount_fen=p.amount_fen, start=p.start,
                             end=p.end, active=p.start <= as_of <= p.end)
                      for p in row.pledges))


# --- insurance -------------------------------------------------------------------------------

def insurance_records(session: DbSession, config: RegistryConfig,
                      holder_hash: str) -> InsuranceRecord:
    """As ``InsuranceRegistryClient.records``: the holder's policies and their claims."""
    check_fresh(session, INSURANCE, config)
    rows = session.scalars(
        sa.select(ExtractPolicy).where(ExtractPolicy.holder_hash == holder_hash)
        .options(selectinload(ExtractPolicy.claims))
        .order_by(ExtractPolicy.start, ExtractPolicy.number)).all()
    return InsuranceRecord(
        holder_hash=holder_hash, policies=tuple(_policy(row) for row in rows),
        claims=tuple(_claim(row.number, claim) for row in rows for claim in row.claims))


def _policy(row: ExtractPolicy) -> InsurancePolicy:
    return InsurancePolicy(
        number=row.number, crop=row.crop, insured_area_mu=Decimal(row.insured_area_cmu) * CENTI,
        sum_insured_fen=row.sum_insured_fen, start=row.start, end=row.end, status=row.status,
        parcel_codes=tuple(row.parcel_codes))


def _claim(policy_number: str, row: ExtractClaim) -> Claim:
    return Claim(policy_number=policy_number, event=row.event, event_date=row.event_date,
                 loss_ratio=Decimal(row.loss_ratio_bp) * BASIS_POINT, status=row.status)
