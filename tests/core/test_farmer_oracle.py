"""An ID number's existence is rationed per caller: lookups and duplicate refusals share one
limit (``NONGDAI_LOOKUP_PER_USER_PER_HOUR``), so ``POST /farmers`` is no unlimited oracle."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from core.people import idnumber
from tests import factories as f
from tests.core.test_people_helpers import API, World, build_world, creating


@pytest.fixture
def world(session: Any) -> World:
    return build_world(session)


def _farmer_body(world: World, number: str, phone: str) -> dict[str, Any]:
    return {"name": "王五", "phone": phone, "id_number": number,
            "village_id": str(world.village_a.public_id)}


def test_duplicate_refusals_and_lookups_share_one_limit(app: Any, client: Any, session: Any,
                                                        world: World) -> None:
    app.config["NONGDAI_LOOKUP_PER_USER_PER_HOUR"] = 3
    headers = f.auth_headers(session, world.coordinator_a)
    known = f.farmer(session, world.village_a)
    number = idnumber.normalise(_number_of(session, known))
    session.commit()

    def probe(phone: str) -> int:
        body = _farmer_body(world, number, phone)
        return client.post(f"{API}/farmers", json=body, headers=creating(headers)).status_code

    assert probe("13700000001") == 409
    assert probe("13700000002") == 409
    lookup = client.post(f"{API}/farmers/lookup", json={"id_number": number}, headers=headers)
    assert lookup.status_code == 200  # the third answer of three
    assert probe("13700000003") == 429  # the limit is spent: no more yes/no on numbers
    assert client.post(f"{API}/farmers/lookup", json={"id_number": number},
                       headers=headers).status_code == 429

    new = _farmer_body(world, idnumber.make("330521", date(1990, 1, 2), 77), "13700000004")
    created = client.post(f"{API}/farmers", json=new, headers=creating(headers))
    assert created.status_code == 201  # registering a new farmer is not a probe


def test_the_limit_is_per_caller(app: Any, client: Any, session: Any, world: World) -> None:
    app.config["NONGDAI_LOOKUP_PER_USER_PER_HOUR"] = 1
    first = f.auth_headers(session, world.coordinator_a)
    second = f.auth_headers(session, f.staff(session))
    known = f.farmer(session, world.village_a)
    number = idnumber.normalise(_number_of(session, known))
    session.commit()
    body = _farmer_body(world, number, "13700000009")

    for headers in (first, second):
        answer = client.post(f"{API}/farmers", json=body, headers=creating(headers))
        assert answer.status_code == 409
    assert client.post(f"{API}/farmers", json=body, headers=creating(first)).status_code == 429


def _number_of(session: Any, farmer: Any) -> str:
    from core.crypto import vault  # noqa: PLC0415

    return vault().decrypt(farmer.id_number_ciphertext, "farmer.id_number")
