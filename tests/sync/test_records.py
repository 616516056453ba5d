"""Editable records: per-field merge, conflicts filed for staff, and their resolution."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.audit import AuditEvent
from core.db import db
from core.places.models import Village
from sync.push import records
from sync.push.models import RecordVersion, SyncConflict
from sync.registry import of
from tests.sync import test_push_support as support
from tests.sync.test_push_support import op, push, statuses

push_app, pclient, world = support.push_app, support.pclient, support.world  # fixtures


def _rename(seq: int, village: Village, name: str, base: int | None) -> dict[str, Any]:
    return op(seq, {"name": name}, type_="test_rename", entity_id=str(village.public_id),
              base_version=base)


def _name(village: Village) -> str:
    db.session.rollback()
    return db.session.scalar(sa.select(Village.name).where(Village.id == village.id))


def _staff_renames(session: Any, village: Village, name: str) -> None:
    """A server-side edit: the record's value and its version (what a staff view would do)."""
    session.execute(sa.update(Village).where(Village.id == village.id).values(name=name))
    records.bump(session, "test_village", village.public_id, ["name"])
    session.commit()


def test_an_edit_nobody_else_made_applies_and_moves_the_version(pclient, world, session) -> None:
    village = world["village"]
    answer = push(pclient, world["headers"], _rename(1, village, "新名", 1))
    assert statuses(answer) == [(1, "applied", None)]
    assert answer["results"][0]["result"]["version"] == 2
    assert _name(village) == "新名"
    answer = push(pclient, world["headers"], _rename(2, village, "又一名", 2))
    assert answer["results"][0]["result"] == {
        "version": 3, "conflicts": [], "entity_id": str(village.public_id), "flags": []}


def test_a_concurrent_change_keeps_the_server_value_and_files_a_conflict(
        pclient, world, session) -> None:
    village = world["village"]
    push(pclient, world["headers"], _rename(1, village, "设备名", 1))  # version 2
    _staff_renames(session, village, "行里改的名")  # version 3
    edit = _rename(2, village, "设备又改", 2)
    answer = push(pclient, world["headers"], edit)
    assert statuses(answer) == [(2, "conflict", None)]
    assert answer["results"][0]["result"]["conflicts"] == ["name"]
    assert _name(village) == "行里改的名"  # nothing silently overwritten
    conflict = db.session.scalars(sa.select(SyncConflict)).one()
    assert (conflict.server_value, conflict.device_value) == ("行里改的名", "设备又改")
    assert conflict.base_version == 2
    assert conflict.status == "open"
    assert conflict.device_id == world["device"].id
    again = push(pclient, world["headers"], edit)
    assert again["results"][0]["status"] == "duplicate"
    assert again["results"][0]["original_status"] == "conflict"
    assert _count_conflicts() == 1


def test_an_edit_to_the_value_the_server_already_has_is_no_conflict(
        pclient, world, session) -> None:
    village = world["village"]
    _staff_renames(session, village, "同名")
    answer = push(pclient, world["headers"], _rename(1, village, "同名", 1))
    assert statuses(answer) == [(1, "applied", None)]
    assert _count_conflicts() == 0


def test_a_record_created_through_sync_starts_at_version_one(pclient, world, session) -> None:
    created = op(1, {"text": "x"})
    push(pclient, world["headers"], created)
    db.session.rollback()
    row = db.session.scalars(sa.select(RecordVersion)).one()
    assert (row.kind, str(row.entity_id), row.version) == ("note", created["entity_id"], 1)
    assert row.field_versions == {"text": 1}


def test_an_edit_out_of_scope_is_rejected(pclient, world, session) -> None:
    answer = push(pclient, world["headers"], _rename(1, world["other_village"], "x", 1))
    assert statuses(answer) == [(1, "rejected", "not-found")]


def _count_conflicts() -> int:
    db.session.rollback()
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(SyncConflict)))


def _conflict(pclient: Any, world: dict[str, Any], session: Any) -> dict[str, Any]:
    village = world["village"]
    _staff_renames(session, village, "行里的名")
    push(pclient, world["headers"], _rename(1, village, "设备的名", 1))
    page = pclient.get("/api/v1/sync/conflicts", headers=world["staff"]).get_json()
    return page["items"][0]


def test_staff_take_the_device_value_through_the_kind_resolver(pclient, world, session) -> None:
    conflict = _conflict(pclient, world, session)
    assert conflict["device_id"] == str(world["device"].public_id)
    url = f"/api/v1/sync/conflicts/{conflict['id']}/resolve"
    body = {"resolution": "take_device", "reason": "农户电话核实"}
    response = pclient.post(url, json=body, headers=world["staff"])
    assert response.status_code == 200, response.get_json()
    resolved = response.get_json()
    assert resolved["status"] == "resolved"
    assert resolved["resolution"] == "take_device"
    assert resolved["resolved_by"] == f"staff:{world['admin'].public_id}"
    assert _name(world["village"]) == "设备的名"
    events = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "sync.conflict.resolve"))
    # the same resolution again: the same answer, nothing written
    again = pclient.post(url, json=body, headers=world["staff"])
    assert again.status_code == 200
    assert again.get_json()["resolved_at"] == resolved["resolved_at"]
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "sync.conflict.resolve")) == events == 1
    other = pclient.post(url, json={"resolution": "keep_server", "reason": "x"},
                         headers=world["staff"])
    assert other.status_code == 409
    assert other.get_json()["code"] == "conflict-resolved"
    # the device's next edit from the version it pulls merges cleanly
    version = db.session.scalar(sa.select(RecordVersion.version).where(
        RecordVersion.kind == "test_village"))
    answer = push(pclient, world["headers"], _rename(2, world["village"], "再改", version))
    assert statuses(answer) == [(2, "applied", None)]


def test_staff_keep_the_server_value(pclient, world, session) -> None:
    conflict = _conflict(pclient, world, session)
    response = pclient.post(f"/api/v1/sync/conflicts/{conflict['id']}/resolve",
                            json={"resolution": "keep_server", "reason": "以行里为准"},
                            headers=world["staff"])
    assert response.status_code == 200
    assert _name(world["village"]) == "行里的名"


def test_conflicts_are_for_staff_open_first_in_pages(pclient, world, session) -> None:
    village = world["village"]
    _staff_renames(session, village, "A")
    push(pclient, world["headers"], *[_rename(i, village, f"d{i}", 1) for i in (1, 2, 3)])
    assert _count_conflicts() == 3
    first = pclient.get("/api/v1/sync/conflicts?limit=1", headers=world["staff"]).get_json()
    oldest = first["items"][0]
    pclient.post(f"/api/v1/sync/conflicts/{oldest['id']}/resolve",
                 json={"resolution": "keep_server", "reason": "x"}, headers=world["staff"])
    seen, cursor = [], None
    while True:
        url = "/api/v1/sync/conflicts?limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = pclient.get(url, headers=world["staff"]).get_json()
        seen += [(item["id"], item["status"]) for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [status for _, status in seen] == ["open", "open", "resolved"]
    assert seen[-1][0] == oldest["id"]
    only_open = pclient.get("/api/v1/sync/conflicts?status=open", headers=world["staff"])
    assert len(only_open.get_json()["items"]) == 2
    coordinator = pclient.get("/api/v1/sync/conflicts", headers=world["headers"])
    assert coordinator.status_code == 403
    bad = pclient.get("/api/v1/sync/conflicts?cursor=nonsense", headers=world["staff"])
    assert bad.status_code == 422


def test_resolving_an_unknown_conflict_or_without_resolver(push_app, pclient, world,
                                                           session) -> None:
    response = pclient.post("/api/v1/sync/conflicts/00000000-0000-4000-8000-000000000000/resolve",
                            json={"resolution": "keep_server", "reason": "x"},
                            headers=world["staff"])
    assert response.status_code == 404
    conflict = _conflict(pclient, world, session)
    of(push_app).resolvers.pop("test_village")
    response = pclient.post(f"/api/v1/sync/conflicts/{conflict['id']}/resolve",
                            json={"resolution": "take_device", "reason": "x"},
                            headers=world["staff"])
    assert response.status_code == 409
    assert response.get_json()["code"] == "no-resolver"


def test_an_immediate_handler_that_fails_after_writing_is_undone_alone(
        pclient, world, session) -> None:
    village = world["village"]
    before = _name(village)
    answer = push(pclient, world["headers"], op(1), _rename(2, village, "boom", 1), op(3))
    assert statuses(answer) == [(1, "applied", None), (2, "deferred", "retry-later"),
                                (3, "deferred", "waiting-earlier-seq")]
    assert _name(village) == before
    db.session.rollback()
    version = db.session.scalar(sa.select(RecordVersion.version).where(
        RecordVersion.kind == "test_village"))
    assert version is None  # the merge's version row went with the savepoint
    renames = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "village.rename"))
    assert renames == 0


def test_buffered_and_immediate_operations_keep_their_order(pclient, world, session) -> None:
    village = world["village"]
    answer = push(pclient, world["headers"], op(1), _rename(2, village, "甲", 1), op(3),
                  _rename(4, village, "乙", 2), op(5))
    assert [status for _, status, _ in statuses(answer)] == ["applied"] * 5
    assert _name(village) == "乙"
    db.session.rollback()
    kinds = db.session.scalars(sa.select(RecordVersion.kind).order_by(RecordVersion.id)).all()
    assert kinds == ["note", "test_village", "note", "note"]


def test_only_staff_resolve(pclient, world, session) -> None:
    conflict = _conflict(pclient, world, session)
    response = pclient.post(f"/api/v1/sync/conflicts/{conflict['id']}/resolve",
                            json={"resolution": "take_device", "reason": "x"},
                            headers=world["headers"])
    assert response.status_code == 403
