"""The decision engine on the demo policy: every reason code reachable, limits exact to the
fen, replay gives the same result, a broken model never escapes as anything but a PolicyError."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from lending.policy import engine, samples
from lending.policy.engine import Outcome, PolicyError
from lending.policy.facts import CropInput
from lending.registries.types import InsuranceRecord
from tests.lending.test_policy_helpers import (
    CASES,
    HOLDER,
    MODEL,
    STRICTER,
    app,
    applicant,
    case_facts,
    declared,
    facts,
    land,
)

V1 = "2026.1"


def decide(snapshot: dict[str, Any], model: dict[str, Any] = MODEL,
           version: str = V1) -> Outcome:
    return engine.decide(version, model, snapshot)


def codes(outcome: Outcome) -> list[str]:
    return [reason["code"] for reason in outcome.reasons]


def stored(version: str, model: dict[str, Any], snapshot: dict[str, Any],
           outcome: Outcome) -> dict[str, Any]:
    """A decision as the applications store it, through JSON and back."""
    return json.loads(json.dumps({"policy_version": version, "decision_model": model,
                                  "snapshot": snapshot, **outcome.to_json()}))


# --- outcomes and reasons ----------------------------------------------------------------------

def test_the_clean_case_is_approved_with_its_score_and_factors() -> None:
    outcome = decide(facts())
    assert outcome.outcome == "approve"
    assert outcome.reasons == []
    assert outcome.limit_fen == 1_283_100  # 15 mu x 470 kg x 260 fen x 0.7
    assert outcome.amount_fen == 1_200_000
    assert outcome.score == sum(f["points"] for f in outcome.factors) == 95
    assert [f["factor"] for f in outcome.factors] == [
        "insurance_cover", "land_tenure", "borrowing_history", "area_reconciliation",
        "claims_history", "age_band"]


def test_there_is_a_case_for_every_code_the_policy_can_emit() -> None:
    assert set(CASES) == engine.emitted_codes(MODEL) == engine.emitted_codes(STRICTER)


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_reason_code_is_reached_from_facts(code: str) -> None:
    expected = CASES[code][1]
    outcome = decide(case_facts(code))
    assert code in codes(outcome), outcome.reasons
    assert outcome.outcome == expected
    kind = next(r["kind"] for r in outcome.reasons if r["code"] == code)
    assert kind == expected
    assert decide(facts()).outcome == "approve"  # the case's change alone did it


@pytest.mark.parametrize("code", sorted(CASES))
def test_a_stored_decision_replays_to_the_same_result(code: str) -> None:
    snapshot = case_facts(code)
    outcome = decide(snapshot)
    record = stored(V1, MODEL, snapshot, outcome)
    again = engine.replay(record)
    assert again == outcome == Outcome.from_json(record)
    assert (again.outcome, again.score, again.limit_fen, again.reasons) == (
        record["outcome"], record["score"], record["limit_fen"], record["reasons"])


def test_parcel_reasons_name_the_parcels() -> None:
    outcome = decide(case_facts("parcel_pledged"))
    assert outcome.reasons[0] == {"code": "parcel_pledged", "kind": "decline",
                                  "params": {"parcels": ["P-01"]}}
    mismatch = decide(case_facts("area_mismatch")).reasons[0]
    assert mismatch == {"code": "area_mismatch", "kind": "refer",
                        "params": {"parcels": ["P-01"], "tolerance_pct": 5}}


def test_decline_comes_before_a_field_check_and_a_field_check_before_a_referral() -> None:
    both = facts(applicant=applicant(open_default=True, prior_approved_loans=0),
                 unavailable=("insurance",))
    assert decide(both).outcome == "decline"
    assert set(codes(decide(both))) >= {"open_default", "field_check_first_loan",
                                        "data_source_unavailable"}
    check_and_refer = facts(applicant=applicant(prior_approved_loans=0),
                            unavailable=("insurance",))
    assert decide(check_and_refer).outcome == "field_check"


def test_a_registry_that_fails_never_lets_the_policy_approve() -> None:
    outcome = decide(facts(land=None, unavailable=("land",)))
    assert outcome.outcome == "refer"
    assert outcome.limit_fen == 0
    assert {"code": "data_source_unavailable", "kind": "refer",
            "params": {"source": "land"}} in outcome.reasons


# --- the limit, to the fen ---------------------------------------------------------------------

def _one_crop_facts(crop: CropInput, parcels: list[tuple[str, str]],
                    insured: tuple[str, str] | None = None) -> dict[str, Any]:
    policies = (samples.insurance_policy((insured[0],), insured[1], crop=crop.crop),) \
        if insured else ()
    return facts(
        application=app(crop=crop.crop, amount_fen=10_000, parcels=declared(*parcels)),
        crop=crop,
        land=land(*(samples.registry_parcel(code, area) for code, area in parcels)),
        insurance=InsuranceRecord(HOLDER, policies))


CORN = CropInput(crop="corn", county_code="330521", yield_kg_per_mu=420, price_fen_per_kg=230,
                 insured_sum_fen_per_mu=95_000, planting_from="04-01", planting_to="05-31",
                 harvest_from="09-01", harvest_to="10-31")


def test_the_limit_is_exact_and_rounded_down_to_the_fen_per_parcel() -> None:
    # corn, uninsured advance rate 0.45: 1.01 mu x 420 x 230 x 0.45 = 43,904.7 fen per parcel
    outcome = decide(_one_crop_facts(CORN, [("P-01", "1.01"), ("P-02", "1.01")]))
    assert outcome.limit_fen == 87_808  # 43,904 twice (not 87,809, the floor of the sum)


def test_an_insured_parcel_gets_the_higher_advance_rate() -> None:
    uninsured = decide(_one_crop_facts(samples.RICE, [("P-01", "3.33")])).limit_fen
    insured = decide(_one_crop_facts(samples.RICE, [("P-01", "3.33")],
                                     insured=("P-01", "3.33"))).limit_fen
    assert uninsured == 203_463  # 3.33 x 470 x 260 x 0.5
    assert insured == 284_848  # 3.33 x 470 x 260 x 0.7 = 284,848.2
    # partly insured: 2 mu at 0.7 and 1.33 mu at 0.5
    partly = decide(_one_crop_facts(samples.RICE, [("P-01", "3.33")],
                                    insured=("P-01", "2.00"))).limit_fen
    assert partly == 171_080 + 81_263


def test_the_limit_is_capped_by_the_product_maximum() -> None:
    capped = facts(product=replace(samples.PRODUCT, max_amount_fen=1_000_000))
    assert decide(capped).limit_fen == 1_000_000


def test_a_policy_without_figures_for_the_crop_gives_no_limit() -> None:
    outcome = decide(case_facts("crop_reference_missing"))
    assert outcome.limit_fen == 0
    assert "amount_above_limit" in codes(outcome)


# --- versions --------------------------------------------------------------------------------

def test_the_stricter_version_refers_what_the_first_approves() -> None:
    # no insurance: 0 + 20 + 15 + 15 + 10 + 6 (age 60) = 66 points, between 60 and 70
    snapshot = facts(insurance=InsuranceRecord(HOLDER, ()), applicant=applicant(age=60),
                     application=app(amount_fen=900_000))
    first, second = decide(snapshot), decide(snapshot, STRICTER, "2026.2")
    assert (first.outcome, first.score) == ("approve", 66)
    assert second.outcome == "refer"
    assert second.reasons == [{"code": "low_score", "kind": "refer",
                               "params": {"score": 66, "threshold": 70}}]
    # each stored decision replays on its own version
    assert engine.replay(stored(V1, MODEL, snapshot, first)) == first
    assert engine.replay(stored("2026.2", STRICTER, snapshot, second)) == second


def test_one_version_name_with_another_model_is_compiled_again() -> None:
    snapshot = facts(insurance=InsuranceRecord(HOLDER, ()), applicant=applicant(age=60),
                     application=app(amount_fen=900_000))
    assert engine.decide("same-name", MODEL, snapshot).outcome == "approve"
    assert engine.decide("same-name", STRICTER, snapshot).outcome == "refer"


# --- traces ----------------------------------------------------------------------------------

def test_a_traced_replay_names_the_rule_rows_that_fired() -> None:
    snapshot = case_facts("parcel_pledged")
    plain = decide(snapshot)
    traced = engine.replay({"policy_version": V1, "decision_model": MODEL,
                            "snapshot": snapshot}, trace=True)
    assert traced == plain
    assert plain.trace_summary is None
    by_node = {step["node"]: step["rules"] for step in traced.trace_summary or []}
    assert {"id": "reasons-r4", "description": "Active pledge in the land registry"} in \
        by_node["reasons"]
    assert len(by_node["scorecard"]) == 6  # one band per factor
    assert by_node["advance_rates"] == [{"id": "advance-rates-r1", "description": "Rice"}]


# --- broken models ---------------------------------------------------------------------------

def _broken(change: Any) -> dict[str, Any]:
    model = copy.deepcopy(MODEL)
    change(model)
    return model


def _node(model: dict[str, Any], name: str) -> dict[str, Any]:
    return next(node for node in model["nodes"] if node["name"] == name)


def _expression(name: str, key: str, value: str) -> Any:
    def change(model: dict[str, Any]) -> None:
        for expression in _node(model, name)["content"]["expressions"]:
            if expression["key"] == key:
                expression["value"] = value
    return change


def _drop_row(table: str, index: int) -> Any:
    def change(model: dict[str, Any]) -> None:
        del _node(model, table)["content"]["rules"][index]
    return change


BROKEN = {
    "no nodes": lambda model: model.update(nodes="none"),
    "a cycle": lambda model: model["edges"].append(
        {"id": "back", "type": "edge", "sourceId": "outcome", "targetId": "totals"}),
    "an edge to nowhere": lambda model: model["edges"].append(
        {"id": "lost", "type": "edge", "sourceId": "totals", "targetId": "nowhere"}),
    "an expression that fails": _expression("totals", "totals.verified_mu",
                                            "sum(map(parcels, #.verified_mu * 'x'))"),
    "an outcome it cannot give": _expression("outcome", "outcome", "'maybe'"),
    "a fractional limit": _expression("outcome", "limit_fen", "totals.limit_fen + 0.5"),
    "a scorecard with a gap": _drop_row("scorecard", 16),  # age 25 to 55
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_model_is_a_policy_error_and_a_referral(name: str) -> None:
    model = _broken(BROKEN[name])
    with pytest.raises(PolicyError):
        engine.decide(f"broken-{name}", model, facts())
    snapshot = facts()
    outcome = engine.decide_or_refer(f"broken-{name}", model, snapshot)
    assert outcome == Outcome(outcome="refer", limit_fen=0, amount_fen=1_200_000, score=0,
                              factors=[], reasons=[{"code": "policy_error", "kind": "refer",
                                                    "params": {}}])
    # the referral replays as it was recorded
    assert engine.replay(stored(f"broken-{name}", model, snapshot, outcome)) == outcome


def test_a_model_naming_an_unknown_code_or_kind_is_refused() -> None:
    def rename(model: dict[str, Any]) -> None:
        _node(model, "reasons")["content"]["rules"][0]["reasons-out0"] = "'made_up_code'"

    with pytest.raises(PolicyError, match="made_up_code"):
        engine.check_codes(_broken(rename))

    def computed(model: dict[str, Any]) -> None:
        _node(model, "reasons")["content"]["rules"][0]["reasons-out0"] = "'open' + '_default'"

    with pytest.raises(PolicyError, match="quoted name"):
        engine.check_codes(_broken(computed))

    def engine_code(model: dict[str, Any]) -> None:
        _node(model, "reasons")["content"]["rules"][0]["reasons-out0"] = "'policy_error'"

    with pytest.raises(PolicyError, match="policy_error"):
        engine.check_codes(_broken(engine_code))

    def kind(model: dict[str, Any]) -> None:
        _node(model, "reasons")["content"]["rules"][0]["reasons-out1"] = "'maybe'"

    with pytest.raises(PolicyError, match="kinds"):
        engine.check_codes(_broken(kind))


def test_a_reason_built_in_an_expression_is_refused() -> None:
    model = _broken(_expression("outcome", "reasons",
                                "[{code: 'open_default', kind: 'decline', params: {}}]"))
    with pytest.raises(PolicyError, match="decision tables"):
        engine.emitted_codes(model)


def test_facts_that_do_not_fit_the_policy_are_a_policy_error() -> None:
    snapshot = facts()
    del snapshot["parcels"]
    with pytest.raises(PolicyError):
        decide(snapshot)
    with pytest.raises(PolicyError):
        decide({**facts(), "application": {**facts()["application"],
                                           "amount_fen": float("nan")}})


def test_outcome_json_round_trips_exactly() -> None:
    outcome = decide(case_facts("claim_recent"))
    assert Outcome.from_json(json.loads(json.dumps(outcome.to_json()))) == outcome
    assert isinstance(outcome.limit_fen, int)
    assert isinstance(outcome.score, int)
    share = next(f for f in outcome.factors if f["factor"] == "insurance_cover")
    assert share["value"] == 1
    assert isinstance(share["value"], int)


def test_areas_reach_the_engine_as_exact_decimals() -> None:
    # binary floats would make 0.1 mu x 122,200 fen x 0.5 a hair under 6,110
    snapshot = _one_crop_facts(samples.RICE, [("P-01", "0.10"), ("P-02", "0.20")])
    assert decide(snapshot).limit_fen == 6_110 + 12_220
    assert Decimal(repr(snapshot["parcels"][0]["verified_mu"])) == Decimal("0.10")
