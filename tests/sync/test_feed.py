"""The pull (docs/sync-protocol.md §4): snapshot, then the change feed of the coordinator's
scope, with tombstones, paging, signed cursors, retention, gzip; and the change log's listener.

The feeds are registered here, on the ``app`` fixture before its first request, over the
farmers table (a test kind, ``t-farmer``, watched with :func:`sync.feed.changes.watch`), and
are the app's only feeds, so what the domains publish does not show up in these pages.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from itsdangerous import URLSafeSerializer
from sqlalchemy.orm import Session

from core import jobs
from core.db import db, utcnow
from core.people.models import Farmer
from core.places.models import Village
from sync import registry
from sync.feed import changes, cursor
from sync.feed import jobs as feed_jobs
from sync.feed.changes import CHANGES
from tests import factories as f
from tests.conftest import PG_URL

PULL = "/api/v1/sync/pull"
KIND = "t-farmer"
PHONES = "t-phone"


def load_farmers(session: Any, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    rows = session.execute(sa.select(Farmer.public_id, Farmer.name, Farmer.village_id)
                           .where(Farmer.public_id.in_(ids), Farmer.is_active))
    return {r.public_id: {"name": r.name, "village_id": r.village_id, "note": None}
            for r in rows}


def snapshot_farmers(session: Any, village_ids: frozenset[int], after: uuid.UUID | None,
                     limit: int) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    stmt = (sa.select(Farmer.public_id, Farmer.name, Farmer.village_id)
            .where(Farmer.village_id.in_(sorted(village_ids)), Farmer.is_active)
            .order_by(Farmer.public_id).limit(limit))
    if after is not None:
        stmt = stmt.where(Farmer.public_id > after)
    return [(r.public_id, {"name": r.name, "village_id": r.village_id}) for r in
            session.execute(stmt)]


def load_phones(session: Any, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    rows = session.execute(sa.select(Farmer.public_id, Farmer.phone)
                           .where(Farmer.public_id.in_(ids)))
    return {r.public_id: {"phone": r.phone, "version": 1} for r in rows}


def snapshot_phones(session: Any, village_ids: frozenset[int], after: uuid.UUID | None,
                    limit: int) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    found = load_phones(session, [fid for fid, _data in
                                  snapshot_farmers(session, village_ids, after, limit)])
    return sorted(found.items())


@pytest.fixture
def app(app: Any) -> Any:
    """The app with only the test feeds: farmers, then their phones (a second kind)."""
    registry.of(app).feeds.clear()
    registry.register_feed(app, KIND, load_farmers, snapshot_farmers)
    changes.watch(Farmer, KIND)
    return app


@pytest.fixture
def two_kinds(app: Any) -> Any:
    registry.register_feed(app, PHONES, load_phones, snapshot_phones)
    return app


class World:
    """Station 1 serves villages A and B; station 2 serves C. A device-bound coordinator each."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.a, self.b = f.village(session), f.village(session)
        self.c = f.village(session)
        self.station = f.station(session, [self.a, self.b])
        self.other_station = f.station(session, [self.c])
        self.coordinator = f.coordinator(session, self.station)
        self.headers, self.device = f.device_headers(session, self.coordinator)
        other = f.coordinator(session, self.other_station)
        self.other_headers, _device = f.device_headers(session, other)
        session.commit()


@pytest.fixture
def world(session: Any) -> World:
    return World(session)


def pull(client: Any, headers: dict[str, str], cursor_text: str | None = None,
         limit: int | None = None, status: int = 200) -> dict[str, Any]:
    query = {k: v for k, v in {"cursor": cursor_text, "limit": limit}.items() if v is not None}
    response = client.get(PULL, query_string=query, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def pull_all(client: Any, headers: dict[str, str], cursor_text: str | None = None,
             limit: int | None = None) -> tuple[list[dict[str, Any]], str]:
    """Every page until ``has_more`` is false: the changes and the last cursor."""
    got: list[dict[str, Any]] = []
    while True:
        page = pull(client, headers, cursor_text, limit)
        got.extend(page["changes"])
        cursor_text = page["cursor"]
        if not page["has_more"]:
            return got, cursor_text


def ids(entries: list[dict[str, Any]], op: str | None = None) -> list[str]:
    return [e["id"] for e in entries if op is None or e["op"] == op]


def farmers(session: Any, village: Any, n: int) -> list[Farmer]:
    return [f.farmer(session, village, name=f"农户{i}") for i in range(n)]


def feed_rows(kind: str = KIND) -> list[Any]:
    return db.session.execute(sa.select(CHANGES).where(CHANGES.c.kind == kind)
                              .order_by(CHANGES.c.txid, CHANGES.c.seq)).all()


def problem(client: Any, headers: dict[str, str], query: dict[str, Any], status: int,
            code: str) -> None:
    response = client.get(PULL, query_string=query, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code


# --- snapshot, then the feed --------------------------------------------------------------------

def test_a_first_pull_is_the_snapshot_of_the_scope_then_the_feed_follows(
        client: Any, session: Any, world: World) -> None:
    mine = farmers(session, world.a, 3) + farmers(session, world.b, 2)
    farmers(session, world.c, 2)  # another station's
    session.commit()

    first = pull(client, world.headers)

    assert ids(first["changes"]) == sorted(str(x.public_id) for x in mine)
    assert {e["op"] for e in first["changes"]} == {"upsert"}
    assert first["changes"][0]["data"]["village_id"] in {world.a.id, world.b.id}
    assert first["has_more"] is False
    newcomer = f.farmer(session, world.a, name="新来的")
    mine[4].name = "改名"
    session.commit()

    second = pull(client, world.headers, first["cursor"])

    assert sorted(ids(second["changes"])) == sorted([str(newcomer.public_id),
                                                     str(mine[4].public_id)])
    renamed = next(e for e in second["changes"] if e["id"] == str(mine[4].public_id))
    assert renamed == {"kind": KIND, "id": str(mine[4].public_id), "op": "upsert",
                       "data": {"name": "改名", "village_id": world.b.id}}  # no null "note"
    third = pull(client, world.headers, second["cursor"])
    assert third["changes"] == []
    assert third["has_more"] is False


def test_kinds_come_in_registration_order_and_a_version_is_lifted(
        client: Any, session: Any, world: World, two_kinds: Any) -> None:
    mine = farmers(session, world.a, 3)
    session.commit()

    got, _cursor = pull_all(client, world.headers, limit=2)

    expected = sorted(str(x.public_id) for x in mine)
    assert [(e["kind"], e["id"]) for e in got] == [(KIND, i) for i in expected] + [
        (PHONES, i) for i in expected]
    assert got[-1]["version"] == 1
    assert "version" not in got[-1]["data"]


def test_changes_made_during_the_snapshot_come_after_it(
        client: Any, session: Any, world: World) -> None:
    mine = sorted(farmers(session, world.a, 4), key=lambda x: x.public_id)
    session.commit()
    page = pull(client, world.headers, limit=2)
    assert ids(page["changes"]) == [str(x.public_id) for x in mine[:2]]
    mine[0].name = "快照之后改的"  # already sent
    session.commit()

    rest, _cursor = pull_all(client, world.headers, page["cursor"], limit=2)

    assert [(e["id"], e["data"]["name"]) for e in rest] == [
        (str(x.public_id), x.name) for x in (mine[2], mine[3], mine[0])]
    assert rest[-1]["data"]["name"] == "快照之后改的"


def test_the_feed_keeps_each_entity_once_per_page_in_its_latest_state(
        client: Any, session: Any, world: World) -> None:
    farmer = f.farmer(session, world.a)
    session.commit()
    start = pull(client, world.headers)["cursor"]
    for name in ("一", "二", "三"):
        farmer.name = name
        session.commit()

    page = pull(client, world.headers, start)

    assert page["changes"] == [{"kind": KIND, "id": str(farmer.public_id), "op": "upsert",
                                "data": {"name": "三", "village_id": world.a.id}}]


# --- tombstones ---------------------------------------------------------------------------------

def test_a_deleted_entity_comes_as_a_tombstone(client: Any, session: Any, world: World) -> None:
    gone, retired = f.farmer(session, world.a), f.farmer(session, world.b)
    session.commit()
    start = pull(client, world.headers)["cursor"]
    session.delete(gone)
    retired.is_active = False  # the loader no longer returns it
    session.commit()

    page = pull(client, world.headers, start)

    assert sorted(page["changes"], key=lambda e: e["id"]) == sorted(
        [{"kind": KIND, "id": str(gone.public_id), "op": "delete"},
         {"kind": KIND, "id": str(retired.public_id), "op": "delete"}], key=lambda e: e["id"])


def test_a_farmer_moved_to_another_station_leaves_one_scope_and_enters_the_other(
        client: Any, session: Any, world: World) -> None:
    farmer = f.farmer(session, world.a)
    session.commit()
    mine = pull(client, world.headers)["cursor"]
    theirs = pull(client, world.other_headers)["cursor"]
    farmer.village = world.c
    session.commit()

    left = pull(client, world.headers, mine)
    entered = pull(client, world.other_headers, theirs)

    assert left["changes"] == [{"kind": KIND, "id": str(farmer.public_id), "op": "delete"}]
    assert entered["changes"] == [{"kind": KIND, "id": str(farmer.public_id), "op": "upsert",
                                   "data": {"name": farmer.name, "village_id": world.c.id}}]
    assert [(r.village_id, r.op) for r in feed_rows()][-2:] == [(world.a.id, "delete"),
                                                              (world.c.id, "upsert")]


def test_a_move_between_villages_of_the_scope_is_an_upsert(
        client: Any, session: Any, world: World) -> None:
    farmer = f.farmer(session, world.a)
    session.commit()
    start = pull(client, world.headers)["cursor"]
    farmer.village_id = world.b.id  # the column itself this time, not the relationship
    session.commit()

    page = pull(client, world.headers, start)

    assert page["changes"] == [{"kind": KIND, "id": str(farmer.public_id), "op": "upsert",
                                "data": {"name": farmer.name, "village_id": world.b.id}}]


def test_a_move_out_and_back_within_one_page_sends_the_current_state(
        client: Any, session: Any, world: World) -> None:
    farmer = f.farmer(session, world.a)
    session.commit()
    start = pull(client, world.headers)["cursor"]
    farmer.village = world.c
    session.commit()
    farmer.village = world.b
    session.commit()

    page = pull(client, world.headers, start)

    assert page["changes"] == [{"kind": KIND, "id": str(farmer.public_id), "op": "upsert",
                                "data": {"name": farmer.name, "village_id": world.b.id}}]


def test_an_entity_now_outside_the_scope_is_never_sent(
        client: Any, session: Any, world: World) -> None:
    """A page that holds an old in-scope change of an entity that has since left the scope
    sends a tombstone, not the entity's current (foreign) data."""
    farmer = f.farmer(session, world.a)
    session.commit()
    start = pull(client, world.headers)["cursor"]
    farmer.name = "还在本站"
    session.commit()
    farmer.village = world.c
    farmer.name = "已到外站"
    session.commit()

    first = pull(client, world.headers, start, limit=1)  # only the rename's row

    assert first["changes"] == [{"kind": KIND, "id": str(farmer.public_id), "op": "delete"}]
    assert first["has_more"] is True


# --- scope ---------------------------------------------------------------------------------------

def test_another_stations_villages_never_appear(client: Any, session: Any, world: World) -> None:
    foreign = farmers(session, world.c, 3)
    session.commit()
    snapshot, cursor_text = pull_all(client, world.headers)
    for farmer in foreign:
        farmer.name = "外站改名"
    f.farmer(session, world.c)
    session.delete(foreign[0])
    session.commit()

    feed, _cursor = pull_all(client, world.headers, cursor_text)

    assert snapshot == []
    assert feed == []


def test_a_scope_change_requires_a_resync(client: Any, session: Any, world: World) -> None:
    cursor_text = pull(client, world.headers)["cursor"]
    world.station.villages.append(f.village(session, world.a.township))
    session.commit()

    problem(client, world.headers, {"cursor": cursor_text}, 412, "resync-required")
    fresh = pull(client, world.headers)
    assert fresh["has_more"] is False


def test_a_tampered_or_foreign_cursor_requires_a_resync(
        client: Any, session: Any, world: World) -> None:
    cursor_text = pull(client, world.headers)["cursor"]
    colleague = f.coordinator(session, world.station)  # same scope, another coordinator
    colleague_headers, _device = f.device_headers(session, colleague)
    forged = URLSafeSerializer("not the server's key", salt="nongdai.sync.pull-cursor")

    for text in (cursor_text[:-2] + ("AA" if not cursor_text.endswith("AA") else "BB"),
                 "garbage", forged.dumps([1, "f", 0, 10**9, world.coordinator.public_id.hex,
                                          cursor.scope_hash({world.a.id, world.b.id})])):
        problem(client, world.headers, {"cursor": text}, 412, "resync-required")
    problem(client, colleague_headers, {"cursor": cursor_text}, 412, "resync-required")


def test_a_cursor_older_than_the_retained_feed_requires_a_resync(
        app: Any, client: Any, session: Any, world: World) -> None:
    farmer = f.farmer(session, world.a)
    session.commit()
    behind = pull(client, world.headers)["cursor"]
    for name in ("一", "二"):
        farmer.name = name
        session.commit()
    current = pull(client, world.headers, behind)["cursor"]
    farmer.name = "三"  # young: stays
    session.commit()
    old = utcnow() - timedelta(days=app.config["NONGDAI_SYNC_FEED_RETENTION_DAYS"] + 1)
    session.execute(sa.update(CHANGES).where(CHANGES.c.seq <= max(r.seq for r in feed_rows()[:-1]))
                    .values(changed_at=old))
    session.commit()

    assert jobs.run(feed_jobs.NAME) == "ok"

    assert [r.op for r in feed_rows()] == ["upsert"]  # only the young row is left
    problem(client, world.headers, {"cursor": behind}, 412, "resync-required")
    page = pull(client, world.headers, current)  # it had read all that was deleted
    assert [e["data"]["name"] for e in page["changes"]] == ["三"]
    session.commit()
    assert jobs.run(feed_jobs.NAME) == "ok"  # idempotent
    assert len(feed_rows()) == 1


def test_retention_that_empties_the_feed_keeps_cursors_moving(
        app: Any, client: Any, session: Any, world: World) -> None:
    farmer = f.farmer(session, world.a)
    session.commit()
    old = utcnow() - timedelta(days=app.config["NONGDAI_SYNC_FEED_RETENTION_DAYS"] + 1)
    session.execute(sa.update(CHANGES).values(changed_at=old))
    session.commit()
    assert jobs.run(feed_jobs.NAME) == "ok"
    assert feed_rows() == []
    session.commit()

    first = pull(client, world.headers)  # starts at the horizon, not before it
    farmer.name = "新"
    session.commit()
    page = pull(client, world.headers, first["cursor"])

    assert [e["data"]["name"] for e in page["changes"]] == ["新"]
    assert pull(client, world.headers, page["cursor"])["changes"] == []


# --- the wire ------------------------------------------------------------------------------------

def test_the_body_is_gzipped_when_the_client_accepts_it(
        client: Any, session: Any, world: World) -> None:
    farmers(session, world.a, 30)
    session.commit()

    zipped = client.get(PULL, headers={**world.headers, "Accept-Encoding": "br, gzip"})
    plain = client.get(PULL, headers=world.headers)
    refused = client.get(PULL, headers={**world.headers, "Accept-Encoding": "gzip;q=0, *"})

    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    body = json.loads(gzip.decompress(zipped.get_data()))
    assert len(body["changes"]) == 30
    assert len(zipped.get_data()) < len(plain.get_data())
    assert "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["Vary"]
    assert plain.get_json()["changes"] == body["changes"]
    assert "Content-Encoding" not in refused.headers
    assert b"\n" not in plain.get_data()  # compact
    assert b": " not in plain.get_data()


def test_pages_follow_has_more(client: Any, session: Any, world: World) -> None:
    mine = farmers(session, world.a, 7)
    session.commit()

    sizes, cursor_text = [], None
    while True:
        page = pull(client, world.headers, cursor_text, limit=3)
        sizes.append(len(page["changes"]))
        cursor_text = page["cursor"]
        if not page["has_more"]:
            break
    for farmer in mine[:5]:
        farmer.name = "新名"
        session.commit()
    feed_sizes, seen = [], []
    while True:
        page = pull(client, world.headers, cursor_text, limit=2)
        feed_sizes.append(len(page["changes"]))
        seen.extend(ids(page["changes"]))
        cursor_text = page["cursor"]
        if not page["has_more"]:
            break

    assert sizes == [3, 3, 1]
    assert feed_sizes == [2, 2, 1]
    assert seen == [str(x.public_id) for x in mine[:5]]


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "abc", "2.5"])
def test_a_limit_outside_the_range_is_refused(client: Any, world: World, limit: str) -> None:
    problem(client, world.headers, {"limit": limit}, 422, "validation-failed")


def test_the_limit_may_be_the_maximum(app: Any, client: Any, world: World) -> None:
    pull(client, world.headers, limit=app.config["NONGDAI_SYNC_PULL_LIMIT_MAX"])


def test_only_a_coordinators_device_session_may_pull(
        client: Any, session: Any, world: World) -> None:
    problem(client, f.auth_headers(session, world.coordinator), {}, 403, "device-required")
    problem(client, f.auth_headers(session, f.staff(session)), {}, 403, "forbidden")
    problem(client, f.auth_headers(session, f.farmer(session, world.a)), {}, 403, "forbidden")
    assert client.get(PULL).status_code == 401


def test_a_pull_is_noted_in_the_devices_sync_state(
        client: Any, session: Any, world: World) -> None:
    from sync.push.devicestate import read  # noqa: PLC0415

    page = pull(client, world.headers)

    state = read(session, world.device.id)
    assert state.cursor == page["cursor"]
    assert state.last_pull_at is not None


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's one write lock")
def test_polling_an_unchanged_scope_takes_no_write_lock(
        app: Any, client: Any, session: Any, world: World) -> None:
    f.farmer(session, world.a)
    session.commit()
    cursor_text = pull(client, world.headers)["cursor"]
    assert pull(client, world.headers, cursor_text)["cursor"] == cursor_text  # noted once
    path = sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process writing for a long time

        page = pull(client, world.headers, cursor_text)
    finally:
        holder.rollback()
        holder.close()

    assert page == {"changes": [], "cursor": cursor_text, "has_more": False}


# --- the change log's listener -----------------------------------------------------------------

def test_only_real_changes_write_change_rows(session: Any, world: World) -> None:
    farmer = f.farmer(session, world.a)
    session.commit()
    before = len(feed_rows())
    farmer.name = farmer.name  # no change
    session.commit()
    assert len(feed_rows()) == before
    farmer.phone = "13900000000"
    session.commit()
    assert [(r.entity_id, r.village_id, r.op) for r in feed_rows()][before:] == [
        (farmer.public_id, world.a.id, "upsert")]


def test_a_village_changed_without_the_old_value_loaded_is_still_tombstoned(
        session: Any, world: World) -> None:
    farmer = f.farmer(session, world.a)
    session.commit()  # expires every attribute
    farmer.village_id = world.c.id  # set before anything was loaded again
    session.commit()

    assert [(r.village_id, r.op) for r in feed_rows()][-2:] == [(world.a.id, "delete"),
                                                              (world.c.id, "upsert")]


def test_change_rows_are_written_in_the_changes_transaction(session: Any, world: World) -> None:
    f.farmer(session, world.a)
    session.rollback()

    assert feed_rows() == []


def test_an_app_that_does_not_publish_the_kind_writes_no_rows(
        app: Any, database: str, tmp_path: Any, session: Any, world: World) -> None:
    from app import create_app  # noqa: PLC0415
    from tests.conftest import _overrides  # noqa: PLC0415

    other = create_app(_overrides(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path / "other"))
    village_id = world.a.id
    session.commit()
    with other.app_context():
        f.farmer(db.session, db.session.get(Village, village_id))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()

    assert feed_rows() == []
    f.farmer(session, world.a)
    session.commit()
    assert len(feed_rows()) == 1


def test_record_and_row_write_the_same_rows(session: Any, world: World) -> None:
    entity = uuid.uuid4()
    changes.record(session, KIND, entity, world.a.id, "delete")
    session.execute(sa.insert(CHANGES), [changes.row(KIND, entity, world.b.id)])
    session.commit()

    assert [(r.entity_id, r.village_id, r.op) for r in feed_rows()] == [
        (entity, world.a.id, "delete"), (entity, world.b.id, "upsert")]
    with pytest.raises(ValueError, match="op"):
        changes.row(KIND, entity, world.a.id, "merge")


# --- PostgreSQL: transactions that commit out of sequence order -------------------------------

@pytest.mark.postgres
def test_a_transaction_committing_late_is_not_skipped(
        client: Any, session: Any, world: World) -> None:
    early, late = f.farmer(session, world.a, name="早"), f.farmer(session, world.a, name="晚")
    session.commit()
    start = pull(client, world.headers)["cursor"]
    slow, quick = db.engine.connect(), db.engine.connect()
    try:
        slow_tx = slow.begin()
        changes.record(Session(bind=slow), KIND, early.public_id, world.a.id)  # takes seq n
        slow_seq = slow.scalar(sa.select(sa.func.max(CHANGES.c.seq)))
        with quick.begin():
            changes.record(Session(bind=quick), KIND, late.public_id, world.a.id)  # seq n + 1
        quick_seq = quick.scalar(sa.select(sa.func.max(CHANGES.c.seq)))
        quick.rollback()
        assert slow_seq < quick_seq  # and the later seq commits first

        between = pull(client, world.headers, start)
        slow_tx.commit()
    finally:
        slow.close()
        quick.close()
    after = pull(client, world.headers, between["cursor"])

    assert between["changes"] == []  # the quick one waits behind the slow one's txid
    assert sorted(ids(after["changes"])) == sorted([str(early.public_id), str(late.public_id)])


@pytest.mark.postgres
def test_a_transaction_open_in_another_database_does_not_hold_the_feed_back(
        client: Any, session: Any, world: World) -> None:
    farmer = f.farmer(session, world.a)
    session.commit()
    start = pull(client, world.headers)["cursor"]
    elsewhere = sa.create_engine(sa.make_url(PG_URL).set(database="postgres"))
    try:
        with elsewhere.connect() as other:
            other.execute(sa.text("SELECT pg_current_xact_id()"))  # a write transaction, open
            farmer.name = "别处有事务"
            session.commit()

            page = pull(client, world.headers, start)

            other.rollback()
    finally:
        elsewhere.dispose()

    assert [e["data"]["name"] for e in page["changes"]] == ["别处有事务"]
