"""The ``visit`` kind devices pull: visits recorded in the station's villages, compact.

So that a colleague's phone knows a farmer or a parcel was already visited: who visited whom,
what, when (device clock), for which assignment, and the flags found; no photos, notes or
locations (staff see those). Keys with no value are left out; ids are public UUIDs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from agents.models import FieldVisit
from core.db import DbSession
from core.people.models import Coordinator, Farmer
from lending.applications.models import FieldAssignment

KIND = "visit"
_SHOWN = ("crop_condition", "funds_used_as_declared", "verified")


def _select() -> sa.Select[Any]:
    return (sa.select(FieldVisit.public_id, FieldVisit.kind, FieldVisit.parcel_code,
                      FieldVisit.crop_seen, FieldVisit.estimated_area_mu, FieldVisit.payload,
                      FieldVisit.flags, FieldVisit.recorded_at,
                      Farmer.public_id.label("farmer"), Coordinator.public_id.label("by"),
                      FieldAssignment.public_id.label("assignment"))
            .join(Farmer, Farmer.id == FieldVisit.farmer_id)
            .join(Coordinator, Coordinator.id == FieldVisit.coordinator_id)
            .outerjoin(FieldAssignment, FieldAssignment.id == FieldVisit.assignment_id))


def _data(row: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": row.kind, "farmer_id": str(row.farmer), "coordinator_id": str(row.by),
        "recorded_at": row.recorded_at.isoformat(),
        "flags": [flag["code"] for flag in row.flags or []],
    }
    if row.assignment is not None:
        data["assignment_id"] = str(row.assignment)
    if row.parcel_code is not None:
        data["parcel_code"] = row.parcel_code
    if row.crop_seen is not None:
        data["crop_seen"] = row.crop_seen
    if row.estimated_area_mu is not None:
        data["estimated_area_mu"] = f"{row.estimated_area_mu:.2f}"
    payload = row.payload or {}
    data.update({key: payload[key] for key in _SHOWN if payload.get(key) is not None})
    return data


def load(session: DbSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The current state of each visit still stored (visits are never deleted)."""
    if not ids:
        return {}
    rows = session.execute(_select().where(FieldVisit.public_id.in_(list(ids))))
    return {row.public_id: _data(row) for row in rows}


def snapshot(session: DbSession, village_ids: frozenset[int], after: uuid.UUID | None,
             limit: int) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """The scope's visits by id, ``limit`` after ``after`` (a first pull's pages)."""
    if not village_ids:
        return []
    stmt = _select().where(FieldVisit.village_id.in_(sorted(village_ids)))
    if after is not None:
        stmt = stmt.where(FieldVisit.public_id > after)
    rows = session.execute(stmt.order_by(FieldVisit.public_id).limit(limit))
    return [(row.public_id, _data(row)) for row in rows]
