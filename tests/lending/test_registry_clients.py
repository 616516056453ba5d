"""The registry clients over real HTTP on loopback, against the reference registry."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from lending.registries.clients import (
    InsuranceRegistryClient,
    LandRegistryClient,
    _checked_insurance,
    _checked_land,
)
from lending.registries.config import RegistryConfig
from lending.registries.types import (
    Certificate,
    Claim,
    InsurancePolicy,
    LandRecord,
    Parcel,
    Pledge,
    RegistryUnavailable,
)
from lending.registries.wire import MalformedAnswer
from tests.lending.conftest import HOLDER, OTHER
from tests.servers import free_port


def parcel_json(code: str, area: Any = "3.25", pledges: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    return {"code": code, "area_mu": area, "land_class": "paddy",
            "village_code": "330521101201", "latitude": "30.512345",
            "longitude": 120.123456, "contract_start": "1998-01-01",
            "contract_end": "2057-12-31", "pledges": pledges or []}


def land_json(holder: str, number: str, *parcels: dict[str, Any]) -> dict[str, Any]:
    return {"certificates": [{"number": number, "holder_hash": holder, "holder_name": "张德福",
                              "parcels": list(parcels)}]}


PLEDGE = {"creditor": "德清农村商业银行", "amount_yuan": "50000.5", "start": "2025-03-01",
          "end": "2028-02-29", "active": True}
INSURANCE = {
    "policies": [{"number": "PICC2026000001", "crop": "rice", "insured_area_mu": 6.5,
                  "sum_insured_yuan": "6500.00", "start": "2026-04-01", "end": "2026-11-30",
                  "status": "active", "parcel_codes": ["P-1"], "agent": "ignored"}],
    "claims": [{"policy_number": "PICC2026000001", "event": "flood",
                "event_date": "2026-07-12", "loss_ratio": "0.35", "status": "assessed"}],
}


def land_requests(registry: Any) -> list[dict[str, Any]]:
    return registry.requests("land")


# --- answers -------------------------------------------------------------------------------

def test_land_records_are_typed(registry, registry_config) -> None:
    registry.plant(HOLDER, land=land_json(HOLDER, "CERT-1", parcel_json("P-1", pledges=[PLEDGE]),
                                          parcel_json("P-2", area=12)))
    record = LandRegistryClient(registry_config).records(HOLDER, ["CERT-1"])
    assert record == LandRecord(holder_hash=HOLDER, certificates=(Certificate(
        number="CERT-1", holder_hash=HOLDER, holder_name="张德福", parcels=(
            Parcel(code="P-1", area_mu=Decimal("3.25"), land_class="paddy",
                   village_code="330521101201", latitude=Decimal("30.512345"),
                   longitude=Decimal("120.123456"), contract_start=date(1998, 1, 1),
                   contract_end=date(2057, 12, 31),
                   pledges=(Pledge(creditor="德清农村商业银行", amount_fen=5_000_050,
                                   start=date(2025, 3, 1), end=date(2028, 2, 29), active=True),)),
            Parcel(code="P-2", area_mu=Decimal(12), land_class="paddy",
                   village_code="330521101201", latitude=Decimal("30.512345"),
                   longitude=Decimal("120.123456"), contract_start=date(1998, 1, 1),
                   contract_end=date(2057, 12, 31)))),))
    assert len(land_requests(registry)) == 1  # a number the holder holds needs no second call


def test_other_holders_certificates_are_foreign_and_unknown_numbers_absent(
        registry, registry_config) -> None:
    registry.plant(HOLDER, land=land_json(HOLDER, "CERT-A", parcel_json("PA")))
    registry.plant(OTHER, land=land_json(OTHER, "CERT-B", parcel_json("PB")))
    record = LandRegistryClient(registry_config).records(HOLDER, ["CERT-B", "NEVER-1", "CERT-A"])
    assert [c.number for c in record.certificates] == ["CERT-A"]
    assert [(c.number, c.holder_hash) for c in record.foreign] == [("CERT-B", OTHER)]
    assert sorted(r["endpoint"] for r in land_requests(registry)) == [
        "/certificates/{number}", "/certificates/{number}", "/holders/{hash}/certificates"]


def test_insurance_records_are_typed(registry, registry_config) -> None:
    registry.plant(HOLDER, insurance=INSURANCE)
    record = InsuranceRegistryClient(registry_config).records(HOLDER)
    assert record.policies == (InsurancePolicy(
        number="PICC2026000001", crop="rice", insured_area_mu=Decimal("6.5"),
        sum_insured_fen=650_000, start=date(2026, 4, 1), end=date(2026, 11, 30),
        status="active", parcel_codes=("P-1",)),)
    assert record.claims == (Claim(policy_number="PICC2026000001", event="flood",
                                   event_date=date(2026, 7, 12), loss_ratio=Decimal("0.35"),
                                   status="assessed"),)


def test_a_holder_the_registries_do_not_know_holds_nothing(registry, registry_config) -> None:
    registry.plant(HOLDER, land=None, insurance=None)  # both answer 404
    assert LandRegistryClient(registry_config).records(HOLDER, ["X"]) == LandRecord(
        holder_hash=HOLDER, certificates=())
    record = InsuranceRegistryClient(registry_config).records(HOLDER)
    assert (record.policies, record.claims) == ((), ())
    assert [r["status"] for r in registry.requests()] == [404, 404, 404]


def test_connections_are_kept_alive(registry, registry_config) -> None:
    for _ in range(3):
        InsuranceRegistryClient(registry_config).records(HOLDER)
    connections = {r["connection"] for r in registry.requests("insurance")}
    assert len(connections) == 1


def test_an_answer_about_another_holder_is_malformed() -> None:
    answer = {"holder_hash": OTHER, "certificates": []}
    with pytest.raises(MalformedAnswer, match="another holder"):
        _checked_land(answer, HOLDER)
    with pytest.raises(MalformedAnswer, match="another holder"):
        _checked_insurance({**answer, "policies": [], "claims": []}, HOLDER)


def test_a_malformed_hash_is_the_callers_bug(registry_config) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        InsuranceRegistryClient(registry_config).records("../admin")


# --- faults --------------------------------------------------------------------------------

def unavailable(call: Any) -> RegistryUnavailable:
    with pytest.raises(RegistryUnavailable) as caught:
        call()
    return caught.value


def test_5xx_is_retried_with_backoff_then_succeeds(registry, registry_config) -> None:
    registry.faults("land", "error", status=503, count=2)
    record = LandRegistryClient(registry_config).records(HOLDER)
    assert record.certificates  # the synthetic holder's
    assert [r["status"] for r in land_requests(registry)] == [503, 503, 200]


def test_persistent_5xx_is_unavailable_after_the_retries(registry, registry_config) -> None:
    registry.faults("insurance", "error", status=502)
    failure = unavailable(lambda: InsuranceRegistryClient(registry_config).records(HOLDER))
    assert (failure.registry, failure.reason) == ("insurance", "error")
    assert failure.status == 503
    assert failure.code == "registry-unavailable"
    assert registry.count("insurance") == 1 + registry_config.retries


@pytest.mark.parametrize("status", [500, 429, 401])
def test_500_and_4xx_are_not_retried(registry, registry_config, status) -> None:
    registry.faults("land", "error", status=status)
    assert unavailable(lambda: LandRegistryClient(registry_config).records(HOLDER)).reason == (
        "error")
    assert registry.count("land") == 1


def test_a_404_that_is_not_the_registrys_is_an_error(registry, registry_config) -> None:
    # a wrong base URL: the server's own HTML 404 must not read as "holds nothing"
    wrong = replace(registry_config, land_url=f"{registry.url}/lands")
    assert unavailable(lambda: LandRegistryClient(wrong).records(HOLDER)).reason == "error"


@pytest.mark.parametrize("variant", ["text", "shape", "truncated"])
def test_a_malformed_answer_is_unavailable(registry, registry_config, variant) -> None:
    registry.faults("both", "malformed", variant=variant)
    failure = unavailable(lambda: LandRegistryClient(registry_config).records(HOLDER))
    assert (failure.registry, failure.reason) == ("land", "malformed")
    failure = unavailable(lambda: InsuranceRegistryClient(registry_config).records(HOLDER))
    assert (failure.registry, failure.reason) == ("insurance", "malformed")


def test_a_hanging_registry_times_out(registry, registry_config) -> None:
    quick = replace(registry_config, timeout_ms=300)
    registry.faults("land", "timeout")  # hangs 30 s (woken by the fixture's reset)
    assert unavailable(lambda: LandRegistryClient(quick).records(HOLDER)).reason == "timeout"
    assert registry.count("land") == 1  # a read timeout is not retried


def test_a_trickling_answer_times_out_on_the_body_deadline(registry, registry_config) -> None:
    # 4 bytes every 100 ms: every read gets something well within its 300 ms timeout, but
    # the whole body (about a kilobyte) would take half a minute
    quick = replace(registry_config, timeout_ms=300)
    registry.faults("insurance", "trickle", chunk_bytes=4, interval_ms=100)
    failure = unavailable(lambda: InsuranceRegistryClient(quick).records(HOLDER))
    assert (failure.registry, failure.reason) == ("insurance", "timeout")


def test_a_registry_that_is_down_is_unavailable(registry_config) -> None:
    down = replace(registry_config, land_url=f"http://127.0.0.1:{free_port()}/land")
    failure = unavailable(lambda: LandRegistryClient(down).records(HOLDER))
    assert (failure.registry, failure.reason) == ("land", "error")


# --- the circuit breaker -------------------------------------------------------------------

def test_the_breaker_opens_after_n_failures_then_fails_fast(registry, registry_config) -> None:
    config = replace(registry_config, retries=0, breaker_failures=3, breaker_reset_seconds=600)
    registry.faults("land", "error")
    reasons = [unavailable(lambda: LandRegistryClient(config).records(HOLDER)).reason
               for _ in range(3)]
    assert reasons == ["error", "error", "error"]  # the third trips it, with its own reason
    registry.faults("land", "none")
    assert unavailable(lambda: LandRegistryClient(config).records(HOLDER)).reason == (
        "circuit-open")
    assert registry.count("land") == 3  # the refused call sent nothing
    # the other registry has its own breaker
    assert InsuranceRegistryClient(config).records(HOLDER).holder_hash == HOLDER


def test_after_the_reset_time_one_trial_call_closes_it(registry, registry_config) -> None:
    config = replace(registry_config, retries=0, breaker_failures=1, breaker_reset_seconds=0)
    registry.faults("insurance", "error", count=1)
    assert unavailable(lambda: InsuranceRegistryClient(config).records(HOLDER)).reason == "error"
    assert InsuranceRegistryClient(config).records(HOLDER).holder_hash == HOLDER
    assert registry.count("insurance") == 2


# --- logs ----------------------------------------------------------------------------------

def test_logs_never_hold_the_holder_hash(registry, registry_config: RegistryConfig,
                                         caplog) -> None:
    caplog.set_level(logging.DEBUG)
    registry.faults("land", "error", count=1)
    LandRegistryClient(registry_config).records(HOLDER)
    registry.faults("both", "malformed", variant="shape")
    unavailable(lambda: InsuranceRegistryClient(registry_config).records(HOLDER))
    down = replace(registry_config, land_url=f"http://127.0.0.1:{free_port()}/land")
    unavailable(lambda: LandRegistryClient(down).records(HOLDER))
    texts = [f"{r.getMessage()} {vars(r)}" for r in caplog.records]
    assert any("registry unavailable" in t for t in texts)
    assert any("Retry" in t for t in texts)  # urllib3's own lines, which carry the URL
    assert not [t for t in texts if HOLDER in t]
