"""The facts snapshot: per-parcel reconciliation of declared, registry, insured and measured
area, and that odd data of any shape gives an outcome, never an exception."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lending.policy import engine, samples
from lending.policy.facts import (
    DeclaredParcel,
    FieldCheckInput,
    ParcelCheck,
    build_facts,
)
from lending.registries.types import (
    Certificate,
    Claim,
    InsurancePolicy,
    InsuranceRecord,
    LandRecord,
    Parcel,
    Pledge,
)
from tests.lending.test_policy_helpers import (
    CODES,
    HOLDER,
    MODEL,
    app,
    applicant,
    case_facts,
    clean_land,
    declared,
    facts,
    land,
)


def parcel(snapshot: dict[str, Any], code: str) -> dict[str, Any]:
    return next(p for p in snapshot["parcels"] if p["code"] == code)


def test_a_clean_snapshot_says_what_every_source_says() -> None:
    snapshot = facts()
    assert snapshot["unavailable"] == []
    assert snapshot["duplicates"] == []
    assert parcel(snapshot, "P-01") == {
        "certificate": "C-1", "code": "P-01", "land_status": "held",
        "declared_mu": 5.0, "registry_mu": 5.0, "insured_mu": 5.0, "field_mu": 0.0,
        "field_estimated": False, "verified_mu": 5.0, "insured": True,
        "contract_end": "2030-12-31", "tenure_days": 1492, "pledged_registry": False,
        "pledged_here": False, "field_visited": False, "crop_seen": False}
    assert snapshot["crop"]["known"] is True
    assert snapshot["field_check"] == {"done": False, "identity_verified": False}


def test_the_snapshot_is_json_that_round_trips_exactly() -> None:
    for code in ("field_area_mismatch", "claim_recent", "not_certificate_holder"):
        snapshot = case_facts(code)
        assert json.loads(json.dumps(snapshot, allow_nan=False)) == snapshot


def test_verified_area_is_the_smaller_of_declared_and_registry() -> None:
    more = facts(application=app(parcels=declared(("P-01", "5.40"), ("P-02", "4.60"),
                                                   ("P-03", "5"))))
    assert parcel(more, "P-01")["verified_mu"] == 5.0  # claimed more than registered
    assert parcel(more, "P-02")["verified_mu"] == 4.6  # declared less: what they farm


def test_a_measured_area_can_lower_the_verified_area_never_raise_it() -> None:
    lower = facts(field_check=FieldCheckInput(True, (
        ParcelCheck("P-01", True, True, Decimal("4.20")),
        ParcelCheck("P-02", True, True, Decimal("9.00")))))
    assert parcel(lower, "P-01")["verified_mu"] == 4.2
    assert parcel(lower, "P-02")["verified_mu"] == 5.0
    assert parcel(lower, "P-02")["field_mu"] == 9.0
    assert parcel(lower, "P-03")["field_estimated"] is False


def test_areas_are_rounded_down_to_a_hundredth_and_never_negative() -> None:
    odd = facts(application=app(parcels=declared(("P-01", "4.999"), ("P-02", "-3"),
                                                  ("P-03", "NaN"))))
    assert parcel(odd, "P-01")["declared_mu"] == 4.99
    assert parcel(odd, "P-02")["declared_mu"] == 0.0
    assert parcel(odd, "P-03")["declared_mu"] == 0.0
    outcome = engine.decide("2026.1", MODEL, odd)
    assert {"code": "area_mismatch", "kind": "refer",
            "params": {"parcels": ["P-02", "P-03"], "tolerance_pct": 5}} in outcome.reasons


def test_land_status_per_parcel() -> None:
    snapshot = case_facts("not_certificate_holder")
    assert parcel(snapshot, "X-01")["land_status"] == "foreign"
    assert parcel(snapshot, "X-01")["verified_mu"] == 0.0
    missing = case_facts("parcel_not_registered")
    assert parcel(missing, "P-09")["land_status"] == "not_found"
    # the right parcel under the wrong certificate is not the applicant's parcel
    wrong = facts(application=app(parcels=(DeclaredParcel("C-2", "P-01", Decimal(5)),)))
    assert parcel(wrong, "P-01")["land_status"] == "not_found"
    down = facts(land=None, unavailable=("land",))
    assert {p["land_status"] for p in down["parcels"]} == {"unknown"}
    assert down["unavailable"] == ["land"]


def test_a_registry_answer_for_someone_else_counts_as_unavailable() -> None:
    other = LandRecord("another-holder", clean_land().certificates)
    snapshot = facts(land=other)
    assert snapshot["unavailable"] == ["land"]
    assert engine.decide("2026.1", MODEL, snapshot).outcome == "refer"
    assert facts(insurance=None)["unavailable"] == ["insurance"]


def test_a_parcel_declared_twice_is_counted_once() -> None:
    snapshot = case_facts("duplicate_parcel")
    assert [p["code"] for p in snapshot["parcels"]] == list(CODES)
    assert snapshot["duplicates"] == ["P-01"]
    assert engine.decide("2026.1", MODEL, snapshot).limit_fen == 1_283_100


def test_pledges_and_contract_end() -> None:
    ended = Pledge("old bank", 100, date(2020, 1, 1), date(2021, 1, 1), active=False)
    snapshot = facts(land=land(
        replace(samples.registry_parcel("P-01", "5"), pledges=(ended,)),
        samples.registry_parcel("P-02", "5", pledged=True),
        samples.registry_parcel("P-03", "5", contract_end=date(2026, 11, 29))),
        applicant=applicant(pledged_parcels=frozenset({"P-01"})))
    assert parcel(snapshot, "P-01")["pledged_registry"] is False
    assert parcel(snapshot, "P-01")["pledged_here"] is True
    assert parcel(snapshot, "P-02")["pledged_registry"] is True
    assert parcel(snapshot, "P-03")["tenure_days"] == -1  # a day before maturity


# --- insurance ---------------------------------------------------------------------------

def _insured(*policies: InsurancePolicy, claims: tuple[Claim, ...] = ()) -> dict[str, Any]:
    return facts(insurance=InsuranceRecord(HOLDER, policies, claims))


def test_a_policy_must_cover_the_crop_until_harvest_or_maturity() -> None:
    season = samples.insurance_policy(CODES, "15")  # 2026-04-01 to 2026-10-31
    assert parcel(_insured(season), "P-01")["insured"] is True  # harvest ends 10-31
    short = replace(season, end=date(2026, 9, 30))
    assert parcel(_insured(short), "P-01")["insured"] is False
    other_crop = replace(season, crop="wheat")
    assert parcel(_insured(other_crop), "P-01")["insured"] is False
    lapsed = replace(season, status="cancelled")
    assert parcel(_insured(lapsed), "P-01")["insured"] is False
    after = replace(season, start=date(2026, 12, 1), end=date(2027, 10, 31))
    assert parcel(_insured(after), "P-01")["insured"] is False
    # without a crop calendar the policy must run to maturity
    no_crop = facts(crop=None, insurance=InsuranceRecord(HOLDER, (season,)))
    assert parcel(no_crop, "P-01")["insured"] is False


def test_a_policy_over_several_parcels_is_shared_by_registry_area() -> None:
    snapshot = facts(land=land(samples.registry_parcel("P-01", "2"),
                               samples.registry_parcel("P-02", "6"),
                               samples.registry_parcel("P-03", "2")),
                     application=app(parcels=declared(("P-01", "2"), ("P-02", "6"),
                                                      ("P-03", "2"))),
                     insurance=InsuranceRecord(HOLDER, (
                         samples.insurance_policy(("P-01", "P-02"), "7.00"),)))
    assert parcel(snapshot, "P-01")["insured_mu"] == 1.75
    assert parcel(snapshot, "P-02")["insured_mu"] == 5.25
    assert parcel(snapshot, "P-03")["insured"] is False


def test_claims_keep_their_age_and_leave_out_rejected_ones() -> None:
    claims = (Claim("X", "hail", samples.SUBMITTED - timedelta(days=40), Decimal("0.25"),
                    "paid"),
              Claim("X", "flood", samples.SUBMITTED - timedelta(days=10), Decimal("0.9"),
                    "rejected"))
    snapshot = _insured(samples.insurance_policy(CODES, "15"), claims=claims)
    assert snapshot["claims"] == [{"event": "hail", "days_ago": 40, "loss_ratio": 0.25,
                                   "status": "paid"}]


# --- whatever the registries say, an outcome -----------------------------------------------

AREAS = st.one_of(st.decimals(min_value=-5, max_value=10**7, places=3),
                  st.decimals(allow_nan=True, allow_infinity=True))
CODES_ST = st.sampled_from(["P-01", "P-02", "P-03", "P-04", ""])
DATES = st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31))

parcels_st = st.builds(
    Parcel, code=CODES_ST, area_mu=AREAS, land_class=st.just("paddy"),
    village_code=st.just("330521101201"), latitude=st.just(Decimal(30)),
    longitude=st.just(Decimal(120)), contract_start=DATES, contract_end=DATES,
    pledges=st.lists(st.builds(Pledge, creditor=st.just("b"), amount_fen=st.integers(0, 10**9),
                               start=DATES, end=DATES, active=st.booleans()),
                     max_size=2).map(tuple))
certificates_st = st.builds(Certificate, number=st.sampled_from(["C-1", "C-2"]),
                            holder_hash=st.sampled_from([HOLDER, "other"]),
                            holder_name=st.just("x"),
                            parcels=st.lists(parcels_st, max_size=4).map(tuple))
land_st = st.one_of(st.none(), st.builds(
    LandRecord, holder_hash=st.sampled_from([HOLDER, HOLDER, "other"]),
    certificates=st.lists(certificates_st, max_size=2).map(tuple),
    foreign=st.lists(certificates_st, max_size=1).map(tuple)))
policies_st = st.builds(
    InsurancePolicy, number=st.just("I"), crop=st.sampled_from(["rice", "corn"]),
    insured_area_mu=AREAS, sum_insured_fen=st.integers(0, 10**9), start=DATES, end=DATES,
    status=st.sampled_from(["active", "expired", "cancelled"]),
    parcel_codes=st.lists(CODES_ST, max_size=4).map(tuple))
claims_st = st.builds(Claim, policy_number=st.just("I"), event=st.just("hail"),
                      event_date=DATES, loss_ratio=AREAS,
                      status=st.sampled_from(["paid", "rejected", "reported"]))
insurance_st = st.one_of(st.none(), st.builds(
    InsuranceRecord, holder_hash=st.sampled_from([HOLDER, "other"]),
    policies=st.lists(policies_st, max_size=3).map(tuple),
    claims=st.lists(claims_st, max_size=3).map(tuple)))
declared_st = st.lists(st.builds(DeclaredParcel, certificate_number=st.sampled_from(
    ["C-1", "C-2", "C-9"]), parcel_code=CODES_ST, declared_area_mu=AREAS), max_size=6)
checks_st = st.one_of(st.none(), st.builds(
    FieldCheckInput, identity_verified=st.booleans(), parcels=st.lists(st.builds(
        ParcelCheck, parcel_code=CODES_ST, visited=st.booleans(), crop_seen=st.booleans(),
        estimated_area_mu=st.one_of(st.none(), AREAS)), max_size=4).map(tuple)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(land=land_st, insurance=insurance_st, parcels=declared_st, check=checks_st,
       unavailable=st.lists(st.sampled_from(["land", "insurance", "tax"]), max_size=2),
       amount=st.integers(0, 10**10), age=st.one_of(st.none(), st.integers(0, 120)),
       prior=st.integers(0, 50), submitted=DATES, days=st.integers(0, 800),
       crop=st.sampled_from([samples.RICE, None, replace(samples.RICE, harvest_to="13-45")]))
def test_odd_registry_data_gives_an_outcome_never_an_exception(
        *, land: LandRecord | None, insurance: InsuranceRecord | None,
        parcels: list[DeclaredParcel], check: FieldCheckInput | None, unavailable: list[str],
        amount: int, age: int | None, prior: int, submitted: date, days: int,
        crop: Any) -> None:
    snapshot = build_facts(
        application=app(amount_fen=amount, parcels=tuple(parcels), submitted_on=submitted,
                        maturity_on=submitted + timedelta(days=days)),
        applicant=applicant(age=age, prior_approved_loans=prior),
        product=samples.PRODUCT, crop=crop, land=land, insurance=insurance,
        unavailable=unavailable, field_check=check)
    assert json.loads(json.dumps(snapshot, allow_nan=False)) == snapshot
    outcome = engine.decide("2026.1", MODEL, snapshot)
    assert outcome.outcome in engine.OUTCOMES
    assert 0 <= outcome.limit_fen <= samples.PRODUCT.max_amount_fen
    if outcome.outcome == "approve":
        assert not {"land", "insurance"} & set(unavailable)
        assert land is not None
        assert insurance is not None
        assert outcome.reasons == []
