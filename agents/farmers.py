"""Farmers met in the field: ``register_farmer`` and ``update_farmer`` (immediate handlers).

Registration is deduplicated by the person, not by the device's id: the ID number's keyed hash
(:func:`core.people.services.id_number_hash`) finds a farmer the bank already knows, wherever
they live, and the operation **links** to them (``result.farmer_id``, ``linked: true``) instead
of creating a twin; the device re-keys its record. A new farmer takes the device's
``entity_id`` as their id and starts with identity ``pending``: the coordinator typed the number
on a phone, and the evidence that it is the person's own card is the ``identity_check`` (with
its photo) the device sends next; that check, when verified, makes the identity ``verified``.

The ID number is validated, encrypted, hashed and masked by ``core.people`` only; here it is
never logged, audited or answered in clear (the audit events carry the masked form).

Name and phone are an *editable record* (``sync.push.records``): version 1 at registration;
``update_farmer`` merges field by field against ``base_version``.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from agents import payloads
from core import audit
from core.db import DbSession
from core.errors import NotFound, ValidationFailed
from core.i18n import _
from core.people import idnumber, services
from core.people.models import Farmer
from core.places.models import Village
from sync.registry import CONFLICT, Op, Outcome, Rejected

if TYPE_CHECKING:
    from sync.push.engine import Context

KIND: Final = "farmer"
PHONE = re.compile(r"1[0-9]{10}")
NAME_MAX: Final = 100
REGISTER_KEYS: Final = ("name", "id_number", "phone", "village_id", "birth_date")
EDITABLE: Final = ("name", "phone")
# session.info: the farmer write under way was versioned by sync itself (a merge, a resolved
# conflict), so the edit listener must not count it a second time.
_VERSIONED: Final = "nongdai.agents.farmer_versioned"


def _phone(payload: dict[str, Any], errors: payloads.Errors, *, required: bool) -> str | None:
    value = payload.get("phone")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not PHONE.fullmatch(value):
        errors["phone"] = [_("11 digits starting with 1.")]
        return None
    return value


def _id_number(payload: dict[str, Any], errors: payloads.Errors) -> tuple[str, Any] | None:
    value = payload.get("id_number")
    if not isinstance(value, str):
        errors["id_number"] = [_("Missing data for required field.")]
        return None
    try:
        return idnumber.validate(value)
    except idnumber.InvalidIdNumberError as exc:
        errors["id_number"] = [idnumber.explain(exc)]
        return None


def _registration(payload: dict[str, Any]) -> dict[str, Any]:
    errors: payloads.Errors = {}
    checked = _id_number(payload, errors)
    data = {
        "name": payloads.text(payload, "name", errors, longest=NAME_MAX, shortest=1),
        "phone": _phone(payload, errors, required=True),
        "village_id": payloads.a_uuid(payload, "village_id", errors),
        "id_number": checked[0] if checked else None,
    }
    born = payloads.day(payload, "birth_date", errors)
    if born is not None and checked is not None and born != checked[1]:
        errors["birth_date"] = [_("Not the birth date the ID number holds.")]
    payloads.check(payload, REGISTER_KEYS, errors)
    return data


def _village(ctx: Context, village_id: Any) -> Village:
    village = ctx.session.scalars(sa.select(Village).where(Village.public_id == village_id)
                                  ).first()
    if village is None or village.id not in ctx.village_ids:
        raise Rejected(payloads.NOT_FOUND, _("No village with that id among your villages."))
    return village


def register_farmer(ctx: Context, op: Op) -> Outcome:
    """Create the farmer, or link the operation to the person the bank already knows."""
    data = _registration(op.payload)
    village = _village(ctx, data["village_id"])
    session = ctx.session
    known = session.scalars(sa.select(Farmer).where(
        Farmer.id_number_hash == services.id_number_hash(data["id_number"]))).first()
    if known is not None:
        return _link(ctx, op, known)
    if session.scalar(sa.select(Farmer.id).where(Farmer.public_id == op.entity_id)) is not None:
        raise Rejected(payloads.NOT_ALLOWED, _("This farmer id is another person's; a new "
                                               "farmer needs a new id."))
    try:
        farmer = services.create_farmer(
            session, name=data["name"], phone=data["phone"], id_number=data["id_number"],
            village=village, public_id=op.entity_id, identity_status="pending")
    except services.PhoneTaken as exc:
        raise Rejected(payloads.INVALID, _("The phone number is another farmer's."),
                       exc.errors) from exc
    from sync.push import records  # noqa: PLC0415 - the push part's module

    version = records.create(ctx, KIND, farmer.public_id,
                             {"name": farmer.name, "phone": farmer.phone})
    return Outcome({"farmer_id": str(farmer.public_id), "linked": False, "version": version,
                    "identity_status": farmer.identity_status})


def _link(ctx: Context, op: Op, farmer: Farmer) -> Outcome:
    """The person is known: no second farmer; the device re-keys to this one."""
    audit.record(ctx.session, "farmer.linked", farmer, actor=ctx.actor, summary={
        "device_entity_id": str(op.entity_id), "id_number": farmer.id_number_masked})
    return Outcome({"farmer_id": str(farmer.public_id), "linked": True,
                    "identity_status": farmer.identity_status})


# --- update_farmer ----------------------------------------------------------------------------

def _patch(op: Op) -> dict[str, Any]:
    payload, errors = op.payload, payloads.Errors()
    patch: dict[str, Any] = {}
    if isinstance(payload, dict):
        if "name" in payload:
            patch["name"] = payloads.text(payload, "name", errors, longest=NAME_MAX, shortest=1)
        if "phone" in payload:
            patch["phone"] = _phone(payload, errors, required=True)
        if not patch and not set(payload) - set(EDITABLE):
            errors["_schema"] = [_("Send at least one of: name, phone.")]
    if op.base_version is None or op.base_version < 1:
        errors["base_version"] = [_("The version the device last saw, from 1.")]
    payloads.check(payload, EDITABLE, errors)
    return patch


def update_farmer(ctx: Context, op: Op) -> Outcome:
    """Merge the device's changes field by field: a field changed on the server since
    ``base_version`` keeps the server's value and the device's is filed as a conflict."""
    patch = _patch(op)
    session = ctx.session
    farmer = session.scalars(sa.select(Farmer).where(Farmer.public_id == op.entity_id)).first()
    if farmer is None or farmer.village_id not in ctx.village_ids:
        raise Rejected(payloads.NOT_FOUND, _("No farmer with that id in your villages."))
    from sync.push import records  # noqa: PLC0415 - the push part's module

    current = {name: getattr(farmer, name) for name in EDITABLE}
    merged = records.merge(ctx, KIND, farmer.public_id, op.base_version or 0, patch, current)
    changes = {k: v for k, v in merged.applied.items() if current.get(k) != v}
    if changes:
        try:
            _versioned_write(session, farmer, changes)
        except services.PhoneTaken as exc:
            raise Rejected(payloads.INVALID, _("The phone number is another farmer's."),
                           exc.errors) from exc
    result = {"farmer_id": str(farmer.public_id), "version": merged.version,
              "conflicts": list(merged.conflicts)}
    return Outcome(result, CONFLICT if merged.conflicts else "applied")


def resolve(session: DbSession, entity_id: uuid.UUID, name: str, value: Any) -> None:
    """Staff took the device's value of a conflicting field: write it to the farmer (through
    core's service: the phone stays unique)."""
    farmer = session.scalars(sa.select(Farmer).where(Farmer.public_id == entity_id)).first()
    if farmer is None:
        raise NotFound(_("No farmer with that id"))
    if name not in EDITABLE:
        raise ValidationFailed(errors={"field": [_("Not an editable field of a farmer.")]})
    _versioned_write(session, farmer, {name: value})


def _versioned_write(session: DbSession, farmer: Farmer, changes: dict[str, Any]) -> None:
    """Write fields whose versions sync has already set (core's service: the phone stays
    unique)."""
    session.info[_VERSIONED] = True
    try:
        services.update_farmer(session, farmer, **changes)
    finally:
        session.info.pop(_VERSIONED, None)


def track_edits() -> None:
    """Count every other change of a farmer's editable fields (staff's PATCH, a farmer's own
    profile) as a new version of those fields, in the same flush, so that a device's edit
    made from an older version files a conflict instead of overwriting it (§6). Process-wide
    and idempotent, like :func:`sync.feed.changes.watch`."""
    if not event.contains(Session, "before_flush", _version_edits):
        event.listen(Session, "before_flush", _version_edits)


def _version_edits(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(_VERSIONED):
        return
    from sync.push import records  # noqa: PLC0415 - the push part's module

    for obj in list(session.dirty):
        if not isinstance(obj, Farmer):
            continue
        changed = [name for name in EDITABLE
                   if sa.inspect(obj).attrs[name].history.has_changes()]
        if changed:
            records.bump(session, KIND, obj.public_id, changed)
