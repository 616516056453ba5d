"""Devices' sync state: staff see every device, a coordinator their own; the pull's note."""

from __future__ import annotations

import uuid

from core.db import db
from sync.push import state
from sync.push.models import SyncDevice
from tests import factories as f
from tests.sync import test_push_support as support
from tests.sync.test_push_support import op, push

push_app, pclient, world = support.push_app, support.pclient, support.world  # fixtures


def test_staff_see_every_device_with_its_sync_state(pclient, world, session) -> None:
    push(pclient, world["headers"], op(1), op(2, {"text": "r", "mode": "reject"}), op(4),
         pending=9)
    page = pclient.get("/api/v1/sync/devices", headers=world["staff"]).get_json()
    by_id = {item["device_id"]: item for item in page["items"]}
    assert set(by_id) == {str(world["device"].public_id), str(world["other_device"].public_id)}
    mine = by_id[str(world["device"].public_id)]
    assert mine["acked_seq"] == 2
    assert mine["pending_reported"] == 9
    assert mine["last_push_at"] is not None
    assert mine["last_pull_at"] is None
    assert mine["coordinator_id"] == str(world["coordinator"].public_id)
    never = by_id[str(world["other_device"].public_id)]
    assert never["acked_seq"] == 0
    assert never["last_push_at"] is None
    only = pclient.get(f"/api/v1/sync/devices?coordinator_id={world['other'].public_id}",
                       headers=world["staff"]).get_json()
    assert [item["device_id"] for item in only["items"]] == [str(world["other_device"].public_id)]


def test_one_device_counts_its_operations_by_status(pclient, world, session) -> None:
    push(pclient, world["headers"], op(1), op(2, {"text": "r", "mode": "reject"}), op(3))
    url = f"/api/v1/sync/devices/{world['device'].public_id}"
    detail = pclient.get(url, headers=world["staff"]).get_json()
    assert detail["ops_by_status"] == {"applied": 2, "rejected": 1}
    assert detail["revoked_at"] is None
    assert detail["flags"] == {}


def test_a_coordinator_sees_only_their_own_devices(pclient, world, session) -> None:
    page = pclient.get("/api/v1/sync/devices", headers=world["headers"]).get_json()
    assert [item["device_id"] for item in page["items"]] == [str(world["device"].public_id)]
    other = pclient.get(f"/api/v1/sync/devices/{world['other_device'].public_id}",
                        headers=world["headers"])
    assert other.status_code == 404
    own = pclient.get(f"/api/v1/sync/devices/{world['device'].public_id}",
                      headers=world["headers"])
    assert own.status_code == 200
    missing = pclient.get(f"/api/v1/sync/devices/{uuid.uuid4()}", headers=world["staff"])
    assert missing.status_code == 404


def test_a_farmer_sees_no_device(pclient, world, session) -> None:
    farmer = f.farmer(session, world["village"])
    headers = f.auth_headers(session, farmer)
    assert pclient.get("/api/v1/sync/devices", headers=headers).status_code == 403


def test_devices_come_in_pages(pclient, world, session) -> None:
    for _ in range(3):
        f.device_headers(session, world["coordinator"])
    seen, cursor = [], None
    while True:
        url = "/api/v1/sync/devices?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = pclient.get(url, headers=world["staff"]).get_json()
        seen += [item["device_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    bad = pclient.get("/api/v1/sync/devices?cursor=abc", headers=world["staff"])
    assert bad.status_code == 422


def test_a_pull_is_noted_with_its_cursor(pclient, world, session) -> None:
    state.note_pull(db.session, world["device"].id, "cursor-1")
    session.commit()
    state.note_pull(db.session, world["device"].id, "cursor-2")
    session.commit()
    url = f"/api/v1/sync/devices/{world['device'].public_id}"
    detail = pclient.get(url, headers=world["staff"]).get_json()
    assert detail["last_pull_at"] is not None
    push(pclient, world["headers"], op(1))  # the pull's row is the push's too
    db.session.rollback()
    row = db.session.query(SyncDevice).filter_by(device_id=world["device"].id).one()
    assert row.cursor == "cursor-2"
    assert row.acked_seq == 1


def test_a_revoked_device_shows_when_it_was_revoked(pclient, world, session) -> None:
    push(pclient, world["headers"], op(1))
    pclient.post(f"/api/v1/devices/{world['device'].public_id}/revoke", headers=world["staff"])
    detail = pclient.get(f"/api/v1/sync/devices/{world['device'].public_id}",
                         headers=world["staff"]).get_json()
    assert detail["revoked_at"] is not None
    assert detail["ops_by_status"] == {"applied": 1}
