"""Lookups for one application: concurrency, the cache, failures, snapshots (real HTTP)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import has_app_context

from core.db import db, utcnow
from lending.registries import service
from lending.registries.models import RegistryCache
from lending.registries.types import InsuranceRecord, LandRecord
from tests.lending.conftest import HOLDER, OTHER
from tests.lending.test_registry_clients import INSURANCE, PLEDGE, land_json, parcel_json


def overlap(first: dict, second: dict) -> bool:
    return first["started"] < second["ended"] and second["started"] < first["ended"]


def test_land_and_insurance_are_asked_at_the_same_time(registry, registry_config) -> None:
    registry.faults("both", "none", latency_ms=200)
    assert not has_app_context()  # fetch needs none: it may run in any thread
    result = service.fetch(registry_config, HOLDER, [], land=True, insurance=True)
    assert result.failures == {}
    assert result.sources == {"land": "http", "insurance": "http"}
    assert result.land.holder_hash == HOLDER
    assert result.insurance.holder_hash == HOLDER
    land, insurance = registry.requests("land"), registry.requests("insurance")
    assert len(land) == len(insurance) == 1
    assert overlap(land[0], insurance[0])  # as the registry saw them


def test_only_what_was_asked_is_fetched(registry, registry_config) -> None:
    result = service.fetch(registry_config, HOLDER, [], land=False, insurance=True)
    assert result.land is None
    assert isinstance(result.insurance, InsuranceRecord)
    assert registry.count("land") == 0
    assert registry.count("insurance") == 1


def test_a_cache_hit_asks_no_registry(registry, session) -> None:
    registry.plant(HOLDER, land=land_json(HOLDER, "CERT-1", parcel_json("P-1")))
    first = service.lookup(session, HOLDER, ["CERT-1"])
    session.commit()
    assert first.from_cache == set()
    assert registry.count() == 2
    second = service.lookup(session, HOLDER, [" CERT-1 ", "CERT-1"])  # the same request
    assert second.from_cache == {"land", "insurance"}
    assert (second.land, second.insurance) == (first.land, first.insurance)
    assert registry.count() == 2
    other = service.lookup(session, HOLDER, ["CERT-1", "CERT-9"])  # other numbers: land again
    assert other.from_cache == {"insurance"}
    assert registry.count("land") == 1 + 2


def test_an_expired_answer_is_asked_again(registry, session) -> None:
    service.lookup(session, HOLDER, [])
    session.execute(sa.update(RegistryCache).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    have = service.cached(session, HOLDER, [], land=True, insurance=True)
    assert (have.land, have.insurance) == (None, None)
    assert service.lookup(session, HOLDER, []).from_cache == set()
    assert registry.count() == 4


def test_no_cache_when_its_time_is_zero(registry, registry_config, session) -> None:
    config = replace(registry_config, cache_seconds=0)
    service.lookup(session, HOLDER, [], config=config)
    service.lookup(session, HOLDER, [], config=config)
    assert registry.count() == 4
    assert session.scalar(sa.select(sa.func.count()).select_from(RegistryCache)) == 0


def test_a_failed_registry_is_a_failure_not_an_exception(registry, session) -> None:
    registry.faults("land", "error")
    result = service.lookup(session, HOLDER, ["CERT-1"])
    assert set(result.failures) == {"land"}
    assert not result.complete
    assert (result.failures["land"].registry, result.failures["land"].reason) == ("land", "error")
    assert result.land is None
    assert isinstance(result.insurance, InsuranceRecord)
    rows = session.scalars(sa.select(RegistryCache.registry_name)).all()
    assert rows == ["insurance"]  # failures are never cached


def test_an_open_breaker_is_a_failure_too(registry, registry_config) -> None:
    config = replace(registry_config, retries=0, breaker_failures=1)
    registry.faults("insurance", "error")
    service.fetch(config, HOLDER, [], land=False, insurance=True)
    result = service.fetch(config, HOLDER, [], land=False, insurance=True)
    assert result.failures["insurance"].reason == "circuit-open"


def test_two_writers_of_the_same_key_both_succeed(registry, registry_config, app) -> None:
    result = service.fetch(registry_config, HOLDER, [], land=True, insurance=True)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with app.app_context():
                service.remember(db.session, result)
                db.session.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    with app.app_context():
        service.remember(db.session, result)  # holds its row (PostgreSQL) or the lock (SQLite)
        other = threading.Thread(target=writer)
        other.start()
        db.session.commit()
    other.join(30)
    assert errors == []
    assert not other.is_alive()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RegistryCache)) == 2


def test_remember_again_updates_in_place(registry, registry_config, session) -> None:
    result = service.fetch(registry_config, HOLDER, [], land=True, insurance=True)
    assert service.remember(session, result) == 2
    later = replace(result, fetched_at=result.fetched_at + timedelta(seconds=5))
    assert service.remember(session, later) == 2
    expires = session.scalars(sa.select(RegistryCache.expires_at)).all()
    assert len(expires) == 2
    assert set(expires) == {later.fetched_at + timedelta(seconds=result.cache_seconds)}


# --- snapshots -------------------------------------------------------------------------------

def test_records_survive_a_json_round_trip(registry, registry_config) -> None:
    registry.plant(HOLDER, land=land_json(HOLDER, "CERT-A", parcel_json("PA", pledges=[PLEDGE])),
                   insurance=INSURANCE)
    registry.plant(OTHER, land=land_json(OTHER, "CERT-B", parcel_json("PB", area="1.5")))
    result = service.fetch(registry_config, HOLDER, ["CERT-A", "CERT-B"], land=True,
                           insurance=True)
    assert result.land.foreign  # the round trip carries foreign certificates too
    for name, record in (("land", result.land), ("insurance", result.insurance)):
        stored = service.to_json(record)
        assert service.from_json(name, stored) == record
    assert service.land_from_json(service.to_json(result.land)) == result.land
    assert service.insurance_from_json(service.to_json(result.insurance)) == result.insurance


def test_a_damaged_snapshot_is_refused() -> None:
    with pytest.raises(ValueError, match="certificates"):
        service.land_from_json({"holder_hash": HOLDER, "certificates": "none"})
    record = LandRecord(holder_hash=HOLDER, certificates=())
    assert service.land_from_json(service.to_json(record)) == record


# --- the breaker lets calls run at once ------------------------------------------------------

def fetch_land(config, holder: str):
    return service.fetch(config, holder, [], land=True, insurance=False)


def test_calls_to_one_registry_run_at_once(registry, registry_config) -> None:
    registry.faults("land", "none", latency_ms=200)
    threads = [threading.Thread(target=fetch_land, args=(registry_config, holder))
               for holder in (HOLDER, OTHER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    first, second = registry.requests("land")
    assert overlap(first, second)  # the breaker does not serialize them


def test_while_the_trial_call_runs_the_others_fail_fast(registry, registry_config) -> None:
    config = replace(registry_config, retries=0, breaker_failures=1, breaker_reset_seconds=0)
    registry.faults("land", "error", count=1)
    assert fetch_land(config, HOLDER).failures["land"].reason == "error"  # opens it
    registry.faults("land", "timeout", hang_ms=30_000)  # the trial hangs until reset
    trial = threading.Thread(target=fetch_land, args=(config, HOLDER))
    trial.start()
    for _ in range(300):  # until the registry has the trial call (bounded)
        if registry.count("land") == 2:
            break
        threading.Event().wait(0.05)
    assert registry.count("land") == 2
    assert fetch_land(config, OTHER).failures["land"].reason == "circuit-open"
    assert registry.count("land") == 2
    registry.faults("land", "none")
    registry.reset()  # wakes the trial: it answers 503, an error, and the breaker opens again
    trial.join(30)
    assert fetch_land(config, OTHER).failures == {}  # reset time 0: the next trial closes it


def test_fetch_never_reads_an_extract_itself(registry, registry_config) -> None:
    config = replace(registry_config, land_url="extract:")  # cached() reads it, in a session
    result = service.fetch(config, HOLDER, [], land=True, insurance=False)
    assert result.failures["land"].reason == "error"
    assert registry.count() == 0
