"""Helpers for the tests of agents' operations (no tests here): a station with its villages,
coordinators and farmers, and a device that pushes operations through ``POST /sync/push``
with a device-bound session, as the protocol describes (docs/sync-protocol.md §3)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from core.db import utcnow
from core.people.models import Coordinator, Farmer
from core.places.models import Village
from lending.registries.models import LandParcel
from sync.push import canonical
from tests import factories as f

API = "/api/v1"
PUSH = f"{API}/sync/push"
UPLOADS = f"{API}/sync/uploads"


@dataclass
class World:
    village: Village
    neighbour: Village  # same station
    elsewhere: Village  # another station's
    coordinator: Coordinator
    outsider: Coordinator  # the other station's coordinator
    farmer: Farmer
    stranger: Farmer  # a farmer of the other station's village


def build(session: Any) -> World:
    county = f.county(session)
    town = f.township(session, county)
    village, neighbour, elsewhere = f.village(session, town), f.village(session, town), \
        f.village(session, town)
    station, other = f.station(session, [village, neighbour]), f.station(session, [elsewhere])
    world = World(village=village, neighbour=neighbour, elsewhere=elsewhere,
                  coordinator=f.coordinator(session, station),
                  outsider=f.coordinator(session, other),
                  farmer=f.farmer(session, village), stranger=f.farmer(session, elsewhere))
    session.commit()
    return world


def parcel(session: Any, farmer: Farmer, code: str, lat_e7: int, lon_e7: int) -> None:
    """A registry parcel with its location (what lending keeps from land answers)."""
    session.add(LandParcel(farmer_id=farmer.id, village_id=farmer.village_id,
                           certificate_number="CERT-T", parcel_code=code, area_mu=Decimal("5.00"),
                           land_class="paddy", lat_e7=lat_e7, lon_e7=lon_e7,
                           contract_end=date(2057, 12, 31), source="registry"))
    session.commit()


@dataclass
class Device:
    """A coordinator's phone: its session, and the next ``device_seq`` to give."""

    client: Any
    headers: dict[str, str]
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)

    def op(self, type_: str, payload: dict[str, Any], *, entity_id: uuid.UUID | None = None,
           base_version: int | None = None, recorded_at: datetime | None = None) -> dict[str, Any]:
        self.seq += 1
        return {"op_id": str(uuid.uuid4()), "device_seq": self.seq, "type": type_,
                "entity_id": str(entity_id or uuid.uuid4()), "base_version": base_version,
                "payload": payload, "payload_sha256": canonical.sha256(payload),
                "recorded_at": (recorded_at or utcnow()).isoformat()}

    def push(self, *ops: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.post(PUSH, json={
            "sent_at": utcnow().isoformat(), "pending": len(ops), "ops": list(ops)},
            headers=self.headers)
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    def send(self, type_: str, payload: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Push one operation; its result item."""
        (item,) = self.push(self.op(type_, payload, **kwargs))["results"]
        return item


def device(client: Any, session: Any, coordinator: Coordinator) -> Device:
    headers, _row = f.device_headers(session, coordinator)
    return Device(client, headers)


def visit(farmer: Farmer, code: str = "P-1", *, lat_e7: int = 306_000_000,
          lon_e7: int = 1_201_000_000, accuracy_m: int = 10, **extra: Any) -> dict[str, Any]:
    return {"farmer_id": str(farmer.public_id), "parcel_code": code,
            "location": {"lat_e7": lat_e7, "lon_e7": lon_e7, "accuracy_m": accuracy_m},
            "crop_seen": "rice", "estimated_area_mu": "4.75", **extra}


def upload(client: Any, headers: dict[str, str], data: bytes) -> str:
    """Upload a photo with tus (§5) in one PATCH; its SHA-256."""
    sha = hashlib.sha256(data).hexdigest()
    meta = "sha256 " + base64.b64encode(sha.encode()).decode()
    tus = {**headers, "Tus-Resumable": "1.0.0"}
    made = client.post(UPLOADS, headers={**tus, "Upload-Length": str(len(data)),
                                          "Upload-Metadata": meta})
    assert made.status_code == 201, made.get_data(as_text=True)
    sent = client.patch(made.headers["Location"], data=data, headers={
        **tus, "Upload-Offset": made.headers.get("Upload-Offset", "0"),
        "Content-Type": "application/offset+octet-stream"})
    assert sent.status_code == 204, sent.get_data(as_text=True)
    return sha


def later(at: datetime, **delta: float) -> datetime:
    return at + timedelta(**delta)


def count(session: Any, model: Any, *where: Any) -> int:
    session.rollback()  # see what the requests committed
    return int(session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)))
