"""Editable records (docs/sync-protocol.md §6): versions per record and per field, merged
field by field, a concurrent change filed as a conflict for staff.

A record has a version (1 when created) and, per field, the version that last changed it. A
device edits from ``base_version``: a field the server changed after that version keeps the
server's value when the device's differs, and the device's value is filed in
``sync_conflicts``; every other field takes the device's value. Nothing is silently
overwritten, nothing dropped. Server-side edits (staff) call :func:`bump`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from core.db import DbSession, table, utcnow, uuid7
from sync.push.models import OPEN, RecordVersion, SyncConflict

if TYPE_CHECKING:
    from sync.push.context import Context

VERSIONS = table(RecordVersion)
CONFLICTS = table(SyncConflict)


@dataclass(frozen=True)
class Merge:
    """What a device's edit did: the fields to write, the fields in conflict, the version."""

    applied: dict[str, Any] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    version: int = 1


def _row(kind: str, entity_id: uuid.UUID, fields: Iterable[str]) -> dict[str, Any]:
    return {"kind": kind, "entity_id": entity_id, "version": 1,
            "field_versions": dict.fromkeys(fields, 1), "public_id": uuid7(),
            "created_at": utcnow()}


def create(ctx: Context, kind: str, entity_id: uuid.UUID, fields: Mapping[str, Any]) -> int:
    """A new editable record at version 1 (buffered with the operation, or written at once
    by an immediate handler). Returns the version."""
    row = _row(kind, entity_id, fields)
    if ctx.immediate:
        ctx.session.execute(sa.insert(VERSIONS), row)
    else:
        ctx.insert(VERSIONS, row)
    return 1


def _locked(session: DbSession, kind: str, entity_id: uuid.UUID) -> Any:
    """The record's version row, locked; made at version 1 for a record created outside sync
    (by staff, say), whose fields nobody has edited through sync yet."""
    stmt = (sa.select(VERSIONS.c.id, VERSIONS.c.version, VERSIONS.c.field_versions)
            .where(VERSIONS.c.kind == kind, VERSIONS.c.entity_id == entity_id))
    found = session.execute(stmt.with_for_update()).first()
    if found is None:
        session.execute(sa.insert(VERSIONS), _row(kind, entity_id, ()))
        found = session.execute(stmt.with_for_update()).one()
    return found


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def merge(ctx: Context, kind: str, entity_id: uuid.UUID, base_version: int,  # noqa: PLR0917 - the contract's signature
          patch: Mapping[str, Any], current: Mapping[str, Any]) -> Merge:
    """Merge a device's ``patch`` made from ``base_version`` into the record whose server
    values are ``current``. Writes the new version and the conflicts; the caller writes the
    ``applied`` fields to the record. For immediate handlers (it reads and writes at once)."""
    if not ctx.immediate:
        raise RuntimeError("records.merge needs an immediate operation handler")
    session = ctx.session
    found = _locked(session, kind, entity_id)
    field_versions = dict(found.field_versions or {})
    base = min(int(base_version), int(found.version))
    version = int(found.version) + 1
    applied: dict[str, Any] = {}
    conflicts: list[dict[str, Any]] = []
    for name, value in patch.items():
        server = current.get(name)
        if server == value:
            continue
        if int(field_versions.get(name, 0)) > base:
            conflicts.append(_conflict(ctx, kind, entity_id, base_version,
                                       field=name, server=server, device=value))
        else:
            applied[name] = value
            field_versions[name] = version
    if conflicts:
        session.execute(sa.insert(CONFLICTS), conflicts)
    if not applied:
        return Merge({}, [c["field"] for c in conflicts], int(found.version))
    session.execute(sa.update(VERSIONS).where(VERSIONS.c.id == found.id)
                    .values(version=version, field_versions=field_versions))
    return Merge(applied, [c["field"] for c in conflicts], version)


def _conflict(ctx: Context, kind: str, entity_id: uuid.UUID, base_version: int, *,
              field: str, server: Any, device: Any) -> dict[str, Any]:
    if ctx.op is None:
        raise RuntimeError("records.merge runs inside an operation")
    return {"kind": kind, "entity_id": entity_id, "field": field,
            "server_value": _jsonable(server), "device_value": _jsonable(device),
            "device_id": ctx.device_id, "op_id": ctx.op.op_id, "base_version": base_version,
            "status": OPEN, "public_id": uuid7(), "created_at": utcnow()}


def bump(session: DbSession, kind: str, entity_id: uuid.UUID, fields: Iterable[str]) -> int:
    """Note a server-side change of ``fields`` (staff edit, a resolved conflict): the record's
    next version, the version of those fields. Returns the new version."""
    found = _locked(session, kind, entity_id)
    version = int(found.version) + 1
    field_versions = {**(found.field_versions or {}), **dict.fromkeys(fields, version)}
    session.execute(sa.update(VERSIONS).where(VERSIONS.c.id == found.id)
                    .values(version=version, field_versions=field_versions))
    return version


def version_of(session: DbSession, kind: str, entity_ids: Iterable[uuid.UUID]
               ) -> dict[uuid.UUID, int]:
    """The current versions of records (feeds publish them; a record never edited through
    sync has none and is at version 1)."""
    ids = list(entity_ids)
    if not ids:
        return {}
    rows = session.execute(sa.select(VERSIONS.c.entity_id, VERSIONS.c.version).where(
        VERSIONS.c.kind == kind, VERSIONS.c.entity_id.in_(ids)))
    return {row.entity_id: int(row.version) for row in rows}
