"""Set-based reads for a push batch, and the scope checks made on what they found.

Each reader takes every id of the batch at once and answers in one query: the handlers call
them from ``prepare`` and then look rows up in dictionaries, issuing no SQL per operation.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa

from agents import payloads
from agents.models import FieldVisit
from agents.plausibility import Fix
from core.db import DbSession
from core.i18n import _
from core.people.models import Farmer
from lending.applications.models import Application, FieldAssignment
from lending.registries import parcels
from sync.registry import Rejected


class FarmerRef(NamedTuple):
    id: int
    public_id: uuid.UUID
    village_id: int


class AssignmentRef(NamedTuple):
    id: int
    public_id: uuid.UUID
    village_id: int
    created_at: datetime
    farmer_id: int


def farmers(session: DbSession, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, FarmerRef]:
    if not ids:
        return {}
    rows = session.execute(sa.select(Farmer.id, Farmer.public_id, Farmer.village_id)
                           .where(Farmer.public_id.in_(ids)))
    return {row.public_id: FarmerRef(*row) for row in rows}


def assignments(session: DbSession,
                ids: Collection[uuid.UUID]) -> dict[uuid.UUID, AssignmentRef]:
    if not ids:
        return {}
    rows = session.execute(
        sa.select(FieldAssignment.id, FieldAssignment.public_id, FieldAssignment.village_id,
                  FieldAssignment.created_at, Application.farmer_id)
        .join(Application, Application.id == FieldAssignment.application_id)
        .where(FieldAssignment.public_id.in_(ids)))
    return {row.public_id: AssignmentRef(*row) for row in rows}


def taken_visit_ids(session: DbSession, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """The ids among ``ids`` that stored visits already carry."""
    if not ids:
        return set()
    return set(session.scalars(sa.select(FieldVisit.public_id)
                               .where(FieldVisit.public_id.in_(ids))))


def parcel_locations(session: DbSession, codes: Collection[str]) -> dict[str, tuple[int, int]]:
    """The registry's location of each parcel code, ``(lat_e7, lon_e7)`` (codes without one
    are left out): lending's register of land parcels, one query."""
    return parcels.locations(session, codes) if codes else {}


def fixes_around(session: DbSession, coordinator_id: int,
                 times: Iterable[datetime]) -> list[Fix]:
    """The coordinator's located visits that can neighbour a batch recorded at ``times``: the
    last one before the earliest, those within, the first one after the latest."""
    moments = sorted(times)
    if not moments:
        return []
    first, last = moments[0], moments[-1]
    located = sa.select(FieldVisit.recorded_at, FieldVisit.lat_e7, FieldVisit.lon_e7,
                        FieldVisit.accuracy_m).where(
        FieldVisit.coordinator_id == coordinator_id, FieldVisit.lat_e7.is_not(None))
    before = located.where(FieldVisit.recorded_at < first) \
        .order_by(FieldVisit.recorded_at.desc()).limit(1)
    within = located.where(FieldVisit.recorded_at.between(first, last))
    after = located.where(FieldVisit.recorded_at > last).order_by(FieldVisit.recorded_at).limit(1)
    rows = session.execute(sa.union_all(before.subquery().select(), within,
                                        after.subquery().select()))
    return [Fix(row.recorded_at, row.lat_e7, row.lon_e7, row.accuracy_m or 0) for row in rows]


# --- scope checks ------------------------------------------------------------------------------

def farmer_in_scope(found: Mapping[uuid.UUID, FarmerRef], farmer_id: uuid.UUID | None,
                    village_ids: Collection[int]) -> FarmerRef:
    """The farmer, if in the coordinator's villages; else ``not-found`` (as for a farmer that
    does not exist: scoping never tells what exists elsewhere)."""
    farmer = found.get(farmer_id) if farmer_id is not None else None
    if farmer is None or farmer.village_id not in village_ids:
        raise Rejected(payloads.NOT_FOUND, _("No farmer with that id in your villages."))
    return farmer


def assignment_for(found: Mapping[uuid.UUID, AssignmentRef], assignment_id: uuid.UUID | None,
                   farmer: FarmerRef, village_ids: Collection[int]) -> AssignmentRef | None:
    """The visit's assignment (optional): in scope, and for this farmer."""
    if assignment_id is None:
        return None
    assignment = found.get(assignment_id)
    if assignment is None or assignment.village_id not in village_ids:
        raise Rejected(payloads.NOT_FOUND, _("No assignment with that id in your villages."))
    if assignment.farmer_id != farmer.id:
        raise Rejected(payloads.INVALID, _("The assignment is for another farmer."),
                       {"assignment_id": [_("Not an assignment of this farmer.")]})
    return assignment
