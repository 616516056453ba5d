"""Push (``POST /sync/push``), devices' sync state and conflicts for staff.

Thin views: the engine (:mod:`sync.push.engine`) and :mod:`sync.push.state` do the work.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import Response, g

from core.api import Blueprint, raises
from core.authz import access, current_principal
from core.db import db
from core.errors import NotFound
from core.lifecycle import body_limit
from sync.push import engine, schemas, state
from sync.push.errors import AlreadyResolved, DeviceRequired, NoResolver

blp = Blueprint("sync_push", __name__, description="Devices push their operations; staff see "
                "devices' sync state and resolve conflicts")


@blp.route("/sync/push", methods=["POST"])
@body_limit("NONGDAI_SYNC_PUSH_MAX_BYTES")  # a batch of a few hundred operations
@access("coordinator")
@raises(DeviceRequired)
@blp.arguments(schemas.PushSchema)
@blp.response(200, schemas.PushAnswerSchema)
def push(body: dict[str, Any]) -> Any:
    """Send a batch of operations (docs/sync-protocol.md §3): one result per operation, in
    the order sent; safe to send again."""
    principal = current_principal()
    if principal.device_id is None:
        raise DeviceRequired()
    # Written as compact JSON here, not dumped field by field (nor with sorted keys): the
    # answer of a 500-operation batch is on the hot path and already in its wire shape.
    answer = json.dumps(engine.push(db.session, principal, body), ensure_ascii=False,
                        separators=(",", ":"))
    return Response(answer, mimetype="application/json")


@blp.route("/sync/devices", methods=["GET"])
@access("staff", "coordinator")
@blp.arguments(schemas.DeviceListArgs, location="query")
@blp.response(200, schemas.SyncDevicePage)
def list_sync_devices(args: dict[str, Any]) -> dict[str, Any]:
    """Devices with their sync state: every one for staff, their own for a coordinator."""
    return state.devices_page(db.session, current_principal(), args)


@blp.route("/sync/devices/<uuid:device_id>", methods=["GET"])
@access("staff", "coordinator")
@raises(NotFound)
@blp.response(200, schemas.SyncDeviceDetailSchema)
def get_sync_device(device_id: uuid.UUID) -> dict[str, Any]:
    """One device's sync state and its operations counted by status."""
    return state.device_detail(db.session, current_principal(), device_id)


@blp.route("/sync/conflicts", methods=["GET"])
@access("staff")
@blp.arguments(schemas.ConflictListArgs, location="query")
@blp.response(200, schemas.ConflictPage)
def list_conflicts(args: dict[str, Any]) -> dict[str, Any]:
    """Conflicts filed by devices' edits, open ones first."""
    return state.conflicts_page(db.session, args)


@blp.route("/sync/conflicts/<uuid:conflict_id>/resolve", methods=["POST"])
@access("staff")
@raises(NotFound, AlreadyResolved, NoResolver)
@blp.arguments(schemas.ResolveSchema)
@blp.response(200, schemas.ConflictSchema)
def resolve_conflict(body: dict[str, Any], conflict_id: uuid.UUID) -> dict[str, Any]:
    """Keep the server's value or take the device's (safe to repeat the same resolution)."""
    conflict, device = state.get_conflict(db.session, conflict_id)
    if not state.resolve(db.session, current_principal(), conflict, body["resolution"],
                         body["reason"]):
        g.no_audit_needed = True  # resolved that way before: nothing changed
    return state.present_conflict(conflict, device)
