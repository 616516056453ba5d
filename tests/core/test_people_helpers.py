"""Shared helpers for the places and people tests (no tests here).

A small "world": one county and township with villages A and B, each served by its own
station with its own coordinator and farmer, and an admin.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.db import utcnow
from core.people.models import Consent, Coordinator, Farmer, Staff
from core.places.models import County, Station, Township, Village
from tests import factories as f

API = "/api/v1"
PROBLEM = "application/problem+json"


def creating(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus a fresh Idempotency-Key, as clients send on creating requests."""
    return {**headers, "Idempotency-Key": str(uuid.uuid4())}


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    if code is not None:
        assert body["code"] == code, body
    return body


def consent(session: Any, farmer: Farmer, purpose: str = "land_registry", days: int = 30,
            revoked: bool = False) -> Consent:
    now = utcnow()
    row = Consent(farmer=farmer, purpose=purpose, granted_at=now,
                  expires_at=now + timedelta(days=days), channel="coordinator",
                  recorded_by="system", revoked_at=now if revoked else None)
    session.add(row)
    session.flush()
    return row


@dataclass
class World:
    county: County
    township: Township
    village_a: Village
    village_b: Village
    station_a: Station
    station_b: Station
    coordinator_a: Coordinator
    coordinator_b: Coordinator
    farmer_a: Farmer
    farmer_b: Farmer
    admin: Staff


def build_world(session: Any) -> World:
    county = f.county(session)
    township = f.township(session, county)
    village_a, village_b = f.village(session, township), f.village(session, township)
    station_a, station_b = f.station(session, [village_a]), f.station(session, [village_b])
    world = World(
        county=county, township=township, village_a=village_a, village_b=village_b,
        station_a=station_a, station_b=station_b,
        coordinator_a=f.coordinator(session, station_a),
        coordinator_b=f.coordinator(session, station_b),
        farmer_a=f.farmer(session, village_a), farmer_b=f.farmer(session, village_b),
        admin=f.staff(session, ("admin",)),
    )
    session.commit()
    return world
