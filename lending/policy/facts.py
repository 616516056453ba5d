"""The decision's input snapshot: plain inputs in, one JSON-safe dict out.

:func:`build_facts` is a pure function. It does what is bookkeeping rather than policy: it
matches the declared parcels with the land registry, the insurance policies and the field
check, and states per parcel what each source says. Every threshold, rate and weight is the
policy's (the JDM); nothing here decides. The snapshot is stored with each decision and is all
the engine needs to reach the same result again.

Per parcel (``facts["parcels"][i]``):

- ``land_status``: ``held`` (on a certificate of the applicant), ``foreign`` (on a certificate
  held by someone else), ``not_found`` (the registry knows no such certificate and parcel) or
  ``unknown`` (the land registry could not be asked).
- ``declared_mu``, ``registry_mu``, ``insured_mu``, ``field_mu``: the area each source gives,
  ``0`` when the source says nothing (``field_estimated`` tells a measured ``0`` apart).
- ``verified_mu``: the area a limit may count, ``min(declared, registry)``, and also at most
  the coordinator's estimate when the field check measured one (what was seen on the ground
  can lower the area, never raise it past the registry). ``0`` unless the parcel is ``held``.
- ``insured``: covered by an active policy for the application's crop that starts before the
  loan's maturity and runs at least until the crop's harvest or the maturity, whichever comes
  first (the loan is repaid from that harvest). ``insured_mu`` is the parcel's share of the
  policy's insured area (shared in proportion to registry area when a policy lists several
  parcels).
- ``tenure_days``: days from the loan's maturity to the end of the land contract (negative
  when the contract ends first); ``0`` unless ``held``.
- ``pledged_registry`` (an active pledge in the land registry), ``pledged_here`` (securing an
  active loan at this bank), ``field_visited`` and ``crop_seen``.

A parcel code declared again is listed once in ``parcels`` and its repeats in ``duplicates``.

Numbers: areas are rounded down to 0.01 mu and held in ``[0, 1,000,000]``, ratios to 0.0001 in
``[0, 1]``; they are JSON numbers whose decimal text is exact (the engine parses the text as a
decimal). Odd data (a negative area, a duplicate, a registry answer that names other parcels)
becomes a fact the policy turns into a reason, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from lending.registries.types import Certificate, InsurancePolicy, InsuranceRecord, LandRecord

FACTS_VERSION = 1
SOURCES = ("land", "insurance")
MAX_AREA_MU = Decimal(1_000_000)
_CENT = Decimal("0.01")
_RATIO = Decimal("0.0001")
_HUGE = Decimal(10) ** 12


@dataclass(frozen=True)
class DeclaredParcel:
    """A parcel as the application names it."""

    certificate_number: str
    parcel_code: str
    declared_area_mu: Decimal


@dataclass(frozen=True)
class ApplicationInput:
    amount_fen: int
    term_months: int
    crop: str
    purpose: str
    submitted_on: date
    maturity_on: date
    parcels: tuple[DeclaredParcel, ...] = ()


@dataclass(frozen=True)
class ApplicantInput:
    """What the bank knows of the borrower. ``identity_verified`` is false for a pending
    profile; ``prior_approved_loans == 0`` is a first-time borrower; ``pledged_parcels`` are
    parcel codes securing an active loan at this bank."""

    holder_hash: str
    identity_verified: bool
    prior_approved_loans: int
    open_default: bool
    pledged_parcels: frozenset[str] = frozenset()
    age: int | None = None


@dataclass(frozen=True)
class ProductInput:
    code: str
    max_amount_fen: int
    auto_ceiling_fen: int


@dataclass(frozen=True)
class CropInput:
    """The crop reference row for (crop, county) of the policy version; windows are "MM-DD"."""

    crop: str
    county_code: str
    yield_kg_per_mu: int
    price_fen_per_kg: int
    insured_sum_fen_per_mu: int
    planting_from: str
    planting_to: str
    harvest_from: str
    harvest_to: str


@dataclass(frozen=True)
class ParcelCheck:
    """What a coordinator saw on one parcel."""

    parcel_code: str
    visited: bool
    crop_seen: bool
    estimated_area_mu: Decimal | None = None


@dataclass(frozen=True)
class FieldCheckInput:
    """A coordinator's completed field check."""

    identity_verified: bool
    parcels: tuple[ParcelCheck, ...] = field(default_factory=tuple)


# --- numbers --------------------------------------------------------------------------------

def _decimal(value: Any) -> Decimal:
    """A finite decimal of sane size: what is not a number reads as 0, and magnitudes are held
    to 10^12 so that no later product can overflow."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return Decimal(0)
    if not number.is_finite():
        return Decimal(0)
    return max(min(number, _HUGE), -_HUGE)


def _area(value: Any) -> Decimal:
    """An area held to ``[0, MAX_AREA_MU]`` and rounded down to 0.01 mu."""
    number = min(max(_decimal(value), Decimal(0)), MAX_AREA_MU)
    return number.quantize(_CENT, rounding=ROUND_DOWN)


def _ratio(value: Any) -> float:
    number = min(max(_decimal(value), Decimal(0)), Decimal(1))
    return float(number.quantize(_RATIO, rounding=ROUND_DOWN))


def _json(area: Decimal) -> float:
    """A float whose ``repr`` is exactly the decimal (at most 9 significant digits here)."""
    return float(area)


# --- the land registry ----------------------------------------------------------------------

@dataclass(frozen=True)
class _LandView:
    """The land record indexed by (certificate, parcel), and the parcels' registry areas."""

    held: dict[tuple[str, str], Any]
    foreign: set[tuple[str, str]]
    areas: dict[str, Decimal]

    @classmethod
    def of(cls, land: LandRecord | None) -> _LandView:
        """The registry's own split: ``certificates`` are the applicant's, ``foreign`` not."""
        if land is None:
            return cls({}, set(), {})
        held = {(cert.number, parcel.code): parcel
                for cert in land.certificates for parcel in cert.parcels}
        areas = {parcel.code: _area(parcel.area_mu)
                 for cert in land.certificates for parcel in cert.parcels}
        return cls(held, _pairs(land.foreign) - held.keys(), areas)


def _pairs(certificates: Iterable[Certificate]) -> set[tuple[str, str]]:
    return {(cert.number, parcel.code) for cert in certificates for parcel in cert.parcels}


# --- insurance ------------------------------------------------------------------------------

def _next_on_or_after(month_day: str, start: date) -> date | None:
    """The first ``MM-DD`` on or after ``start`` (``None`` when the text is not a date)."""
    try:
        month, day = (int(part) for part in month_day.split("-"))
        candidate = date(start.year, month, day)
        return candidate if candidate >= start else date(start.year + 1, month, day)
    except (ValueError, AttributeError):
        return None


def _cover_until(app: ApplicationInput, crop: CropInput | None) -> date:
    """Until when a policy must run: the next harvest's end, or the maturity if earlier."""
    harvest = _next_on_or_after(crop.harvest_to, app.submitted_on) if crop else None
    return min(harvest, app.maturity_on) if harvest else app.maturity_on


def _covers(policy: InsurancePolicy, app: ApplicationInput, until: date) -> bool:
    return (policy.status == "active" and policy.crop == app.crop
            and policy.start <= app.maturity_on and policy.end >= until)


def _insured_shares(insurance: InsuranceRecord | None, app: ApplicationInput, until: date,
                    areas: dict[str, Decimal]) -> dict[str, Decimal]:
    """Per parcel code: its share of the insured area of the best covering policy."""
    shares: dict[str, Decimal] = {}
    for policy in insurance.policies if insurance else ():
        if not _covers(policy, app, until) or not policy.parcel_codes:
            continue
        codes = list(dict.fromkeys(policy.parcel_codes))
        known = sum((areas.get(code, Decimal(0)) for code in codes), Decimal(0))
        for code in codes:
            weight = areas.get(code, Decimal(0)) / known if known else Decimal(1) / len(codes)
            share = _area(_decimal(policy.insured_area_mu) * weight)
            shares[code] = max(shares.get(code, Decimal(0)), share)
    return shares


def _claims(insurance: InsuranceRecord | None, submitted: date) -> list[dict[str, Any]]:
    """Claims that were not rejected, with their age in days at submission."""
    claims = [claim for claim in insurance.claims if claim.status != "rejected"] \
        if insurance else []
    return [{"event": claim.event, "days_ago": (submitted - claim.event_date).days,
             "loss_ratio": _ratio(claim.loss_ratio), "status": claim.status}
            for claim in sorted(claims, key=lambda c: (c.event_date, c.policy_number))]


# --- parcels --------------------------------------------------------------------------------

def _land_status(key: tuple[str, str], view: _LandView, land_known: bool) -> str:
    if not land_known:
        return "unknown"
    if key in view.held:
        return "held"
    return "foreign" if key in view.foreign else "not_found"


def _parcel(declared: DeclaredParcel, *, status: str, registry: Any,
            app: ApplicationInput, applicant: ApplicantInput, insured: Decimal | None,
            check: ParcelCheck | None) -> dict[str, Any]:
    declared_mu = _area(declared.declared_area_mu)
    registry_mu = _area(registry.area_mu) if status == "held" else Decimal(0)
    field_mu = _area(check.estimated_area_mu) if check and check.estimated_area_mu is not None \
        else None
    verified = min([declared_mu, registry_mu, *([field_mu] if field_mu is not None else [])]) \
        if status == "held" else Decimal(0)
    return {
        "certificate": declared.certificate_number,
        "code": declared.parcel_code,
        "land_status": status,
        "declared_mu": _json(declared_mu),
        "registry_mu": _json(registry_mu),
        "insured_mu": _json(insured or Decimal(0)),
        "field_mu": _json(field_mu or Decimal(0)),
        "field_estimated": field_mu is not None,
        "verified_mu": _json(verified),
        "insured": insured is not None,
        "contract_end": registry.contract_end.isoformat() if status == "held" else None,
        "tenure_days": (registry.contract_end - app.maturity_on).days if status == "held" else 0,
        "pledged_registry": status == "held" and any(p.active for p in registry.pledges),
        "pledged_here": declared.parcel_code in applicant.pledged_parcels,
        "field_visited": bool(check and check.visited),
        "crop_seen": bool(check and check.crop_seen),
    }


def _parcels(app: ApplicationInput, applicant: ApplicantInput, view: _LandView, *,
             land_known: bool, shares: dict[str, Decimal],
             field_check: FieldCheckInput | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The declared parcels, each once (by parcel code, the national key), and the codes
    declared again."""
    checks = {check.parcel_code: check for check in field_check.parcels} if field_check else {}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for declared in app.parcels:
        if declared.parcel_code in seen:
            duplicates.append(declared.parcel_code)
            continue
        seen.add(declared.parcel_code)
        key = (declared.certificate_number, declared.parcel_code)
        status = _land_status(key, view, land_known)
        rows.append(_parcel(declared, status=status, registry=view.held.get(key), app=app,
                            applicant=applicant, insured=shares.get(declared.parcel_code),
                            check=checks.get(declared.parcel_code)))
    return rows, duplicates


# --- the snapshot ---------------------------------------------------------------------------

def _crop(crop: CropInput | None, app: ApplicationInput) -> dict[str, Any]:
    if crop is None:
        return {"known": False, "crop": app.crop, "county_code": None, "yield_kg_per_mu": 0,
                "price_fen_per_kg": 0, "insured_sum_fen_per_mu": 0, "planting_from": None,
                "planting_to": None, "harvest_from": None, "harvest_to": None}
    return {"known": True, "crop": crop.crop, "county_code": crop.county_code,
            "yield_kg_per_mu": crop.yield_kg_per_mu, "price_fen_per_kg": crop.price_fen_per_kg,
            "insured_sum_fen_per_mu": crop.insured_sum_fen_per_mu,
            "planting_from": crop.planting_from, "planting_to": crop.planting_to,
            "harvest_from": crop.harvest_from, "harvest_to": crop.harvest_to}


def _unavailable(unavailable: Iterable[str], land: LandRecord | None,
                 insurance: InsuranceRecord | None, holder_hash: str) -> list[str]:
    """Registries that failed. One that gave nothing, or answered for another person (a
    mix-up we cannot read), counts as unavailable too: the case is referred, never decided on
    someone else's record."""
    missing = set(unavailable) & set(SOURCES)
    if land is None or land.holder_hash != holder_hash:
        missing.add("land")
    if insurance is None or insurance.holder_hash != holder_hash:
        missing.add("insurance")
    return [source for source in SOURCES if source in missing]


def build_facts(*, application: ApplicationInput, applicant: ApplicantInput,
                product: ProductInput, crop: CropInput | None, land: LandRecord | None,
                insurance: InsuranceRecord | None, unavailable: Iterable[str] = (),
                field_check: FieldCheckInput | None = None) -> dict[str, Any]:
    """The JSON-safe input snapshot of one decision (see the module docstring)."""
    missing = _unavailable(unavailable, land, insurance, applicant.holder_hash)
    land_known = "land" not in missing
    view = _LandView.of(land if land_known else None)
    insurance_seen = insurance if "insurance" not in missing else None
    shares = _insured_shares(insurance_seen, application, _cover_until(application, crop),
                             view.areas)
    parcels, duplicates = _parcels(application, applicant, view, land_known=land_known,
                                   shares=shares, field_check=field_check)
    return {
        "facts_version": FACTS_VERSION,
        "application": {
            "amount_fen": application.amount_fen, "term_months": application.term_months,
            "crop": application.crop, "purpose": application.purpose,
            "submitted_on": application.submitted_on.isoformat(),
            "maturity_on": application.maturity_on.isoformat(),
        },
        "applicant": {
            "identity_verified": applicant.identity_verified,
            "prior_approved_loans": applicant.prior_approved_loans,
            "open_default": applicant.open_default, "age": applicant.age,
        },
        "product": {"code": product.code, "max_amount_fen": product.max_amount_fen,
                    "auto_ceiling_fen": product.auto_ceiling_fen},
        "crop": _crop(crop, application),
        "unavailable": missing,
        "parcels": parcels,
        "duplicates": duplicates,
        "claims": _claims(insurance_seen, application.submitted_on),
        "field_check": {"done": field_check is not None,
                        "identity_verified": bool(field_check and field_check.identity_verified)},
    }
