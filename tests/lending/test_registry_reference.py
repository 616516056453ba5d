"""The reference registry service: deterministic synthetic records, control API, one command."""

from __future__ import annotations

import hashlib
import sys
from datetime import date
from decimal import Decimal

import pytest
import requests

from lending.registries import wire
from lending.registries.reference import start_in_thread, synthetic
from tests.lending.conftest import HOLDER
from tests.servers import free_port, serve, stop

AS_OF = date(2026, 11, 29)


def holders(n: int) -> list[str]:
    return [hashlib.sha256(f"holder-{i}".encode()).hexdigest() for i in range(n)]


def get(base: str, path: str) -> requests.Response:
    return requests.get(f"{base}{path}", timeout=10)


def test_the_same_hash_gives_the_same_records_on_two_servers() -> None:
    servers = [start_in_thread(seed="s1", as_of=AS_OF) for _ in range(2)]
    other_seed = start_in_thread(seed="s2", as_of=AS_OF)
    try:
        for holder in holders(5):
            answers = [(get(s.land_url, f"/v1/holders/{holder}/certificates").json(),
                        get(s.insurance_url, f"/v1/holders/{holder}/policies").json())
                       for s in (*servers, other_seed)]
            assert answers[0] == answers[1]
            assert answers[0][0] != answers[2][0]
            wire.land_from_json(answers[0][0])  # what the clients read, strictly
            wire.insurance_from_json(answers[0][1])
    finally:
        for server in (*servers, other_seed):
            server.stop()


def test_the_synthetic_population_has_the_documented_shape() -> None:
    population = holders(400)
    lands = [synthetic.land("s1", h, AS_OF) for h in population]
    cover = [synthetic.insurance("s1", h, AS_OF, land) for h, land in zip(population, lands,
                                                                       strict=True)]
    parcels = [p for land in lands for c in land["certificates"] for p in c["parcels"]]
    assert all(1 <= len(land["certificates"]) <= 2 for land in lands)
    assert all(1 <= len(c["parcels"]) <= 4 for land in lands for c in land["certificates"])
    assert all(Decimal("1.5") <= Decimal(p["area_mu"]) <= 12 for p in parcels)
    assert all(30.4 < float(p["latitude"]) < 30.7 and 119.9 < float(p["longitude"]) < 120.3
               for p in parcels)

    def share(flags: list[bool]) -> float:
        return sum(flags) / len(flags)

    short = share([any(p["contract_end"] == "2026-12-31" for c in land["certificates"]
                       for p in c["parcels"]) for land in lands])
    pledged = share([any(p["pledges"] for c in land["certificates"] for p in c["parcels"])
                     for land in lands])
    insured = share([bool(c["policies"]) for c in cover])
    claimed = share([bool(c["claims"]) for c in cover])
    assert 0.05 < short < 0.15
    assert 0.05 < pledged < 0.15
    assert 0.6 < insured < 0.8
    assert 0.05 < claimed < 0.15
    for record in cover:
        for policy in record["policies"]:  # active, covering the day, at the crop's rate
            assert policy["status"] == "active"
            assert policy["start"] <= AS_OF.isoformat() <= policy["end"]
            rate = {"rice": 1000, "wheat": 950}[policy["crop"]]
            assert Decimal(policy["sum_insured_yuan"]) == Decimal(policy["insured_area_mu"]) * rate
        for claim in record["claims"]:
            assert claim["event"] in {"drought", "flood"}
            assert Decimal("0.2") <= Decimal(claim["loss_ratio"]) <= Decimal("0.8")


def test_certificates_answer_once_issued_and_404_otherwise(registry) -> None:
    number = synthetic.land("tests", HOLDER, AS_OF)["certificates"][0]["number"]  # any day
    path = f"/v1/certificates/{number}"
    assert get(registry.land_url, path).status_code == 404  # not issued yet
    get(registry.land_url, f"/v1/holders/{HOLDER}/certificates")
    answer = get(registry.land_url, path)
    assert answer.status_code == 200
    assert answer.json()["holder_hash"] == HOLDER
    assert get(registry.land_url, "/v1/certificates/330521101201J0000000000").status_code == 404


def test_the_control_api_refuses_bad_switches_and_plants(registry) -> None:
    for body in ({"registry": "land", "mode": "explode"},
                 {"registry": "land", "mode": "error", "rate": 2},
                 {"registry": "land", "mode": "none", "extra": 1}):
        assert requests.put(f"{registry.url}/_control/faults", json=body,
                            timeout=10).status_code == 400
    bad = {"land": {"certificates": [{"number": "X"}]}}
    assert requests.put(f"{registry.url}/_control/holders/{HOLDER}", json=bad,
                        timeout=10).status_code == 400
    assert get(registry.land_url, "/v1/holders/not-a-hash/certificates").status_code == 400


def test_a_rate_below_one_faults_some_requests(registry) -> None:
    registry.faults("insurance", "error", rate=0.5)
    statuses = [get(registry.insurance_url, f"/v1/holders/{HOLDER}/policies").status_code
                for _ in range(40)]
    assert 0 < statuses.count(503) < 40
    assert statuses.count(200) > 0


@pytest.mark.slow
def test_it_starts_with_one_command() -> None:
    port = free_port()
    command = [sys.executable, "-m", "lending.registries.reference", "--host", "127.0.0.1",
               "--port", str(port), "--latency-ms", "5", "--seed", "s1", "--as-of", "2026-11-29"]
    with serve(command, port, ready="/_control/health", seconds=60) as server:
        answer = get(server.url("/land"), f"/v1/holders/{HOLDER}/certificates")
        assert answer.json() == synthetic.land("s1", HOLDER, AS_OF)
        assert "reference registry on" in server.output()
        assert stop(server.proc) == 0  # SIGTERM: a clean stop
