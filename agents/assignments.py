"""``assignment_status``: how a coordinator's assignment ended (immediate handler).

* ``done`` on a case's field check gathers what the device recorded for the assignment (its
  latest identity check, its latest visit of each declared parcel, and every plausibility
  flag of those) into one field check, handed to lending's
  :func:`~lending.applications.fieldwork.record_check`: the decision resumes exactly as for a
  check recorded online. On another kind of assignment (a post-loan visit) it only closes it.
* ``farmer_absent`` keeps the assignment open and puts the attempt on its audit trail.
* ``refused`` closes it and sends the case to staff review with the reason
  ``field-check-refused`` (:func:`~lending.applications.fieldwork.refuse`).

Lending never reads agents' tables: agents hands over the evidence (parcels and flags).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa

from agents import payloads
from agents.models import IDENTITY_CHECK, PARCEL_VISIT, FieldVisit
from core.errors import NotFound, ValidationFailed
from core.i18n import _
from lending.applications import fieldwork
from lending.applications.models import FieldAssignment
from sync.registry import Op, Outcome, Rejected

if TYPE_CHECKING:
    from sync.push.engine import Context

DONE: Final = "done"
ABSENT: Final = "farmer_absent"
REFUSED: Final = "refused"
STATUSES: Final = (DONE, ABSENT, REFUSED)
KEYS: Final = ("status", "notes")
E7: Final = 10_000_000


def assignment_status(ctx: Context, op: Op) -> Outcome:
    payload, errors = op.payload, payloads.Errors()
    status = payloads.choice(payload, "status", STATUSES, errors)
    notes = payloads.notes(payload, errors)
    payloads.check(payload, KEYS, errors)
    session = ctx.session
    assignment = session.scalars(sa.select(FieldAssignment).where(
        FieldAssignment.public_id == op.entity_id)).first()
    if assignment is None or assignment.village_id not in ctx.village_ids:
        raise Rejected(payloads.NOT_FOUND, _("No assignment with that id in your villages."))
    result: dict[str, Any] = {"assignment_id": str(assignment.public_id)}
    with _refusals():
        if status == ABSENT:
            fieldwork.record_attempt(session, assignment, coordinator_id=ctx.coordinator_id,
                                     outcome=ABSENT, notes=notes, recorded_at=op.recorded_at)
        elif status == REFUSED:
            check = fieldwork.refuse(session, assignment, client_id=op.op_id,
                                     coordinator_id=ctx.coordinator_id, notes=notes,
                                     recorded_at=op.recorded_at)
            result["field_check_id"] = str(check.public_id)
        elif assignment.kind != fieldwork.FIELD_CHECK:
            fieldwork.complete_assignment(session, assignment,
                                          coordinator_id=ctx.coordinator_id, notes=notes)
        else:
            result["field_check_id"] = _done(ctx, op, assignment, notes)
    session.refresh(assignment)
    result["status"] = assignment.status
    result["application_state"] = assignment.application.state
    return Outcome(result)


@contextmanager
def _refusals() -> Iterator[None]:
    """Lending's refusals as the push's rejection reasons."""
    try:
        yield
    except NotFound as exc:
        raise Rejected(payloads.NOT_FOUND, str(exc.detail or "")) from exc
    except (fieldwork.AssignmentClosed, fieldwork.FieldCheckNotExpected,
            fieldwork.FieldCheckConflict) as exc:
        raise Rejected(payloads.NOT_ALLOWED, str(exc.detail or exc.title)) from exc
    except ValidationFailed as exc:
        raise Rejected(payloads.INVALID, str(exc.detail or ""), exc.errors or {}) from exc


def _done(ctx: Context, op: Op, assignment: FieldAssignment, notes: str) -> str:
    """One field check from the assignment's visits; the decision resumes in lending."""
    if assignment.status != fieldwork.OPEN:
        raise Rejected(payloads.NOT_ALLOWED, _("The assignment is no longer open."))
    visits = list(ctx.session.scalars(sa.select(FieldVisit).where(
        FieldVisit.assignment_id == assignment.id).order_by(FieldVisit.id)))
    application = assignment.application
    checks = [v for v in visits if v.kind == IDENTITY_CHECK]
    seen = {v.parcel_code: v for v in visits if v.kind == PARCEL_VISIT}  # the latest wins
    parcels = [_parcel(seen.get(p.parcel_code), p.parcel_code) for p in application.parcels]
    check, _created = fieldwork.record_check(
        ctx.session, client_id=op.op_id, application=application,
        coordinator_id=ctx.coordinator_id,
        identity_verified=bool(checks and checks[-1].payload.get("verified")),
        parcels=parcels, notes=notes, recorded_at=op.recorded_at, flags=_flags(visits))
    return str(check.public_id)


def _parcel(visit: FieldVisit | None, code: str) -> dict[str, Any]:
    """A declared parcel as the field check states it (not visited when no visit names it)."""
    if visit is None:
        return {"parcel_code": code, "visited": False}
    located = visit.lat_e7 is not None and visit.lon_e7 is not None
    return {"parcel_code": code, "visited": True, "crop_seen": visit.crop_seen,
            "estimated_area_mu": visit.estimated_area_mu,
            "latitude": visit.lat_e7 / E7 if located and visit.lat_e7 is not None else None,
            "longitude": visit.lon_e7 / E7 if located and visit.lon_e7 is not None else None,
            "accuracy_m": visit.accuracy_m if located else None}


def _flags(visits: list[FieldVisit]) -> list[dict[str, Any]]:
    """Every visit's flags, each naming its visit (what staff see on the case)."""
    return [{**flag, "visit_id": str(visit.public_id), "kind": visit.kind}
            for visit in visits for flag in visit.flags]
