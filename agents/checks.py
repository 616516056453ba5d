"""``identity_check``: the coordinator saw the person and their ID card (or could not).

Immediate, not buffered: a verified check of a farmer whose identity is ``pending`` (a profile
signed up alone from a phone, or registered from a device) makes it ``verified``, which writes
the farmer. The check itself is a :class:`~agents.models.FieldVisit` of kind
``identity_check``, immutable like every visit (its change-log entry comes from the feed's ORM
listener, :func:`sync.feed.changes.watch`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa

from agents import lookups, payloads, plausibility
from agents.models import IDENTITY_CHECK, FieldVisit
from core import audit
from core.i18n import _
from core.people.models import Farmer
from sync.registry import Deferred, Op, Outcome, Rejected

if TYPE_CHECKING:
    from sync.push.engine import Context

KEYS: Final = ("farmer_id", "verified", "assignment_id", "photos", "notes")


def identity_check(ctx: Context, op: Op) -> Outcome:
    payload, errors = op.payload, payloads.Errors()
    farmer_id = payloads.a_uuid(payload, "farmer_id", errors)
    verified = payloads.boolean(payload, "verified", errors)
    assignment_id = payloads.a_uuid(payload, "assignment_id", errors, required=False)
    photos = payloads.photos(payload, "photos", errors)
    notes = payloads.notes(payload, errors)
    payloads.check(payload, KEYS, errors)
    session = ctx.session
    if lookups.taken_visit_ids(session, {op.entity_id}):
        raise Rejected(payloads.NOT_ALLOWED, _("This check id was used before; a new check "
                                               "needs a new id."))
    ids = {farmer_id} if farmer_id else set()
    farmer = lookups.farmer_in_scope(lookups.farmers(session, ids), farmer_id, ctx.village_ids)
    assignment = lookups.assignment_for(
        lookups.assignments(session, {assignment_id} if assignment_id else set()),
        assignment_id, farmer, ctx.village_ids)
    if missing := set(photos) - ctx.attachments_ready(photos):
        raise Deferred("attachment-missing", _("%(n)s photo(s) not uploaded yet.", n=len(missing)))
    flag = plausibility.before_assignment(op.recorded_at, assignment.created_at, _tolerance(ctx)) \
        if assignment else None
    flags = [flag] if flag else []
    visit = FieldVisit(
        public_id=op.entity_id, created_at=ctx.received_at, kind=IDENTITY_CHECK,
        coordinator_id=ctx.coordinator_id, device_id=ctx.device_id, farmer_id=farmer.id,
        village_id=farmer.village_id, assignment_id=assignment.id if assignment else None,
        payload={"verified": verified, "notes": notes}, photos=photos, flags=flags,
        recorded_at=op.recorded_at)
    session.add(visit)
    session.flush()
    codes = [f["code"] for f in flags]
    audit.record(session, "identity_check.recorded", visit, actor=ctx.actor, summary={
        "farmer_id": str(farmer.public_id), "verified": verified, "flags": codes})
    if verified:
        _verify(ctx, farmer.id, op)
    return Outcome({"entity_id": str(op.entity_id), "flags": codes})


def _tolerance(ctx: Context) -> timedelta:
    return timedelta(minutes=int(ctx.config["NONGDAI_SYNC_CLOCK_TOLERANCE_MINUTES"]))


def _verify(ctx: Context, farmer_id: int, op: Op) -> None:
    """A pending identity becomes verified (once; a verified one stays as it is)."""
    farmer = ctx.session.scalars(sa.select(Farmer).where(
        Farmer.id == farmer_id, Farmer.identity_status == "pending")).first()
    if farmer is None:
        return
    farmer.identity_status = "verified"
    ctx.session.flush()
    audit.record(ctx.session, "farmer.identity_verified", farmer, actor=ctx.actor,
                 summary={"identity_check_id": str(op.entity_id)})
