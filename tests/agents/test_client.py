"""The reference device client (agents/client.py) against the app over real HTTP.

Each test follows one rule of docs/sync-protocol.md through the client: offline recording,
deleting only what was acknowledged, a lost answer, a 412 resync, the refresh grace window, a
photo upload resumed after a broken connection, a restored backup.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.client import DeviceClient, Unreachable, canonical_json, payload_sha256
from tests.agents import faults
from tests.agents.faults import DROP, LOSE, Faults


@pytest.fixture
def world(session: Any) -> faults.Field:
    return faults.field_world(session)


@pytest.fixture
def phone(live_server: str, session: Any, world: faults.Field, tmp_path: Path
          ) -> Iterator[tuple[DeviceClient, faults.FaultyAdapter]]:
    client, adapter = faults.device(live_server, session, world.coordinator, tmp_path)
    yield client, adapter
    client.close()


# -- §3.1 and the client's own file ------------------------------------------------------------

def test_canonical_json_sorts_keys_keeps_utf8_and_refuses_floats() -> None:
    payload = {"b": 1, "a": "水稻 \"x\"\n", "c": [True, None, {"z": 0, "y": "3.25"}]}
    text = canonical_json(payload)
    assert text == '{"a":"水稻 \\"x\\"\\n","b":1,"c":[true,null,{"y":"3.25","z":0}]}'
    assert payload_sha256(payload) == hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(TypeError):
        canonical_json({"lat": 30.5})


def test_client_imports_without_flask_or_the_server() -> None:
    """A mobile team runs it alone: no Flask, nothing of ``sync`` (the package's
    ``__init__`` is the app's wiring, so it is skipped here)."""
    root = Path(__file__).resolve().parents[2]
    code = f"""
import importlib.abc, sys, types
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("flask", "sync", "core", "lending", "sqlalchemy"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
package = types.ModuleType("agents"); package.__path__ = [{str(root / "agents")!r}]
sys.modules["agents"] = package
import agents.client
print(agents.client.DeviceClient.__name__)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "DeviceClient"


# -- §2 offline ------------------------------------------------------------------------------

def test_records_offline_in_order_and_keeps_everything_when_the_network_is_down(
        tmp_path: Path) -> None:
    client = DeviceClient("http://127.0.0.1:9", tmp_path / "phone.sqlite3",
                          backoff=faults.no_sleep(), attempts=2)
    client.adopt_tokens({"access_token": "x", "refresh_token": "y"})
    first = client.record("parcel_visit", faults.parcel_visit(str(uuid.uuid4()), 1))
    second = client.record("parcel_visit", faults.parcel_visit(str(uuid.uuid4()), 2))

    with pytest.raises(Unreachable):
        client.push()

    outbox = client.outbox()
    assert [(op.op_id, op.device_seq) for op in outbox] == [(first, 1), (second, 2)]
    assert outbox[0].payload_sha256 == hashlib.sha256(outbox[0].payload.encode()).hexdigest()
    client.close()
    reopened = DeviceClient("http://127.0.0.1:9", tmp_path / "phone.sqlite3")
    assert reopened.pending() == 2
    assert reopened.device_id == client.device_id
    assert reopened.store.next_seq() == 3
    reopened.close()


# -- §3 push ---------------------------------------------------------------------------------

def test_push_applies_in_batches_and_empties_the_outbox(
        phone: tuple[DeviceClient, Any], world: faults.Field, session: Any) -> None:
    client, _ = phone
    ops = [client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[n % 2], n))
           for n in range(5)]
    entities = [op.entity_id for op in client.outbox()]

    report = client.push(batch_size=2)

    assert report.batches == 3
    assert report.statuses["applied"] == 5
    assert report.acked_seq == 5
    assert report.expected_seq == 6
    assert client.pending() == 0
    assert set(faults.server_ops(session, ops).values()) == {1}
    assert faults.server_visits(session, entities) == dict.fromkeys(entities, 1)


def test_a_lost_answer_is_sent_again_and_comes_back_duplicate(
        phone: tuple[DeviceClient, faults.FaultyAdapter], world: faults.Field,
        session: Any) -> None:
    client, adapter = phone
    ops = [client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[0], n))
           for n in range(3)]
    adapter.script.append(LOSE)  # the server commits, the phone never hears it

    report = client.push()

    assert adapter.injected[LOSE] == 1
    assert report.statuses == {"duplicate": 3}
    assert client.pending() == 0
    assert faults.server_ops(session, ops) == dict.fromkeys(ops, 1)


def test_only_final_answers_leave_the_outbox(
        phone: tuple[DeviceClient, Any], world: faults.Field, session: Any) -> None:
    """A photo not uploaded defers its operation and every later one (§3.3.4); a rejected
    operation is set aside and does not block the queue (§3.2)."""
    client, _ = phone
    bad = client.record("parcel_visit", {"farmer_id": world.farmer_ids[0]})  # no location
    sha = client.add_photo(b"\xff\xd8 a parcel photo" * 50)
    waiting = client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[0], 1, [sha]))
    later = client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[1], 2))

    report = client.push()

    assert report.statuses == {"rejected": 1}
    assert report.deferred == {"attachment-missing": 1, "waiting-earlier-seq": 1}
    assert [op.op_id for op in client.outbox()] == [waiting, later]
    assert [(r["op_id"], r["reason"]) for r in client.set_aside()] == [(bad, "invalid-payload")]

    assert client.upload_photos() == [sha]
    assert client.push().statuses == {"applied": 2}
    assert client.pending() == 0
    assert faults.server_ops(session, [bad, waiting, later]) == dict.fromkeys(
        [bad, waiting, later], 1)


def test_restored_backup_renumbers_and_loses_nothing(
        phone: tuple[DeviceClient, Any], world: faults.Field, session: Any,
        tmp_path: Path) -> None:
    """§3.5: the phone goes back in time; its new operations reuse sequences the server has
    passed; the server answers ``seq-behind``; the client renumbers and pushes again."""
    client, _ = phone
    old = [client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[0], n))
           for n in range(2)]
    copy = faults.backup(client, tmp_path / "backup.sqlite3")
    after = [client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[1], n))
             for n in range(2, 5)]
    client.push()  # the server now holds 1..5

    client = faults.restore(client, copy)  # the outbox holds 1..2 again, next_seq 3
    new = [client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[0], n))
           for n in range(5, 7)]
    report = client.push()

    assert report.renumbered == 2
    assert client.pending() == 0
    everything = old + after + new
    assert faults.server_ops(session, everything) == dict.fromkeys(everything, 1)
    assert client.store.next_seq() == 8
    client.close()


# -- §4 pull ---------------------------------------------------------------------------------

def test_pull_builds_the_replica_and_a_412_starts_over_without_touching_the_outbox(
        phone: tuple[DeviceClient, Any], world: faults.Field) -> None:
    client, _ = phone
    client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[0], 1))
    client.push()
    waiting = client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[0], 2))

    first = client.pull(limit=1)
    farmers = client.replica("farmer")
    assert first.pages >= 2
    assert set(world.farmer_ids) <= set(farmers)
    assert len(client.replica("visit")) == 1

    client.store.set(cursor="not-a-cursor-the-server-made")
    again = client.pull()

    assert again.resyncs == 1
    assert client.replica("farmer") == farmers
    assert len(client.replica("visit")) == 1
    assert [op.op_id for op in client.outbox()] == [waiting]


# -- §1 tokens -------------------------------------------------------------------------------

def test_an_expired_access_token_is_refreshed_even_when_the_refresh_answer_is_lost(
        phone: tuple[DeviceClient, faults.FaultyAdapter], world: faults.Field) -> None:
    """§1.2: the refresh answer is lost; the client sends the *same* refresh token again
    within the grace window and gets the same new pair; the session lives on."""
    client, adapter = phone
    old_refresh = client.store.get("refresh_token")
    client.store.set(access_token="expired")
    client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[0], 1))
    adapter.faults = Faults(only=("/api/v1/auth/refresh",))
    adapter.script.extend([LOSE])

    assert client.push().statuses == {"applied": 1}

    assert adapter.injected[LOSE] == 1
    new_refresh = client.store.get("refresh_token")
    assert new_refresh not in (None, old_refresh)
    client.store.set(access_token="expired-again")
    adapter.faults = Faults()
    assert client.pull().pages >= 1  # the new refresh token works: the session was not ended
    assert client.store.get("refresh_token") not in (old_refresh, new_refresh)


# -- §5 photos -------------------------------------------------------------------------------

def test_a_photo_upload_resumes_from_the_servers_offset_after_a_broken_connection(
        live_server: str, session: Any, world: faults.Field, tmp_path: Path) -> None:
    client, adapter = faults.device(live_server, session, world.coordinator, tmp_path,
                                    chunk=1000)
    content = random.Random(7).randbytes(4500)  # noqa: S311 - test data
    sha = client.add_photo(content, filename="parcel.jpg")
    adapter.faults = Faults(only=("/api/v1/sync/uploads/",))  # the PATCHes and HEADs
    # PATCH, HEAD, PATCH lost after it was stored (its resend gets 409), HEAD, HEAD broken
    adapter.script.extend([None, None, LOSE, None, DROP, DROP])

    assert client.upload_photos() == [sha]

    assert adapter.injected == {LOSE: 1, DROP: 2}
    assert client.store.photo_state(sha) == (True, None)
    op = client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[0], 1, [sha]))
    assert client.push().statuses == {"applied": 1}
    assert json.loads(client.store.finished()[0]["result"])["entity_id"]
    assert client.store.finished()[0]["op_id"] == op
    client.close()


# -- §6 a registration linked to a farmer the bank knows --------------------------------------

def test_a_linked_registration_rekeys_the_local_farmer_and_what_cites_it(
        phone: tuple[DeviceClient, Any], world: faults.Field, session: Any) -> None:
    """The coordinator registers a farmer the bank already knows, then visits them at once.
    The device learns the server's id from the answer and re-keys its farmer and the visit
    (which it held back until then) before sending it."""
    from core.people.models import Farmer  # noqa: PLC0415
    from core.places.models import Village  # noqa: PLC0415
    from tests import factories  # noqa: PLC0415

    number = factories.id_number()
    known_id = str(factories.farmer(session, session.get(Village, world.village_id),
                                    id_no=number).public_id)
    session.commit()  # (read before: touching a row after commit would open a transaction)
    client, _ = phone
    mine = str(uuid.uuid4())
    client.record("register_farmer", {"name": "李四", "id_number": number, "phone": "13912345678",
                                      "village_id": world.village_public_id}, entity_id=mine)
    assert mine in client.replica("farmer")  # seen at once, on the phone
    visit = client.record("parcel_visit", faults.parcel_visit(mine, 1))

    report = client.push()

    assert report.batches == 2
    assert report.statuses == {"applied": 2}
    assert mine not in client.replica("farmer")
    assert known_id in client.replica("farmer")
    done = {row["op_id"]: row for row in client.store.finished()}
    assert json.loads(done[visit]["payload"])["farmer_id"] == known_id
    assert session.query(Farmer).filter_by(public_id=uuid.UUID(mine)).count() == 0
    session.rollback()


def test_a_restored_phone_keeps_its_order(
        phone: tuple[DeviceClient, Any], world: faults.Field, session: Any,
        tmp_path: Path) -> None:
    """The restored phone records more operations than it lost: the first ones are
    ``seq-behind``, a later one lands on ``expected_seq``. Order is never broken (§3.3), so
    the server applies them in the order they were recorded."""
    import sqlalchemy as sa  # noqa: PLC0415

    from sync.push.models import SyncOp  # noqa: PLC0415

    client, _ = phone
    copy = faults.backup(client, tmp_path / "backup.sqlite3")
    for n in range(2):
        client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[0], n))
    client.push()  # the server holds 1..2
    client = faults.restore(client, copy)  # next_seq 1 again
    new = [client.record("parcel_visit", faults.parcel_visit(world.farmer_ids[1], n))
           for n in range(2, 6)]  # seq 1..4: 1, 2 behind, 3 lands on expected_seq

    client.push()

    rows = dict(session.execute(sa.select(SyncOp.op_id, SyncOp.device_seq).where(
        SyncOp.op_id.in_([uuid.UUID(op) for op in new]))).all())
    session.rollback()
    applied = [rows[uuid.UUID(op)] for op in new]
    assert applied == sorted(applied)
    client.close()
