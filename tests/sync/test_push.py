"""POST /sync/push: every status and reason, order, replays, renumbering, failures that stay
alone (docs/sync-protocol.md §3)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from core.audit import AuditEvent
from core.db import db
from sync.feed.changes import SyncChange
from sync.push import outcomes
from sync.push.models import RecordVersion, SyncDevice, SyncOp
from tests import factories as f
from tests.sync import test_push_support as support
from tests.sync.test_push_support import batch, op, push, statuses

push_app, pclient, world = support.push_app, support.pclient, support.world  # fixtures


def _count(model: Any, *where: Any) -> int:
    db.session.rollback()  # read what the requests committed
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)))


def _state(device: Any) -> SyncDevice:
    db.session.rollback()
    return db.session.scalars(sa.select(SyncDevice).where(
        SyncDevice.device_id == device.id)).one()


def test_a_batch_applies_in_order_and_acknowledges(pclient, world, session) -> None:
    ops = [op(1), op(2), op(3, {"text": "x", "village_id": world["village"].id})]
    answer = push(pclient, world["headers"], *ops, pending=7)
    assert answer["acked_seq"] == 3
    assert answer["expected_seq"] == 4
    assert statuses(answer) == [(1, "applied", None), (2, "applied", None), (3, "applied", None)]
    first = answer["results"][0]
    assert first["op_id"] == ops[0]["op_id"]
    assert first["result"] == {"entity_id": ops[0]["entity_id"], "version": 1, "flags": []}
    assert _count(RecordVersion, RecordVersion.kind == "note") == 3
    assert _count(SyncOp, SyncOp.device_id == world["device"].id) == 3
    assert _count(AuditEvent, AuditEvent.action == "note.create") == 3
    assert _count(AuditEvent, AuditEvent.action == "sync.push") == 1
    state = _state(world["device"])
    assert state.acked_seq == 3
    assert state.pending_reported == 7
    assert state.last_push_at is not None
    assert state.last_sent_at is not None


def test_a_change_entry_is_written_with_the_operation(pclient, world, session) -> None:
    entity = str(uuid.uuid4())
    push(pclient, world["headers"],
         op(1, {"text": "x", "village_id": world["village"].id}, entity_id=entity))
    assert _count(SyncChange, SyncChange.entity_id == uuid.UUID(entity),
                  SyncChange.kind == "note") == 1


def test_a_reordered_batch_is_applied_by_sequence_and_answered_in_the_order_sent(
        pclient, world, session) -> None:
    ops = [op(3), op(1), op(2)]
    answer = push(pclient, world["headers"], *ops)
    assert statuses(answer) == [(3, "applied", None), (1, "applied", None), (2, "applied", None)]
    assert [r["op_id"] for r in answer["results"]] == [o["op_id"] for o in ops]
    db.session.rollback()
    seqs = db.session.scalars(sa.select(SyncOp.device_seq).order_by(SyncOp.id)).all()
    assert seqs == [1, 2, 3]
    assert answer["acked_seq"] == 3


def test_a_batch_that_overtook_another_waits_and_is_not_kept(pclient, world, session) -> None:
    early, late = [op(1), op(2)], [op(3), op(4)]
    answer = push(pclient, world["headers"], *late)
    assert statuses(answer) == [(3, "deferred", "waiting-earlier-seq"),
                                (4, "deferred", "waiting-earlier-seq")]
    assert answer["acked_seq"] == 0
    assert answer["expected_seq"] == 1
    assert _count(SyncOp) == 0
    assert push(pclient, world["headers"], *early)["acked_seq"] == 2
    answer = push(pclient, world["headers"], *late)
    assert statuses(answer) == [(3, "applied", None), (4, "applied", None)]
    assert answer["acked_seq"] == 4


def test_a_lost_answer_replayed_comes_back_duplicate_with_the_stored_result(
        pclient, world, session) -> None:
    ops = [op(1), op(2, {"text": "f", "mode": "flag"}), op(3, {"text": "r", "mode": "reject"})]
    first = push(pclient, world["headers"], *ops)
    events = _count(AuditEvent)
    again = push(pclient, world["headers"], *ops)
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 3
    assert [r["original_status"] for r in again["results"]] == ["applied", "applied", "rejected"]
    assert [r["result"] for r in again["results"][:2]] == [
        r["result"] for r in first["results"][:2]]
    assert again["results"][1]["result"]["flags"] == ["test-flag"]
    assert again["acked_seq"] == 3
    assert _count(RecordVersion) == 2
    assert _count(SyncOp) == 3
    assert _count(AuditEvent) == events  # a replay changes nothing


def test_a_replay_with_new_operations_applies_only_the_new_ones(pclient, world, session) -> None:
    ops = [op(1), op(2), op(3)]
    push(pclient, world["headers"], *ops[:2])
    answer = push(pclient, world["headers"], *ops)
    assert statuses(answer) == [(1, "duplicate", None), (2, "duplicate", None),
                                (3, "applied", None)]
    assert _count(RecordVersion) == 3


def test_an_op_id_reused_with_another_payload_changes_nothing(pclient, world, session) -> None:
    first = op(1, {"text": "first"})
    push(pclient, world["headers"], first)
    reused = op(1, {"text": "second"}, op_id=first["op_id"], entity_id=first["entity_id"])
    answer = push(pclient, world["headers"], reused)
    assert statuses(answer) == [(1, "rejected", "op-id-reused")]
    moved = op(5, {"text": "third"}, op_id=first["op_id"])  # wherever its sequence lies
    assert statuses(push(pclient, world["headers"], moved)) == [(5, "rejected", "op-id-reused")]
    db.session.rollback()
    record = db.session.scalars(sa.select(SyncOp)).one()
    assert record.payload_key == outcomes.payload_key(first["payload_sha256"])
    assert record.payload_key != first["payload_sha256"]  # keyed: no offline guessing
    assert record.status == "applied"
    assert _count(RecordVersion) == 1
    assert _state(world["device"]).acked_seq == 1


def test_a_device_gone_back_in_time_is_deferred_flagged_then_renumbered(
        pclient, world, session) -> None:
    sent = [op(1), op(2), op(3)]
    push(pclient, world["headers"], *sent)
    # Restored from a backup taken after op 1: it knows op 1, not 2 and 3, and records anew.
    new = [op(2, {"text": "new a"}), op(3, {"text": "new b"})]
    answer = push(pclient, world["headers"], sent[0], *new)
    assert statuses(answer) == [(1, "duplicate", None), (2, "deferred", "seq-behind"),
                                (3, "deferred", "seq-behind")]
    assert answer["flags"] == ["seq-regression"]
    assert answer["expected_seq"] == 4
    flags = _state(world["device"]).flags
    assert flags["seq-regression"]["device_seqs"] == [2, 3]
    assert flags["seq-regression"]["count"] == 2
    renumbered = [{**o, "device_seq": answer["expected_seq"] + i} for i, o in enumerate(new)]
    answer = push(pclient, world["headers"], *renumbered)
    assert statuses(answer) == [(4, "applied", None), (5, "applied", None)]
    assert _count(RecordVersion) == 5
    assert _count(SyncOp) == 5


def test_a_known_operation_renumbered_ahead_still_counts_for_the_sequence(
        pclient, world, session) -> None:
    known = op(1)
    push(pclient, world["headers"], known)
    # The device renumbered: the known op now sits at 3, after a new op at 2 still unsent.
    moved = {**known, "device_seq": 3}
    answer = push(pclient, world["headers"], moved, op(4))
    assert statuses(answer) == [(3, "duplicate", None), (4, "deferred", "waiting-earlier-seq")]
    assert answer["acked_seq"] == 1
    answer = push(pclient, world["headers"], op(2), op(4))
    assert statuses(answer) == [(2, "applied", None), (4, "applied", None)]
    assert answer["acked_seq"] == 4


def test_every_rejection_is_final_and_the_queue_goes_on(pclient, world, session) -> None:
    bad_hash = op(2, sha="0" * 64)
    answer = push(pclient, world["headers"], op(1), bad_hash, op(3, type_="no_such_type"),
                  op(4, {"text": 5}), op(5, {"text": "r", "mode": "reject"}), op(6))
    assert statuses(answer) == [
        (1, "applied", None), (2, "rejected", "hash-mismatch"), (3, "rejected", "unknown-type"),
        (4, "rejected", "invalid-payload"), (5, "rejected", "not-allowed"), (6, "applied", None)]
    assert answer["results"][3]["errors"] == {"text": ["Not a valid string."]}
    assert answer["results"][4]["detail"] == "refused by the test handler"
    assert answer["acked_seq"] == 6
    db.session.rollback()
    kept = dict(db.session.execute(sa.select(SyncOp.device_seq, SyncOp.reason)).all())
    assert kept == {1: None, 2: "hash-mismatch", 3: "unknown-type", 4: "invalid-payload",
                    5: "not-allowed", 6: None}
    assert _count(RecordVersion) == 2


def test_a_payload_with_text_that_cannot_be_stored_is_rejected_alone(
        pclient, world, session) -> None:
    payload = {"text": "a\x00b"}
    answer = push(pclient, world["headers"], op(1, payload), op(2))
    assert statuses(answer) == [(1, "rejected", "invalid-payload"), (2, "applied", None)]


def test_a_missing_photo_defers_the_operation_and_stops_the_queue(
        pclient, world, session) -> None:
    photo = "ab" * 32
    answer = push(pclient, world["headers"], op(1), op(2, {"text": "p", "photos": [photo]}),
                  op(3))
    assert statuses(answer) == [(1, "applied", None), (2, "deferred", "attachment-missing"),
                                (3, "deferred", "waiting-earlier-seq")]
    assert answer["acked_seq"] == 1
    assert _count(SyncOp) == 1


def test_an_unexpected_error_in_a_handler_defers_the_operation_and_loses_nothing(
        push_app, pclient, world, session) -> None:
    ops = [op(1), op(2, {"text": "b", "mode": "boom"}), op(3)]
    answer = push(pclient, world["headers"], *ops)
    assert statuses(answer) == [(1, "applied", None), (2, "deferred", "retry-later"),
                                (3, "deferred", "waiting-earlier-seq")]
    assert answer["acked_seq"] == 1
    push_app.config["TEST_BOOM"] = False  # the bug is fixed; the device sends it again
    answer = push(pclient, world["headers"], *ops)
    assert statuses(answer) == [(1, "duplicate", None), (2, "applied", None),
                                (3, "applied", None)]


def test_a_failing_prepare_defers_its_type(pclient, world, session) -> None:
    answer = push(pclient, world["headers"], op(1), op(2, type_="test_prep"), op(3))
    assert statuses(answer) == [(1, "applied", None), (2, "deferred", "retry-later"),
                                (3, "deferred", "waiting-earlier-seq")]


def test_a_failing_bulk_write_is_redone_operation_by_operation(
        pclient, world, session) -> None:
    entity = str(uuid.uuid4())
    # Op 2 creates the same note as op 1: the unique version row refuses it at the write.
    ops = [op(1, entity_id=entity), op(2, entity_id=entity), op(3)]
    answer = push(pclient, world["headers"], *ops)
    assert statuses(answer) == [(1, "applied", None), (2, "rejected", "not-allowed"),
                                (3, "applied", None)]
    assert answer["acked_seq"] == 3
    assert _count(RecordVersion) == 2
    assert _count(SyncOp) == 3
    assert _count(AuditEvent, AuditEvent.action == "note.create") == 2
    again = push(pclient, world["headers"], *ops)
    assert [r["original_status"] for r in again["results"]] == ["applied", "rejected", "applied"]


def test_the_bulk_fallback_also_holds_across_batches(pclient, world, session) -> None:
    entity = str(uuid.uuid4())
    push(pclient, world["headers"], op(1, entity_id=entity))
    answer = push(pclient, world["headers"], op(2), op(3, entity_id=entity), op(4))
    assert statuses(answer) == [(2, "applied", None), (3, "rejected", "not-allowed"),
                                (4, "applied", None)]


def test_clocks_are_flagged_never_trusted(pclient, world, session) -> None:
    now = datetime.now(UTC)
    ahead = op(1, recorded_at=now + timedelta(hours=2))
    old = op(2, recorded_at=now - timedelta(days=45))
    fine = op(3, recorded_at=now - timedelta(days=3))
    answer = push(pclient, world["headers"], ahead, old, fine, sent_at=now + timedelta(days=3))
    assert [r["result"]["flags"] for r in answer["results"]] == [
        ["clock-skew"], ["clock-skew"], []]
    assert answer["flags"] == ["clock-skew"]
    assert _state(world["device"]).flags["clock-skew"]["offset_seconds"] > 2 * 86400
    db.session.rollback()
    record = db.session.scalars(sa.select(SyncOp).where(SyncOp.device_seq == 2)).one()
    assert record.recorded_at.date() == (now - timedelta(days=45)).date()  # kept as claimed
    assert record.flags[0]["code"] == "clock-skew"


def test_the_envelope_is_checked_whole(push_app, pclient, world, session) -> None:
    headers = world["headers"]
    one = op(1)
    bodies = [
        {"sent_at": datetime.now(UTC).isoformat(), "pending": 1},
        batch(one, {**op(2), "op_id": one["op_id"]}),
        batch(one, {**op(1)}),
        batch({**one, "device_seq": "1"}),
        batch({**one, "device_seq": 0}),
        batch({**one, "payload_sha256": "ABC"}),
        batch({**one, "recorded_at": "2026-05-01T10:00:00"}),
        batch({**one, "recorded_at": "0001-01-01T00:00:00+14:00"}),
        batch({**one, "type": "x\x00"}),
        {**batch(one), "ops": []},
    ]
    for body in bodies:
        response = pclient.post("/api/v1/sync/push", json=body, headers=headers)
        assert response.status_code == 422, body
        assert response.get_json()["code"] == "validation-failed"
    push_app.config["NONGDAI_SYNC_BATCH_MAX"] = 2
    response = pclient.post("/api/v1/sync/push", json=batch(op(1), op(2), op(3)),
                            headers=headers)
    assert response.status_code == 422
    assert _count(SyncOp) == 0


def test_only_a_coordinator_on_a_device_may_push(pclient, world, session) -> None:
    no_device = f.auth_headers(session, world["coordinator"])
    response = pclient.post("/api/v1/sync/push", json=batch(op(1)), headers=no_device)
    assert response.status_code == 403
    assert response.get_json()["code"] == "device-required"
    response = pclient.post("/api/v1/sync/push", json=batch(op(1)), headers=world["staff"])
    assert response.status_code == 403
    response = pclient.post("/api/v1/sync/push", json=batch(op(1)))
    assert response.status_code == 401


def test_a_revoked_device_is_refused_and_what_it_pushed_stays(pclient, world, session) -> None:
    push(pclient, world["headers"], op(1), op(2))
    revoke = pclient.post(f"/api/v1/devices/{world['device'].public_id}/revoke",
                          headers=world["staff"])
    assert revoke.status_code == 200
    response = pclient.post("/api/v1/sync/push", json=batch(op(3)), headers=world["headers"])
    assert response.status_code == 401
    assert _count(SyncOp, SyncOp.device_id == world["device"].id) == 2
    assert _count(RecordVersion) == 2


def test_devices_are_counted_apart(pclient, world, session) -> None:
    push(pclient, world["headers"], op(1), op(2))
    answer = push(pclient, world["other_headers"], op(1))
    assert answer["acked_seq"] == 1
    assert _state(world["device"]).acked_seq == 2


def test_the_statements_per_batch_do_not_grow_with_its_size(pclient, world, session) -> None:
    counts = []
    push(pclient, world["headers"], op(1))  # the device's first push makes its sync row
    next_seq = 2
    for size in (5, 40):
        ops = [op(next_seq + i, {"text": "t", "village_id": world["village"].id})
               for i in range(size)]
        next_seq += size
        seen: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any,
                  seen: list[str] = seen) -> None:
            if "auth_sessions" not in statement:  # the session's last use: once in a while
                seen.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            answer = push(pclient, world["headers"], *ops)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        assert answer["acked_seq"] == next_seq - 1
        counts.append(len(seen))
    assert counts[0] == counts[1]


def test_a_large_pending_count_is_kept(pclient, world, session) -> None:
    push(pclient, world["headers"], op(1), pending=2**40)
    assert _state(world["device"]).pending_reported == 2**40


def test_a_batch_may_be_larger_than_an_ordinary_body(pclient, world) -> None:
    """A push takes up to NONGDAI_SYNC_PUSH_MAX_BYTES, not the 256 KB of other requests: a
    full batch of visits with notes must fit (and above that limit it is 413, not a 500)."""
    ops = [op(n, {"text": "田" * 100}) for n in range(1, 501)]  # over 300 KB of JSON
    answer = push(pclient, world["headers"], *ops)
    assert {item["status"] for item in answer["results"]} == {"applied"}
    pclient.application.config["NONGDAI_SYNC_PUSH_MAX_BYTES"] = 100_000
    too_big = pclient.post("/api/v1/sync/push", json=batch(
        *[op(n, {"text": "田" * 100}) for n in range(501, 1001)]), headers=world["headers"])
    assert too_big.status_code == 413


def test_nul_in_a_payload_rejects_that_operation_alone(pclient, world) -> None:
    answer = push(pclient, world["headers"], op(1, {"text": "a\x00b"}), op(2, {"text": "ok"}))
    assert statuses(answer) == [(1, "rejected", "invalid-payload"), (2, "applied", None)]


def test_a_domain_refusal_is_final_and_a_server_error_waits(pclient, world) -> None:
    """A service's 4xx problem inside a handler (what the online API would answer for the same
    input) rejects that operation for good, so it never holds the device's queue; a bug of the
    server's is deferred ``retry-later`` and the queue waits behind it, nothing lost."""
    from core.errors import Conflict, NotFound, ValidationFailed  # noqa: PLC0415
    from sync.registry import register_operation  # noqa: PLC0415

    raised = {"missing": NotFound(), "invalid": ValidationFailed(errors={"name": ["bad"]}),
              "clash": Conflict(), "bug": RuntimeError("boom")}

    def refuse(_ctx: Any, one: Any) -> Any:
        raise raised[one.payload["text"]]

    register_operation(pclient.application, "test_refuse", refuse, immediate=True)
    answer = push(pclient, world["headers"],
                  *[op(n, {"text": text}, type_="test_refuse")
                    for n, text in enumerate(("missing", "invalid", "clash", "bug"), start=1)])
    assert statuses(answer) == [(1, "rejected", "not-found"), (2, "rejected", "invalid-payload"),
                                (3, "rejected", "not-allowed"), (4, "deferred", "retry-later")]
    assert answer["results"][1]["errors"] == {"name": ["bad"]}
    assert answer["acked_seq"] == 3
