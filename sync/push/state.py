"""Devices' sync state for staff and coordinators, conflicts for staff, and the pull's note.

Staff see every device and every conflict; a coordinator sees their own devices only.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

import sqlalchemy as sa
from flask import current_app

from core import audit
from core.api import clamp_limit
from core.auth.models import Device
from core.authz import Principal
from core.db import DbSession, utcnow
from core.errors import NotFound, ValidationFailed
from core.i18n import _
from core.people.models import Coordinator
from sync import registry
from sync.push import devicestate, records
from sync.push.errors import AlreadyResolved, NoResolver
from sync.push.models import OPEN, RESOLVED, TAKE_DEVICE, SyncConflict, SyncDevice, SyncOp

note_pull = devicestate.note_pull  # (session, device_id, cursor): the feed's call on each pull

__all__ = ["conflicts_page", "device_detail", "devices_page", "note_pull", "resolve"]


# --- devices -------------------------------------------------------------------------------

def _visible(principal: Principal) -> sa.ColumnElement[bool]:
    if principal.is_staff:
        return sa.true()
    if principal.kind == "coordinator":
        return Device.coordinator_id == principal.id
    return sa.false()


def _devices(principal: Principal) -> sa.Select[Device, uuid.UUID, SyncDevice]:
    return (sa.select(Device, Coordinator.public_id, SyncDevice)
            .join(Coordinator, Coordinator.id == Device.coordinator_id)
            .outerjoin(SyncDevice, SyncDevice.device_id == Device.id)
            .where(_visible(principal)))


def _present(device: Device, coordinator_id: uuid.UUID, state: SyncDevice | None
             ) -> dict[str, Any]:
    return {"device_id": device.public_id, "label": device.label,
            "coordinator_id": coordinator_id,
            "acked_seq": state.acked_seq if state else 0,
            "last_push_at": state.last_push_at if state else None,
            "last_pull_at": state.last_pull_at if state else None,
            "pending_reported": state.pending_reported if state else None,
            "flags": (state.flags or {}) if state else {},
            "revoked_at": device.revoked_at, "last_seen_at": device.last_seen_at}


def devices_page(session: DbSession, principal: Principal, args: dict[str, Any]
                 ) -> dict[str, Any]:
    """A keyset page of devices with their sync state (``coordinator_id`` filters)."""
    stmt = _devices(principal)
    if args.get("coordinator_id"):
        stmt = stmt.where(Coordinator.public_id == args["coordinator_id"])
    limit = clamp_limit(args.get("limit"))
    if args.get("cursor"):
        stmt = stmt.where(Device.public_id > _decode(args["cursor"])["after"])
    rows = session.execute(stmt.order_by(Device.public_id).limit(limit + 1)).all()
    items = [_present(*row) for row in rows[:limit]]
    more = len(rows) > limit
    return {"items": items,
            "next_cursor": _encode({"after": str(items[-1]["device_id"])}) if more else None}


def device_detail(session: DbSession, principal: Principal, device_id: uuid.UUID
                  ) -> dict[str, Any]:
    """One device's sync state, with how many of its operations are in each final state."""
    row = session.execute(_devices(principal).where(Device.public_id == device_id)).first()
    if row is None:
        raise NotFound(_("No device with that id"))
    counts = session.execute(sa.select(SyncOp.status, sa.func.count())
                             .where(SyncOp.device_id == row[0].id).group_by(SyncOp.status))
    return {**_present(*row), "ops_by_status": dict(counts.all())}


# --- conflicts -----------------------------------------------------------------------------

_RANK = sa.case((SyncConflict.status == OPEN, 0), else_=1)


def conflicts_page(session: DbSession, args: dict[str, Any]) -> dict[str, Any]:
    """Conflicts, open ones first, then by age (a keyset page on rank and id)."""
    stmt = sa.select(SyncConflict, Device.public_id).join(
        Device, Device.id == SyncConflict.device_id)
    for name in ("status", "kind"):
        if args.get(name):
            stmt = stmt.where(getattr(SyncConflict, name) == args[name])
    if args.get("cursor"):
        position = _decode(args["cursor"])
        rank, after = position.get("rank"), position["after"]
        if rank not in (0, 1):
            raise _bad_cursor()
        stmt = stmt.where(sa.or_(rank < _RANK,
                                 sa.and_(rank == _RANK, SyncConflict.public_id > after)))
    limit = clamp_limit(args.get("limit"))
    rows = session.execute(stmt.order_by(_RANK, SyncConflict.public_id).limit(limit + 1)).all()
    items = [present_conflict(conflict, device) for conflict, device in rows[:limit]]
    last = rows[limit - 1][0] if len(rows) > limit else None
    cursor = None if last is None else _encode(
        {"rank": 0 if last.status == OPEN else 1, "after": str(last.public_id)})
    return {"items": items, "next_cursor": cursor}


def present_conflict(conflict: SyncConflict, device_public_id: uuid.UUID) -> dict[str, Any]:
    names = ("public_id", "kind", "entity_id", "field", "server_value", "device_value",
             "op_id", "base_version", "status", "resolution", "reason", "resolved_by",
             "resolved_at", "created_at")
    return {**{name: getattr(conflict, name) for name in names}, "device_id": device_public_id}


def get_conflict(session: DbSession, conflict_id: uuid.UUID) -> tuple[SyncConflict, uuid.UUID]:
    row = session.execute(
        sa.select(SyncConflict, Device.public_id)
        .join(Device, Device.id == SyncConflict.device_id)
        .where(SyncConflict.public_id == conflict_id).with_for_update(of=SyncConflict)).first()
    if row is None:
        raise NotFound(_("No conflict with that id"))
    return row[0], row[1]


def resolve(session: DbSession, principal: Principal, conflict: SyncConflict,
            resolution: str, reason: str) -> bool:
    """Resolve an open conflict; ``take_device`` writes the device's value through the kind's
    resolver. Returns False when it was already resolved the same way (nothing to do)."""
    if conflict.status == RESOLVED:
        if conflict.resolution != resolution:
            raise AlreadyResolved(_("This conflict was already resolved as %(resolution)s",
                                    resolution=conflict.resolution))
        return False
    if resolution == TAKE_DEVICE:
        resolver = registry.of(current_app).resolvers.get(conflict.kind)
        if resolver is None:
            raise NoResolver()
        resolver(session, conflict.entity_id, conflict.field, conflict.device_value)
        records.bump(session, conflict.kind, conflict.entity_id, [conflict.field])
    conflict.status, conflict.resolution, conflict.reason = RESOLVED, resolution, reason
    conflict.resolved_by, conflict.resolved_at = principal.ref, utcnow()
    session.flush()
    audit.record(session, "sync.conflict.resolve", conflict,
                 summary={"kind": conflict.kind, "entity_id": str(conflict.entity_id),
                          "field": conflict.field, "resolution": resolution})
    return True


# --- cursors -------------------------------------------------------------------------------

def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(_("The cursor is not one this API issued"),
                            errors={"cursor": [_("Invalid cursor.")]})


def _encode(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4))
        position = json.loads(raw)
        return {**position, "after": uuid.UUID(position["after"])}
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError,
            AttributeError) as exc:
        raise _bad_cursor() from exc
