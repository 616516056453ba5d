"""The job ``servicing.relief_poll``: insurance claims on active loans' crops open relief cases.

Daily, for every farmer with an active loan, in chunks of farmers (a commit per chunk):

1. **Read** (no write lock on SQLite): the farmers' active loans, whether their ``insurance``
   consent is in force (a consent revoked or expired: the registry is not asked, and the log
   says so), and any fresh cached answer;
2. **Ask** the insurance registry, one call per farmer (not per loan or parcel), with no
   database transaction open;
3. **Write**: for each loan, the claims on a policy of the loan's crop, assessed (or paid) at a
   loss ratio of at least ``NONGDAI_RELIEF_LOSS_RATIO_PCT`` percent, whose event falls within
   the loan's life (from disbursement to the maturity, and not after the business date), each
   open a case (:func:`lending.servicing.relief.open_for_claim`) unless the loan already has
   an open case (the next run looks again) or the claim already opened one.

Idempotent for a business date and across days: ``(loan, claim)`` is unique, so a second run
opens nothing. A registry that fails is logged and the farmer is asked again the next day;
a failure never opens, pauses or unpauses anything.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from core.db import DbSession, begin_read, db, savepoint, utcnow
from core.jobs import JobRun
from core.people.models import Consent, Farmer
from lending.registries import service as registries
from lending.registries import wire
from lending.registries.config import RegistryConfig
from lending.registries.types import Claim, InsuranceRecord
from lending.servicing import relief
from lending.servicing.models import ACTIVE, Loan
from lending.servicing.relief_models import ReliefCase

log = logging.getLogger(__name__)
CHUNK = 50  # farmers per commit: each is one registry call
CONSENT = "insurance"
CLAIM_STATUSES = ("assessed", "paid")


@dataclass(frozen=True)
class Holder:
    """A farmer as the poll reads them: the keyed ID hash, and the active loans' ids."""

    farmer_id: int
    holder_hash: str
    loan_ids: tuple[int, ...]
    have: registries.Cached


def poll(run: JobRun) -> dict[str, int]:
    """Ask the insurance registry about every farmer with an active loan; open cases."""
    session = db.session
    begin_read(session)
    farmer_ids = list(session.scalars(sa.select(Loan.farmer_id).where(Loan.status == ACTIVE)
                                      .distinct().order_by(Loan.farmer_id)))
    session.rollback()
    config = registries.config_from(current_app.config)
    threshold = Decimal(int(current_app.config["NONGDAI_RELIEF_LOSS_RATIO_PCT"])) / 100
    counts: Counter[str] = Counter()
    for chunk in run.chunks(farmer_ids, CHUNK):
        holders = _read(session, chunk, config, run.business_date, counts)
        answers = {h.farmer_id: registries.fetch(config, h.holder_hash, (), land=False,
                                                 insurance=True, have=h.have) for h in holders}
        for holder in holders:
            _write(session, holder, answers[holder.farmer_id], threshold=threshold,
                   day=run.business_date, counts=counts)
    log.info("relief poll done", extra={"job": run.name, "farmers": len(farmer_ids),
                                        **dict(sorted(counts.items()))})
    return dict(counts)


def _read(session: DbSession, farmer_ids: list[int], config: RegistryConfig, day: date,
          counts: Counter[str]) -> list[Holder]:
    """Phase 1: the chunk's farmers that may be asked, as plain values; ends the read."""
    begin_read(session)
    now = utcnow()
    consented = set(session.scalars(sa.select(Consent.farmer_id).where(
        Consent.farmer_id.in_(farmer_ids), Consent.purpose == CONSENT,
        Consent.granted_at <= now, Consent.expires_at > now,
        sa.or_(Consent.revoked_at.is_(None), Consent.revoked_at > now))))
    loans: dict[int, list[int]] = {}
    for farmer_id, loan_id in session.execute(
            sa.select(Loan.farmer_id, Loan.id).where(Loan.farmer_id.in_(farmer_ids),
                                                     Loan.status == ACTIVE)
            .order_by(Loan.id)):
        loans.setdefault(farmer_id, []).append(loan_id)
    hashes: dict[int, str] = {row.id: row.id_number_hash for row in session.execute(
        sa.select(Farmer.id, Farmer.id_number_hash).where(Farmer.id.in_(farmer_ids)))}
    holders = []
    for farmer_id in farmer_ids:
        if farmer_id not in consented:
            counts["no_consent"] += 1
            log.info("relief poll: no insurance consent in force, registry not asked",
                     extra={"farmer_id": farmer_id})
            continue
        have = registries.cached(session, hashes[farmer_id], (), land=False, insurance=True,
                                 config=config, as_of=day)
        holders.append(Holder(farmer_id, hashes[farmer_id], tuple(loans.get(farmer_id, ())),
                              have))
    session.rollback()
    return holders


def _write(session: DbSession, holder: Holder, found: registries.Lookup, *,
           threshold: Decimal, day: date, counts: Counter[str]) -> None:
    """Phase 3: the farmer's loans against the answer (nothing at all when it failed)."""
    if found.failures or found.insurance is None:
        counts["registry_failed"] += 1
        log.warning("relief poll: insurance registry unavailable, retried next run",
                    extra={"farmer_id": holder.farmer_id,
                           "reasons": sorted(f.reason for f in found.failures.values())})
        return
    counts["asked"] += 1
    registries.remember(session, found)
    for loan_id in holder.loan_ids:
        loan = session.get(Loan, loan_id)
        if loan is None or loan.status != ACTIVE:
            continue
        for reference, claim in qualifying(found.insurance, loan, threshold, day):
            counts[_open(session, loan, reference, claim, day)] += 1


def qualifying(record: InsuranceRecord, loan: Loan, threshold: Decimal,
               day: date) -> list[tuple[str, dict[str, Any]]]:
    """The claims that call for relief on ``loan``: (reference, the claim as JSON), oldest
    event first."""
    crops = {p.number: p.crop for p in record.policies}
    start = loan.disbursed_on or day
    end = min(day, loan.maturity_date or day)
    found = []
    for claim in sorted(record.claims, key=lambda c: (c.event_date, c.policy_number)):
        if (crops.get(claim.policy_number) == loan.crop and claim.status in CLAIM_STATUSES
                and claim.loss_ratio >= threshold and start <= claim.event_date <= end):
            found.append((reference_of(claim),
                          {**wire.claim_to_json(claim), "crop": loan.crop}))
    return found


def reference_of(claim: Claim) -> str:
    """A claim's identity: the registry gives none, so its policy, event and day."""
    return f"{claim.policy_number}:{claim.event}:{claim.event_date.isoformat()}"


def _open(session: DbSession, loan: Loan, reference: str, claim: dict[str, Any],
          day: date) -> str:
    if session.scalar(sa.select(ReliefCase.id).where(
            ReliefCase.loan_id == loan.id, ReliefCase.claim_reference == reference)):
        return "known"
    if relief.open_case(session, loan) is not None:
        return "waiting"  # one open case per loan: this claim is looked at again next run
    try:
        with savepoint(session):
            relief.open_for_claim(session, loan, reference=reference, claim=claim, day=day)
    except IntegrityError:
        return "known"
    return "opened"
