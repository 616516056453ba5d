"""Credit policy versions: find the one in force, read its crop table, publish a new one.

A version is immutable: it is created whole (decision model and crop table) and never changed,
so a stored decision can always be explained and replayed on the version that made it. A new
version takes effect at its ``effective_from``, which may not lie in the past: applications
submitted before it keep the version in force when they were submitted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core import audit
from core.db import DbSession, utcnow
from core.errors import Conflict, NotFound
from core.i18n import _, lazy_gettext
from core.places.models import County
from lending.policy import engine
from lending.policy.facts import CropInput
from lending.policy.models import CreditPolicy, CropReference, current_at
from lending.policy.samples import smoke_facts

JDM_DIR = Path(__file__).parent / "jdm"
DEMO_VERSION = "2026.1"
DEMO_EFFECTIVE_FROM = datetime(2026, 1, 1, tzinfo=UTC)
CROP_FIELDS = ("crop", "county_code", "yield_kg_per_mu", "price_fen_per_kg",
               "insured_sum_fen_per_mu", "planting_from", "planting_to", "harvest_from",
               "harvest_to")

# DOMAIN.md's reference figures: yield kg/mu, price fen/kg, insured fen/mu, planting, harvest.
DEMO_CROPS = {
    "rice": (470, 260, 100_000, ("05-01", "05-31"), ("09-01", "10-31")),
    "wheat": (390, 240, 95_000, ("10-01", "10-31"), ("05-20", "06-30")),
    "corn": (420, 230, 95_000, ("04-01", "05-31"), ("09-01", "10-31")),
    "soybean": (130, 480, 60_000, ("05-01", "06-30"), ("09-01", "10-31")),
}


class NoPolicyInForce(NotFound):
    code = "no-credit-policy"
    title = lazy_gettext("No credit policy is in force")


class PolicyVersionExists(Conflict):
    code = "policy-version-exists"
    title = lazy_gettext("This credit policy version already exists")


def current_policy(session: DbSession, at: datetime | None = None) -> CreditPolicy:
    """The version in force at ``at`` (now by default), or :class:`NoPolicyInForce`."""
    policy: CreditPolicy | None = session.scalars(_CURRENT, {"at": at or utcnow()}).first()
    if policy is None:
        raise NoPolicyInForce(_("No credit policy version has taken effect yet."))
    return policy


_CURRENT = current_at(sa.bindparam("at", type_=CreditPolicy.effective_from.type))
"""The version in force at ``:at``, built once (every application reads it)."""


def crop_reference(session: DbSession, policy: CreditPolicy, crop: str,
                   county_code: str) -> CropReference | None:
    """The policy's figures for ``crop`` in ``county_code`` (None: the policy has none)."""
    return session.scalars(sa.select(CropReference).where(
        CropReference.policy_id == policy.id, CropReference.crop == crop,
        CropReference.county_code == county_code)).first()


def crop_input(ref: CropReference | None) -> CropInput | None:
    """A crop reference row as the facts builder takes it."""
    if ref is None:
        return None
    return CropInput(**{name: getattr(ref, name) for name in CROP_FIELDS})


def get_policy(session: DbSession, version: str) -> CreditPolicy:
    policy = session.scalars(sa.select(CreditPolicy).where(CreditPolicy.version == version)
                             ).first()
    if policy is None:
        raise NotFound(_("No credit policy with that version."))
    return policy


# --- publishing a version ------------------------------------------------------------------

def validate_model(version: str, model: Mapping[str, Any]) -> None:
    """Refuse (422 ``credit-policy-invalid``) a model zen cannot compile, that names an
    unknown reason code, or that fails on the smoke cases of :mod:`lending.policy.samples`."""
    try:
        engine.check_model(model, smoke_facts())
    except engine.PolicyError as exc:
        raise engine.PolicyError(_("Version %(version)s cannot be used: %(why)s",
                                   version=version, why=exc.detail),
                                 errors={"decision_model": [exc.detail]}) from exc


def _crop_errors(crops: list[Mapping[str, Any]]) -> dict[str, Any]:
    keys = [f'{row["crop"]}/{row["county_code"]}' for row in crops]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        return {"crops": [_("Each crop and county once; repeated: %(rows)s.",
                            rows=", ".join(repeated))]}
    if not crops:
        return {"crops": [_("A version needs its crop table.")]}
    return {}


def _create(session: DbSession, *, version: str, description: str,
            decision_model: Mapping[str, Any], effective_from: datetime,
            crops: Iterable[Mapping[str, Any]], created_by: str) -> CreditPolicy:
    if session.scalar(sa.select(CreditPolicy.id).where(CreditPolicy.version == version)):
        raise PolicyVersionExists(_("Version %(version)s exists; versions are never changed.",
                                    version=version))
    policy = CreditPolicy(version=version, description=description,
                          decision_model=dict(decision_model), effective_from=effective_from,
                          created_by=created_by)
    policy.crops = [CropReference(**{name: row[name] for name in CROP_FIELDS}) for row in crops]
    session.add(policy)
    session.flush()
    audit.record(session, "credit_policy.create", policy, summary={
        "version": version, "effective_from": effective_from.isoformat(),
        "crops": len(policy.crops)})
    return policy


def create_policy_version(session: DbSession, *, version: str, description: str,
                          decision_model: Mapping[str, Any], crops: list[Mapping[str, Any]],
                          created_by: str, effective_from: datetime | None = None,
                          ) -> CreditPolicy:
    """Publish a new version. It applies to applications submitted from ``effective_from``
    (now when not given; never in the past, so no decided case changes version)."""
    now = utcnow()
    effective = effective_from or now
    errors = _crop_errors(crops)
    if effective < now:
        errors["effective_from"] = [_("Must not be in the past: a version applies to new "
                                      "applications only.")]
    if errors:
        raise engine.PolicyError(_("Version %(version)s cannot be published as sent.",
                                   version=version), errors=errors)
    validate_model(version, decision_model)
    return _create(session, version=version, description=description,
                   decision_model=decision_model, effective_from=effective, crops=crops,
                   created_by=created_by)


# --- the demo version ---------------------------------------------------------------------

@cache
def _demo_text(version: str) -> str:
    return (JDM_DIR / f"credit-{version}.json").read_text(encoding="utf-8")


def demo_model(version: str = DEMO_VERSION) -> dict[str, Any]:
    """A shipped decision model (``lending/policy/jdm/credit-<version>.json``), a fresh copy."""
    return json.loads(_demo_text(version))


def demo_crops(county_codes: Iterable[str]) -> list[dict[str, Any]]:
    """DOMAIN.md's crop figures and calendar for each county."""
    return [{"crop": crop, "county_code": county, "yield_kg_per_mu": kg,
             "price_fen_per_kg": price, "insured_sum_fen_per_mu": insured,
             "planting_from": plant[0], "planting_to": plant[1],
             "harvest_from": harvest[0], "harvest_to": harvest[1]}
            for county in sorted(set(county_codes))
            for crop, (kg, price, insured, plant, harvest) in DEMO_CROPS.items()]


def seed_demo(session: DbSession, county_codes: Iterable[str]) -> CreditPolicy | None:
    """Version 2026.1 with the demo crop table for ``county_codes``, in force since
    2026-01-01; None (and nothing changed) when it exists already."""
    if session.scalar(sa.select(CreditPolicy.id).where(CreditPolicy.version == DEMO_VERSION)):
        return None
    model = demo_model()
    validate_model(DEMO_VERSION, model)
    return _create(session, version=DEMO_VERSION,
                   description="Demo policy: DOMAIN.md's limit, hard rules and scorecard",
                   decision_model=model, effective_from=DEMO_EFFECTIVE_FROM,
                   crops=demo_crops(county_codes), created_by=audit.SYSTEM)


def seeder(session: DbSession) -> str | None:
    """The embedded demo's seeder (``core.demo.register_seeder``): version 2026.1 for every
    registered county; nothing when there is no county yet or the version exists."""
    counties = list(session.scalars(sa.select(County.code).order_by(County.code)))
    if not counties or seed_demo(session, counties) is None:
        return None
    return f"demo data: credit policy {DEMO_VERSION} ({len(counties)} counties)"
