"""Field work: assignments for the coordinators of a village, and the checks they record.

When the automatic decision needs eyes on the ground (a first-time borrower, a profile signed
up from a phone, an amount above the policy's threshold), the pipeline opens an assignment for
the coordinators of the farmer's village (:func:`open_assignment`). A coordinator visits,
records a :class:`~lending.applications.models.FieldCheck` on the device, and the sync push
(or the online API) hands it to :func:`record_field_check`, which takes no Flask request
state: the caller says which coordinator recorded it.

A check is immutable and exactly-once by the device's ``client_id``: the same id with the same
content returns the stored check without a second effect; with other content it is refused
(409 ``field-check-conflict``), as TigerBeetle and Stripe treat a reused id.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from core import audit
from core.api import paginate
from core.authz import Principal, visible
from core.db import DbSession, savepoint, utcnow
from core.errors import Conflict, NotFound, ValidationFailed
from core.i18n import _, lazy_gettext
from core.people.models import Coordinator, Farmer
from core.places.models import Village, station_villages
from lending.applications import states
from lending.applications.models import Application, FieldAssignment, FieldCheck

FIELD_CHECK: Final = "field_check"
OPEN: Final = "open"
DONE: Final = "done"
CANCELLED: Final = "cancelled"
STATUSES: Final = (OPEN, DONE, CANCELLED)
# The states a check is taken in: one waiting for it (the decision resumes), and one with a
# person already (the check is more evidence for them).
ACCEPTS_CHECK: Final = frozenset({states.AWAITING_FIELD_CHECK, states.UNDER_REVIEW})

NOTES_MAX: Final = 1000
CROP_MAX: Final = 30
AREA_MAX: Final = Decimal("99999999.99")  # Numeric(10, 2), as declared areas
CENT: Final = Decimal("0.01")
PARCEL_KEYS: Final = frozenset({"parcel_code", "visited", "crop_seen", "estimated_area_mu",
                                "latitude", "longitude", "accuracy_m"})


class FieldCheckConflict(Conflict):
    code = "field-check-conflict"
    title = lazy_gettext("A field check with this client id was recorded with other content")


class FieldCheckNotExpected(Conflict):
    code = "field-check-not-expected"
    title = lazy_gettext("The application does not take a field check in its state")


# --- assignments ------------------------------------------------------------------------------

def _open_assignment(session: DbSession, application_id: int) -> FieldAssignment | None:
    return session.scalars(sa.select(FieldAssignment).where(
        FieldAssignment.application_id == application_id, FieldAssignment.kind == FIELD_CHECK,
        FieldAssignment.status == OPEN)).first()


def open_assignment(session: DbSession, application: Application) -> FieldAssignment:
    """The application's open field-check assignment, opened now if there is none.

    Idempotent: a second call returns the open one. A unique index on open assignments backs
    that against two concurrent calls; the loser returns the winner's.
    """
    found = _open_assignment(session, application.id)
    if found is not None:
        return found
    assignment = FieldAssignment(application_id=application.id,
                                 village_id=application.village_id, kind=FIELD_CHECK,
                                 status=OPEN)
    try:
        with savepoint(session):
            session.add(assignment)
            session.flush()
    except IntegrityError:
        found = _open_assignment(session, application.id)
        if found is None:
            raise
        return found
    audit.record(session, "assignment.open", assignment,
                 summary={"application_id": str(application.public_id), "kind": FIELD_CHECK})
    return assignment


def cancel_assignments(session: DbSession, application: Application) -> list[FieldAssignment]:
    """Cancel the application's open assignments (it was withdrawn or expired): nobody should
    visit for a case that is closed."""
    rows = list(session.scalars(sa.select(FieldAssignment).where(
        FieldAssignment.application_id == application.id, FieldAssignment.status == OPEN)))
    for row in rows:
        row.status = CANCELLED
    session.flush()
    for row in rows:
        audit.record(session, "assignment.cancel", row,
                     summary={"application_id": str(application.public_id)})
    return rows


def assignments_page(session: DbSession, principal: Principal,
                     args: dict[str, Any]) -> dict[str, Any]:
    """A cursor page of assignments the caller may see, oldest first (ids are UUIDv7), with
    what a visit needs: the farmer, the village and the declared parcels."""
    stmt = sa.select(FieldAssignment).where(visible(FieldAssignment, principal)).options(
        selectinload(FieldAssignment.application).selectinload(Application.farmer),
        selectinload(FieldAssignment.application).selectinload(Application.parcels))
    if args.get("status"):
        stmt = stmt.where(FieldAssignment.status == args["status"])
    if args.get("village_id"):
        stmt = stmt.where(FieldAssignment.village_id.in_(
            sa.select(Village.id).where(Village.public_id == args["village_id"])))
    page = paginate(session, stmt, FieldAssignment.public_id, args)
    rows: list[FieldAssignment] = page["items"]
    villages = by_id(session, Village, {row.village_id for row in rows})
    coordinators = by_id(session, Coordinator,
                          {row.completed_by_id for row in rows if row.completed_by_id})
    page["items"] = [_assignment_view(row, villages, coordinators) for row in rows]
    return page


def by_id(session: DbSession, model: Any, ids: set[int]) -> dict[int, Any]:
    """Rows of ``model`` by internal id, in one query (for a page's related rows)."""
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(sa.select(model).where(model.id.in_(ids)))}


def _assignment_view(row: FieldAssignment, villages: dict[int, Village],
                     coordinators: dict[int, Coordinator]) -> dict[str, Any]:
    application = row.application
    village = villages[row.village_id]
    done_by = coordinators.get(row.completed_by_id) if row.completed_by_id else None
    return {
        "public_id": row.public_id, "kind": row.kind, "status": row.status,
        "created_at": row.created_at, "completed_at": row.completed_at,
        "completed_by_id": done_by.public_id if done_by else None,
        "application_id": application.public_id, "application_state": application.state,
        "village": village, "farmer": application.farmer, "crop": application.crop,
        "amount_fen": application.amount_fen, "parcels": application.parcels,
    }


# --- recording a check ------------------------------------------------------------------------

def record_field_check(session: DbSession, *, client_id: uuid.UUID, application: Application,
                       coordinator_id: int, identity_verified: bool,
                       parcels: list[dict[str, Any]], notes: str,
                       recorded_at: datetime,
                       flags: list[dict[str, Any]] | None = None) -> FieldCheck:
    """Record what a coordinator saw, once; then, if the application was waiting for it,
    decide it again (:func:`lending.applications.pipeline.resume`).

    Raises 404 when the coordinator does not serve the application's village, 422 for invalid
    parcels, 409 ``field-check-conflict`` for a reused ``client_id`` with other content, 409
    ``field-check-not-expected`` when the application's state takes no check.
    """
    check, _created = record_check(
        session, client_id=client_id, application=application, coordinator_id=coordinator_id,
        identity_verified=identity_verified, parcels=parcels, notes=notes,
        recorded_at=recorded_at, flags=flags)
    return check


def record_check(session: DbSession, *, client_id: uuid.UUID, application: Application,
                 coordinator_id: int, identity_verified: bool, parcels: list[dict[str, Any]],
                 notes: str, recorded_at: datetime,
                 flags: list[dict[str, Any]] | None = None) -> tuple[FieldCheck, bool]:
    """:func:`record_field_check`, also telling whether the check is new (``False``: the
    stored one was returned, nothing was written, not even an audit event).

    ``flags``: the plausibility findings on the visits behind the check (the sync push hands
    them over; lending never reads the field visits themselves), shown to staff on the case.
    """
    coordinator = _coordinator_serving(session, coordinator_id, application)
    _lock(session, application)  # one check at a time per case (PostgreSQL; SQLite serialises)
    payload = _payload(application, coordinator, identity_verified=identity_verified,
                       parcels=parcels, notes=notes, recorded_at=recorded_at)
    payload["flags"] = list(flags or [])
    stored = session.scalars(sa.select(FieldCheck).where(FieldCheck.client_id == client_id)).first()
    if stored is not None:
        if _stored_payload(stored) != payload:
            raise FieldCheckConflict(_("This client id was used for another field check; "
                                       "give a new check a new client id"))
        return stored, False
    if application.state not in ACCEPTS_CHECK:
        raise FieldCheckNotExpected(_("An application in state %(state)s takes no field check",
                                      state=application.state))
    resuming = application.state == states.AWAITING_FIELD_CHECK
    check = _insert(session, client_id, application, coordinator, payload)
    actor = f"coordinator:{coordinator.public_id}"
    audit.record(session, "field_check.recorded", check, actor=actor, summary={
        "application_id": str(application.public_id), "client_id": str(client_id),
        "assignment_id": _public_id(session, FieldAssignment, check.assignment_id),
        "identity_verified": identity_verified, "parcels": len(payload["parcels"]),
        "flags": [flag.get("code") for flag in payload["flags"]]})
    if identity_verified:
        _verify_identity(session, application.farmer, check, actor)
    if resuming:
        _resume(session, application, actor)
    return check, True


def _resume(session: DbSession, application: Application, actor: str) -> None:
    """Decide the application again. Should the farmer have withdrawn a consent the decision
    needs, the check stays on file (it is what the coordinator saw) and the case waits, as
    the retry job does; nothing of the farmer's is queried."""
    # The pipeline opens assignments through this module: import it when needed, not at load.
    from lending.applications import pipeline  # noqa: PLC0415

    try:
        with savepoint(session):
            pipeline.resume(session, application, actor=actor)
    except pipeline.ConsentRequired:
        audit.record(session, "application.resume_stopped", application, actor=actor,
                     summary={"why": "consent"})


def _coordinator_serving(session: DbSession, coordinator_id: int,
                         application: Application) -> Coordinator:
    """The coordinator, if active and serving the application's village; else 404, as for an
    application that does not exist (scoping never tells what exists elsewhere)."""
    coordinator = session.get(Coordinator, coordinator_id)
    serves = coordinator is not None and coordinator.is_active and session.scalar(
        sa.select(sa.literal(True)).select_from(station_villages).where(
            station_villages.c.station_id == coordinator.station_id,
            station_villages.c.village_id == application.village_id))
    if not serves or coordinator is None:
        raise NotFound(_("No application with that id"))
    return coordinator


def _lock(session: DbSession, application: Application) -> None:
    """Take the application's row lock and read it afresh (a no-op lock on SQLite, where the
    transaction already holds the database's write lock)."""
    session.execute(sa.select(Application).where(Application.id == application.id)
                    .with_for_update().execution_options(populate_existing=True))


def _insert(session: DbSession, client_id: uuid.UUID, application: Application,
            coordinator: Coordinator, payload: dict[str, Any]) -> FieldCheck:
    """The check, and the open assignment it completes (if any), in one step."""
    assignment = _open_assignment(session, application.id)
    now = utcnow()
    if assignment is not None:
        assignment.status, assignment.completed_at = DONE, now
        assignment.completed_by_id = coordinator.id
    check = FieldCheck(client_id=client_id, application_id=application.id,
                       assignment_id=assignment.id if assignment else None,
                       coordinator_id=coordinator.id,
                       identity_verified=payload["identity_verified"],
                       parcels=payload["parcels"], notes=payload["notes"],
                       recorded_at=payload["recorded_at"], flags=payload["flags"])
    session.add(check)
    session.flush()
    if assignment is not None:
        audit.record(session, "assignment.done", assignment,
                     actor=f"coordinator:{coordinator.public_id}",
                     summary={"application_id": str(application.public_id),
                              "field_check_id": str(check.public_id)})
    return check


def _verify_identity(session: DbSession, farmer: Farmer, check: FieldCheck, actor: str) -> None:
    """A coordinator who saw the person and their ID confirms a profile signed up alone."""
    if farmer.identity_status != "pending":
        return
    farmer.identity_status = "verified"
    session.flush()
    audit.record(session, "farmer.identity_verified", farmer, actor=actor,
                 summary={"field_check_id": str(check.public_id)})


def _public_id(session: DbSession, model: Any, row_id: int | None) -> str | None:
    if row_id is None:
        return None
    return str(session.scalar(sa.select(model.public_id).where(model.id == row_id)))


# --- an assignment's other endings ----------------------------------------------------------------

class AssignmentClosed(Conflict):
    code = "assignment-closed"
    title = lazy_gettext("The assignment is no longer open")


REFUSED: Final = "field-check-refused"  # the flag on the check, the reason of the referral


def _check_open(assignment: FieldAssignment) -> None:
    if assignment.status != OPEN:
        raise AssignmentClosed(_("The assignment is %(status)s", status=assignment.status))


def complete_assignment(session: DbSession, assignment: FieldAssignment, *,
                        coordinator_id: int, notes: str) -> FieldAssignment:
    """Mark an assignment that is not a case's field check (a post-loan visit) done: the
    visits recorded for it are the evidence; nothing is decided."""
    _check_open(assignment)
    _close(assignment, DONE, coordinator_id)
    session.flush()
    audit.record(session, "assignment.done", assignment,
                 actor=_actor(session, coordinator_id), summary={"with_notes": bool(notes)})
    return assignment


def record_attempt(session: DbSession, assignment: FieldAssignment, *, coordinator_id: int,
                   outcome: str, notes: str, recorded_at: datetime) -> FieldAssignment:
    """A visit that found nobody (``farmer_absent``): the assignment stays open for another
    try; the attempt is on the audit trail of the assignment."""
    _check_open(assignment)
    audit.record(session, "assignment.attempt", assignment,
                 actor=_actor(session, coordinator_id),
                 summary={"outcome": outcome, "recorded_at": recorded_at.isoformat(),
                          "with_notes": bool(notes)})
    return assignment


def refuse(session: DbSession, assignment: FieldAssignment, *, client_id: uuid.UUID,
           coordinator_id: int, notes: str, recorded_at: datetime) -> FieldCheck:
    """The farmer refused the visit: the assignment closes (cancelled: nothing was checked),
    a check saying so is filed with the flag ``field-check-refused`` and the coordinator's
    notes, and a case waiting for the check goes to staff review with that reason (through
    ``submitted``: the only way ``states`` allows)."""
    _check_open(assignment)
    application = assignment.application
    coordinator = _coordinator_serving(session, coordinator_id, application)
    _lock(session, application)
    if application.state not in ACCEPTS_CHECK:
        raise FieldCheckNotExpected(_("An application in state %(state)s takes no field check",
                                      state=application.state))
    actor = f"coordinator:{coordinator.public_id}"
    check = FieldCheck(client_id=client_id, application_id=application.id,
                       assignment_id=assignment.id, coordinator_id=coordinator.id,
                       identity_verified=False, parcels=[], notes=notes[:NOTES_MAX],
                       recorded_at=recorded_at, flags=[{"code": REFUSED}])
    _close(assignment, CANCELLED, coordinator.id)
    session.add(check)
    session.flush()
    audit.record(session, "assignment.refused", assignment, actor=actor, summary={
        "application_id": str(application.public_id), "field_check_id": str(check.public_id)})
    if application.state == states.AWAITING_FIELD_CHECK:
        states.move(session, application, states.SUBMITTED, actor=actor, reason=REFUSED)
        states.move(session, application, states.UNDER_REVIEW, actor=actor, reason=REFUSED,
                    values={"retry_at": None})
    return check


def _actor(session: DbSession, coordinator_id: int) -> str:
    return f"coordinator:{session.get_one(Coordinator, coordinator_id).public_id}"


def _close(assignment: FieldAssignment, status: str, coordinator_id: int) -> None:
    assignment.status, assignment.completed_at = status, utcnow()
    assignment.completed_by_id = coordinator_id


# --- the content of a check, checked and compared ------------------------------------------------

def _payload(application: Application, coordinator: Coordinator, *, identity_verified: bool,
             parcels: list[dict[str, Any]], notes: str,
             recorded_at: datetime) -> dict[str, Any]:
    """What makes a check this check: compared field by field on a repeated ``client_id``."""
    errors: dict[str, Any] = {}
    if not isinstance(identity_verified, bool):
        errors["identity_verified"] = [_("Must be true or false.")]
    if not isinstance(notes, str) or len(notes) > NOTES_MAX:
        errors["notes"] = [_("Text of at most %(n)s characters.", n=NOTES_MAX)]
    if not isinstance(recorded_at, datetime) or recorded_at.tzinfo is None:
        errors["recorded_at"] = [_("A date and time with its time zone.")]
    cleaned, parcel_errors = clean_parcels(parcels, {p.parcel_code for p in application.parcels})
    if parcel_errors:
        errors["parcels"] = parcel_errors
    if errors:
        raise ValidationFailed(_("The field check has invalid fields; see errors"),
                               errors=errors)
    return {"application_id": application.id, "coordinator_id": coordinator.id,
            "identity_verified": identity_verified, "parcels": cleaned, "notes": notes,
            "recorded_at": recorded_at}


def _stored_payload(check: FieldCheck) -> dict[str, Any]:
    return {"application_id": check.application_id, "coordinator_id": check.coordinator_id,
            "identity_verified": check.identity_verified, "parcels": check.parcels,
            "notes": check.notes, "recorded_at": check.recorded_at, "flags": check.flags}


def clean_parcels(parcels: Any, codes: set[str]) -> tuple[list[dict[str, Any]], Any]:
    """The parcels of a check in their stored form, and the errors by position (or for the
    list as a whole). Each must be one of the application's parcels, once."""
    if not isinstance(parcels, list):
        return [], [_("A list of parcels.")]
    cleaned: list[dict[str, Any]] = []
    errors: dict[int, dict[str, list[str]]] = {}
    seen: set[str] = set()
    for index, raw in enumerate(parcels):
        row, problems = _clean_parcel(raw, codes, seen)
        if problems:
            errors[index] = problems
        else:
            cleaned.append(row)
    return cleaned, errors


def _clean_parcel(raw: Any, codes: set[str],
                  seen: set[str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    if not isinstance(raw, dict):
        return {}, {"_schema": [_("A parcel is an object.")]}
    problems: dict[str, list[str]] = {
        key: [_("Unknown field.")] for key in set(raw) - PARCEL_KEYS}
    code = raw.get("parcel_code")
    if not isinstance(code, str) or code not in codes:
        problems["parcel_code"] = [_("Not a parcel of this application.")]
    elif code in seen:
        problems["parcel_code"] = [_("A parcel is listed twice.")]
    else:
        seen.add(code)
    if not isinstance(raw.get("visited"), bool):
        problems["visited"] = [_("Must be true or false.")]
    crop = raw.get("crop_seen")
    if crop is not None and (not isinstance(crop, str) or len(crop) > CROP_MAX):
        problems["crop_seen"] = [_("Text of at most %(n)s characters.", n=CROP_MAX)]
    area = _area(raw.get("estimated_area_mu"), problems)
    gps = _gps(raw, problems)
    row = {"parcel_code": code, "visited": raw.get("visited"), "crop_seen": crop,
           "estimated_area_mu": area, **gps}
    return row, problems


def _number(value: Any) -> Decimal | None:
    """A finite JSON number (or Decimal) as a Decimal; ``None`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _area(value: Any, problems: dict[str, list[str]]) -> str | None:
    """Estimated area in mu: 0 or more, two decimals at most, stored as text (``"3.50"``) so
    that no float rounds it."""
    if value is None:
        return None
    number = _number(value)
    if number is None or not 0 <= number <= AREA_MAX or number != number.quantize(CENT):
        problems["estimated_area_mu"] = [_("A number of mu from 0, with at most two decimals.")]
        return None
    return str(number.quantize(CENT))


def _gps(raw: dict[str, Any], problems: dict[str, list[str]]) -> dict[str, float | None]:
    """Latitude and longitude together or neither; accuracy (metres, 0 or more) with them."""
    limits = {"latitude": 90, "longitude": 180}
    out: dict[str, float | None] = {}
    for key, limit in limits.items():
        value = raw.get(key)
        number = _number(value)
        if value is not None and (number is None or not -limit <= number <= limit):
            problems[key] = [_("Degrees from -%(n)s to %(n)s.", n=limit)]
        out[key] = float(number) if value is not None and number is not None else None
    if (raw.get("latitude") is None) != (raw.get("longitude") is None):
        problems.setdefault("longitude", [_("Send latitude and longitude together.")])
    accuracy = raw.get("accuracy_m")
    number = _number(accuracy)
    if accuracy is not None and (number is None or number < 0):
        problems["accuracy_m"] = [_("Metres, 0 or more.")]
    elif accuracy is not None and raw.get("latitude") is None:
        problems["accuracy_m"] = [_("An accuracy needs a position.")]
    out["accuracy_m"] = float(number) if accuracy is not None and number is not None else None
    return out


# --- reading checks back ------------------------------------------------------------------------

def check_views(session: DbSession, checks: list[FieldCheck]) -> list[dict[str, Any]]:
    """Checks as responses show them: the assignment by its public id, the coordinator by name."""
    assignments = by_id(session, FieldAssignment,
                         {c.assignment_id for c in checks if c.assignment_id})
    return [{
        "public_id": c.public_id, "client_id": c.client_id,
        "application_id": c.application.public_id,
        "assignment_id": assignments[c.assignment_id].public_id if c.assignment_id else None,
        "coordinator": c.coordinator, "identity_verified": c.identity_verified,
        "parcels": c.parcels, "notes": c.notes, "recorded_at": c.recorded_at,
        "received_at": c.created_at, "flags": [_flag_view(flag) for flag in c.flags or []],
    } for c in checks]


def _flag_view(flag: dict[str, Any]) -> dict[str, Any]:
    """A flag as staff read it: its code, the visit it was found on, and its figures."""
    named = ("code", "visit_id", "kind")
    return {"code": flag.get("code"), "visit_id": flag.get("visit_id"), "kind": flag.get("kind"),
            "detail": {k: v for k, v in flag.items() if k not in named}}


def checks_of(session: DbSession, application: Application) -> list[FieldCheck]:
    """Every check recorded for ``application``, in the order they arrived."""
    return list(session.scalars(
        sa.select(FieldCheck).where(FieldCheck.application_id == application.id)
        .options(selectinload(FieldCheck.coordinator)).order_by(FieldCheck.id)))
