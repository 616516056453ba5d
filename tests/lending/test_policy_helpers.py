"""Shared helpers for the credit policy tests (no tests here): one case per reason code.

Each case changes the clean sample (``lending.policy.samples.inputs``: three insured rice
parcels of 5 mu, an established borrower, 12,000 yuan asked, limit 12,831 yuan) just enough to
make its code fire.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from lending.policy import samples
from lending.policy.facts import (
    ApplicantInput,
    ApplicationInput,
    DeclaredParcel,
    FieldCheckInput,
    ParcelCheck,
    build_facts,
)
from lending.policy.services import demo_model
from lending.registries.types import Certificate, Claim, InsuranceRecord, LandRecord

HOLDER = samples.HOLDER
CODES = ("P-01", "P-02", "P-03")
MODEL = demo_model("2026.1")
STRICTER = demo_model("2026.2")


def base() -> dict[str, Any]:
    return samples.inputs()


def app(**changes: Any) -> ApplicationInput:
    return replace(base()["application"], **changes)


def applicant(**changes: Any) -> ApplicantInput:
    return replace(base()["applicant"], **changes)


def land(*parcels: Any, foreign: tuple[Certificate, ...] = ()) -> LandRecord:
    return LandRecord(HOLDER, (Certificate("C-1", HOLDER, "demo", tuple(parcels)),), foreign)


def clean_land(**overrides: Any) -> LandRecord:
    """The sample's three parcels; ``overrides`` maps a code to registry_parcel kwargs."""
    return land(*(samples.registry_parcel(code, "5.00", **overrides.get(code, {}))
                  for code in CODES))


def declared(*rows: tuple[str, str]) -> tuple[DeclaredParcel, ...]:
    return tuple(DeclaredParcel("C-1", code, Decimal(area)) for code, area in rows)


def visited_all(**changes: Any) -> FieldCheckInput:
    checks = {code: ParcelCheck(code, visited=True, crop_seen=True) for code in CODES}
    for code, check in changes.items():
        checks[code.replace("_", "-")] = check
    return FieldCheckInput(identity_verified=True, parcels=tuple(checks.values()))


def facts(**changes: Any) -> dict[str, Any]:
    return build_facts(**{**base(), **changes})


# Per reason code: the build_facts changes that make it fire, and the outcome expected.
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "open_default": ({"applicant": applicant(open_default=True)}, "decline"),
    "not_certificate_holder": ({
        "application": app(parcels=(*base()["application"].parcels,
                                    DeclaredParcel("C-9", "X-01", Decimal("2.00")))),
        "land": land(*clean_land().certificates[0].parcels, foreign=(Certificate(
            "C-9", "someone-else", "other", (samples.registry_parcel("X-01", "2.00"),)),)),
    }, "decline"),
    "contract_ends_before_loan": (
        {"land": clean_land(**{"P-02": {"contract_end": date(2026, 9, 30)}})}, "decline"),
    "parcel_pledged": ({"land": clean_land(**{"P-01": {"pledged": True}})}, "decline"),
    "parcel_pledged_here": ({"applicant": applicant(pledged_parcels=frozenset({"P-03"}))},
                            "decline"),
    "age_ineligible": ({"applicant": applicant(age=70)}, "decline"),
    "field_check_first_loan": ({"applicant": applicant(prior_approved_loans=0)}, "field_check"),
    "field_check_identity": ({"applicant": applicant(identity_verified=False)}, "field_check"),
    "field_check_amount": ({"application": app(amount_fen=6_000_000),
                            "product": replace(samples.PRODUCT, auto_ceiling_fen=10_000_000)},
                           "field_check"),
    "data_source_unavailable": ({"unavailable": ("insurance",)}, "refer"),
    "crop_reference_missing": ({"crop": None}, "refer"),
    "parcel_not_registered": ({"application": app(parcels=declared(
        ("P-01", "5"), ("P-02", "5"), ("P-03", "5"), ("P-09", "1")))}, "refer"),
    "duplicate_parcel": ({"application": app(parcels=declared(
        ("P-01", "5"), ("P-02", "5"), ("P-03", "5"), ("P-01", "5")))}, "refer"),
    "area_mismatch": ({"application": app(parcels=declared(
        ("P-01", "5.5"), ("P-02", "5"), ("P-03", "5")))}, "refer"),
    "insured_area_mismatch": ({"insurance": InsuranceRecord(HOLDER, (
        samples.insurance_policy(CODES, "18.00"),))}, "refer"),
    "field_area_mismatch": ({"field_check": visited_all(P_01=ParcelCheck(
        "P-01", visited=True, crop_seen=True, estimated_area_mu=Decimal("4.50")))}, "refer"),
    "field_identity_not_verified": ({"field_check": replace(
        visited_all(), identity_verified=False)}, "refer"),
    "field_parcel_not_visited": ({"field_check": visited_all(P_02=ParcelCheck(
        "P-02", visited=False, crop_seen=False))}, "refer"),
    "field_crop_not_seen": ({"field_check": visited_all(P_03=ParcelCheck(
        "P-03", visited=True, crop_seen=False))}, "refer"),
    "claim_recent": ({"insurance": InsuranceRecord(
        HOLDER, (samples.insurance_policy(CODES, "15.00"),),
        (Claim("PICC-1", "flood", samples.SUBMITTED - timedelta(days=100), Decimal("0.5"),
               "paid"),))}, "refer"),
    "amount_above_limit": ({"application": app(amount_fen=1_283_101)}, "refer"),
    "above_auto_ceiling": ({"product": replace(samples.PRODUCT, auto_ceiling_fen=1_000_000)},
                           "refer"),
    "low_score": ({  # uninsured (0), a short contract (6), no age (4): 50 points
        "insurance": InsuranceRecord(HOLDER, ()),
        "land": clean_land(**{code: {"contract_end": date(2027, 3, 31)} for code in CODES}),
        "applicant": applicant(age=None),
        "application": app(amount_fen=800_000)}, "refer"),
}


def case_facts(code: str) -> dict[str, Any]:
    return facts(**CASES[code][0])
