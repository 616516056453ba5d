"""Parcel visits and post-loan visits: the push's buffered fast path.

``prepare`` reads, once per batch and in a few set-based queries, everything the batch's visits
refer to (:class:`Batch`); ``apply`` then checks one visit against it and writes the visit, its
change-log entry and its audit event through the engine's buffers. Per visit no SQL is issued:
the engine writes the batch's rows with one executemany per table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from agents import lookups, payloads, plausibility
from agents.models import PARCEL_VISIT, POST_LOAN_VISIT, FieldVisit
from agents.plausibility import Fix, Timeline
from core.db import table
from core.i18n import _
from sync.registry import Deferred, Op, Outcome, Rejected

if TYPE_CHECKING:
    from sync.push.engine import Context

CACHE: Final = "agents.visits"
VISITS: Final = table(FieldVisit)
CROP_MAX: Final = 30
CONDITIONS: Final = ("good", "fair", "poor", "failed")
PARCEL_KEYS: Final = ("farmer_id", "parcel_code", "location", "crop_seen", "estimated_area_mu",
                      "assignment_id", "photos", "notes")
POST_LOAN_KEYS: Final = ("farmer_id", "assignment_id", "crop_condition",
                         "funds_used_as_declared", "risk_flags", "location", "photos", "notes")


@dataclass
class Batch:
    """What one push batch's visits refer to, read in :func:`prepare`."""

    farmers: dict[uuid.UUID, lookups.FarmerRef] = field(default_factory=dict)
    assignments: dict[uuid.UUID, lookups.AssignmentRef] = field(default_factory=dict)
    parcels: dict[str, tuple[int, int]] = field(default_factory=dict)
    used: set[uuid.UUID] = field(default_factory=set)  # entity ids taken (stored or this batch)
    ready: set[str] = field(default_factory=set)  # photos fully uploaded
    timeline: Timeline | None = None


# --- prepare: a few queries per batch ----------------------------------------------------------

def _uuids(values: Iterable[Any]) -> set[uuid.UUID]:
    found = set()
    for value in values:
        try:
            found.add(uuid.UUID(value))
        except (TypeError, ValueError, AttributeError):
            continue
    return found


def _strings(values: Iterable[Any]) -> set[str]:
    return {value for value in values if isinstance(value, str)}


def prepare(ctx: Context, ops: Sequence[Op]) -> None:
    """Load the farmers, assignments, registry parcel locations, taken ids, uploaded photos and
    the coordinator's visits around the batch's recorded times: one query each, whatever the
    batch's size. Called once per operation type: a second call adds to the first's cache."""
    batch: Batch = ctx.cache.setdefault(CACHE, Batch())
    loads = [op.payload if isinstance(op.payload, dict) else {} for op in ops]
    session = ctx.session
    batch.farmers.update(lookups.farmers(session, _uuids(p.get("farmer_id") for p in loads)))
    batch.assignments.update(lookups.assignments(
        session, _uuids(p.get("assignment_id") for p in loads)))
    codes = _strings(p.get("parcel_code") for p in loads) - set(batch.parcels)
    batch.parcels.update(lookups.parcel_locations(session, codes))
    batch.used |= lookups.taken_visit_ids(session, {op.entity_id for op in ops})
    shas = _strings(sha for p in loads if isinstance(p.get("photos"), list)
                    for sha in p["photos"])
    if shas - batch.ready:
        batch.ready |= set(ctx.attachments_ready(shas - batch.ready))
    stored = lookups.fixes_around(session, ctx.coordinator_id,
                                  [op.recorded_at for op in ops])
    if batch.timeline is None:
        batch.timeline = Timeline(stored)
    else:
        known = set(batch.timeline.fixes)
        for fix in stored:
            if fix not in known:
                batch.timeline.add(fix)


def batch_of(ctx: Context) -> Batch:
    found: Batch | None = ctx.cache.get(CACHE)
    if found is None:  # pragma: no cover - the engine always prepares first
        raise RuntimeError("visits applied without prepare")
    return found


# --- apply: checks and buffered writes ---------------------------------------------------------

def apply_parcel_visit(ctx: Context, op: Op) -> Outcome:
    payload, errors = op.payload, payloads.Errors()
    farmer_id = payloads.a_uuid(payload, "farmer_id", errors)
    assignment_id = payloads.a_uuid(payload, "assignment_id", errors, required=False)
    code = payloads.text(payload, "parcel_code", errors, longest=payloads.CODE_MAX, shortest=1)
    where = payloads.location(payload, "location", errors, required=True)
    crop = payloads.text(payload, "crop_seen", errors, longest=CROP_MAX, required=False)
    area = payloads.area(payload, "estimated_area_mu", errors)
    photos = payloads.photos(payload, "photos", errors)
    rest = {"notes": payloads.notes(payload, errors)}
    payloads.check(payload, PARCEL_KEYS, errors)
    return _record(ctx, op, Draft(PARCEL_VISIT, farmer_id, assignment_id, where, photos, rest, {
        "parcel_code": code, "crop_seen": crop, "estimated_area_mu": area}))


def apply_post_loan_visit(ctx: Context, op: Op) -> Outcome:
    payload, errors = op.payload, payloads.Errors()
    farmer_id = payloads.a_uuid(payload, "farmer_id", errors)
    assignment_id = payloads.a_uuid(payload, "assignment_id", errors, required=False)
    rest = {
        "crop_condition": payloads.choice(payload, "crop_condition", CONDITIONS, errors),
        "funds_used_as_declared": payloads.boolean(payload, "funds_used_as_declared", errors),
        "risk_flags": payloads.codes(payload, "risk_flags", errors),
        "notes": payloads.notes(payload, errors),
    }
    where = payloads.location(payload, "location", errors, required=False)
    photos = payloads.photos(payload, "photos", errors)
    payloads.check(payload, POST_LOAN_KEYS, errors)
    return _record(ctx, op, Draft(POST_LOAN_VISIT, farmer_id, assignment_id, where, photos, rest, {
        "parcel_code": None, "crop_seen": None, "estimated_area_mu": None}))


@dataclass(frozen=True)
class Draft:
    """A visit's payload, read and checked field by field."""

    kind: str
    farmer_id: uuid.UUID | None
    assignment_id: uuid.UUID | None
    where: tuple[int, int, int] | None
    photos: list[str]
    rest: dict[str, Any]  # the payload column
    columns: dict[str, Any]  # the kind's own columns


def _record(ctx: Context, op: Op, draft: Draft) -> Outcome:
    batch = batch_of(ctx)
    kind, where, photos, columns = draft.kind, draft.where, draft.photos, draft.columns
    if op.entity_id in batch.used:
        raise Rejected(payloads.NOT_ALLOWED, _("This visit id was used before; a new visit "
                                               "needs a new id."))
    _load_late(ctx, batch, draft.farmer_id)
    farmer = lookups.farmer_in_scope(batch.farmers, draft.farmer_id, ctx.village_ids)
    assignment = lookups.assignment_for(batch.assignments, draft.assignment_id, farmer,
                                        ctx.village_ids)
    if missing := [sha for sha in photos if sha not in batch.ready]:
        raise Deferred("attachment-missing", _("%(n)s photo(s) not uploaded yet.", n=len(missing)))
    fix = Fix(op.recorded_at, *where) if where else None
    flags = _flags(ctx, batch, op.recorded_at, fix=fix, parcel_code=columns["parcel_code"],
                   assignment=assignment)
    ctx.insert(VISITS, {
        "public_id": op.entity_id, "created_at": ctx.received_at, "kind": kind,
        "coordinator_id": ctx.coordinator_id, "device_id": ctx.device_id,
        "farmer_id": farmer.id, "village_id": farmer.village_id,
        "assignment_id": assignment.id if assignment else None,
        "lat_e7": where[0] if where else None, "lon_e7": where[1] if where else None,
        "accuracy_m": where[2] if where else None, **columns,
        "payload": draft.rest, "photos": photos, "flags": flags, "recorded_at": op.recorded_at,
    })
    ctx.changed("visit", op.entity_id, farmer.village_id)
    codes = [flag["code"] for flag in flags]
    ctx.audit("visit.recorded", VISITS.name, str(op.entity_id), {
        "kind": kind, "farmer_id": str(farmer.public_id), "flags": codes})
    batch.used.add(op.entity_id)
    if fix is not None and batch.timeline is not None:
        batch.timeline.add(fix)
    return Outcome({"entity_id": str(op.entity_id), "flags": codes})


def _load_late(ctx: Context, batch: Batch, farmer_id: uuid.UUID | None) -> None:
    """A farmer ``prepare`` did not find may have been registered by an earlier operation of
    this batch (an immediate one, applied since): look once more. Only a miss costs a query
    (a rejection, or that rare case); the visits of known farmers issue none."""
    if farmer_id is not None and farmer_id not in batch.farmers:
        batch.farmers.update(lookups.farmers(ctx.session, {farmer_id}))


def _flags(ctx: Context, batch: Batch, recorded_at: datetime, *, fix: Fix | None,
           parcel_code: str | None, assignment: lookups.AssignmentRef | None,
           ) -> list[dict[str, Any]]:
    """Every plausibility finding on this visit (none is a refusal)."""
    config = ctx.config
    found = []
    if fix is not None and parcel_code is not None:
        found.append(plausibility.far_from_parcel(
            fix, batch.parcels.get(parcel_code), int(config["NONGDAI_PLAUSIBLE_GPS_METERS"])))
    if fix is not None and batch.timeline is not None:
        found.append(batch.timeline.impossible(fix, int(config["NONGDAI_PLAUSIBLE_SPEED_KMH"])))
    if assignment is not None:
        tolerance = timedelta(minutes=int(config["NONGDAI_SYNC_CLOCK_TOLERANCE_MINUTES"]))
        found.append(plausibility.before_assignment(recorded_at, assignment.created_at,
                                                    tolerance))
    return [flag for flag in found if flag is not None]
