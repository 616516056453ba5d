"""The first pull of a big village stays small and set-based: 2,000 farmers with about 5,000
parcels nested fit in 400 KB of gzip, and every page costs the same number of statements.

The feed here stands in for lending's ``farmer`` feed: farmers from the farmers table, parcels
from a table this test makes (the land-parcel table belongs to another part), shaped as
docs/sync-protocol.md §4 describes (certificate, parcel code, area in mu, land class, location
in 1e-7 degrees, contract end).
"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from core.db import db, utcnow, uuid7
from core.people.models import Farmer
from sync import registry
from sync.feed import changes
from tests import factories as f

PULL = "/api/v1/sync/pull"
KIND = "t-farmer-land"
FARMERS, PARCELS = 2_000, 5_000
MAX_GZIP_BYTES = 400 * 1024

_meta = sa.MetaData()
PARCELS_TABLE = sa.Table(
    "t_feed_parcels", _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("farmer_id", sa.Integer, index=True, nullable=False),
    sa.Column("certificate", sa.String(30), nullable=False),
    sa.Column("code", sa.String(30), nullable=False),
    sa.Column("area_mu", sa.String(12), nullable=False),
    sa.Column("land_class", sa.String(20), nullable=False),
    sa.Column("lat_e7", sa.BigInteger, nullable=False),
    sa.Column("lon_e7", sa.BigInteger, nullable=False),
    sa.Column("contract_end", sa.Date, nullable=True),
)
FARMER_COLUMNS = (Farmer.id, Farmer.public_id, Farmer.name, Farmer.phone,
                  Farmer.id_number_masked, Farmer.village_id, Farmer.identity_status)


def _parcels_of(session: Any, farmer_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    rows = session.execute(sa.select(PARCELS_TABLE).where(
        PARCELS_TABLE.c.farmer_id.in_(farmer_ids)).order_by(PARCELS_TABLE.c.id))
    for r in rows:
        found.setdefault(r.farmer_id, []).append({
            "certificate": r.certificate, "code": r.code, "area_mu": r.area_mu,
            "land_class": r.land_class, "location": {"lat_e7": r.lat_e7, "lon_e7": r.lon_e7},
            "contract_end": r.contract_end})
    return found


def _present(session: Any, rows: Sequence[Any]) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    parcels = _parcels_of(session, [r.id for r in rows])
    return [(r.public_id, {"name": r.name, "phone": r.phone, "id_number": r.id_number_masked,
                           "village_id": r.village_id, "identity": r.identity_status,
                           "parcels": parcels.get(r.id, [])}) for r in rows]


def load(session: Any, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    rows = session.execute(sa.select(*FARMER_COLUMNS).where(Farmer.public_id.in_(ids))).all()
    return dict(_present(session, rows))


def snapshot(session: Any, village_ids: frozenset[int], after: uuid.UUID | None,
             limit: int) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    stmt = (sa.select(*FARMER_COLUMNS).where(Farmer.village_id.in_(sorted(village_ids)))
            .order_by(Farmer.public_id).limit(limit))
    if after is not None:
        stmt = stmt.where(Farmer.public_id > after)
    return _present(session, session.execute(stmt).all())


@pytest.fixture
def app(app: Any) -> Iterator[Any]:
    registry.of(app).feeds.clear()
    registry.register_feed(app, KIND, load, snapshot)
    with app.app_context():
        _meta.create_all(db.engine)
    yield app
    with app.app_context():
        _meta.drop_all(db.engine)


def seed(session: Any, village: Any) -> None:
    """2,000 farmers and 5,000 parcels, deterministic, inserted in bulk."""
    rnd = random.Random(12)  # noqa: S311 - deterministic test data, not a secret
    now = utcnow()
    farmer_rows = [{
        "public_id": uuid7(), "created_at": now, "name": rnd.choice("王李张刘陈杨赵黄周吴")
        + rnd.choice("建国秀英桂兰志强海燕明华丽娟") + rnd.choice("平军红霞峰梅杰芳"),
        "phone": f"13{rnd.randrange(10**9):09d}", "id_number_ciphertext": "x",
        "id_number_hash": f"{n:064x}",
        "id_number_masked": f"330521********{rnd.randrange(10**4):04d}",
        "birth_date": date(1960 + n % 40, 1 + n % 12, 1 + n % 28), "village_id": village.id,
        "is_active": True, "identity_status": "verified", "language": "zh_CN",
    } for n in range(FARMERS)]
    session.execute(sa.insert(Farmer), farmer_rows)
    ids = session.scalars(sa.select(Farmer.id).where(Farmer.village_id == village.id)
                          .order_by(Farmer.id)).all()
    parcel_rows = []
    for n in range(PARCELS):
        owner = ids[n * FARMERS // PARCELS]
        parcel_rows.append({
            "farmer_id": owner, "certificate": f"浙(2021)德清县不动产权第{owner:07d}号",
            "code": f"330521-{owner % 1000:03d}-{owner:04d}-{n % 3 + 1:02d}",
            "area_mu": f"{rnd.randrange(50, 1500) / 100:.2f}",
            "land_class": rnd.choice(["paddy", "dry", "orchard"]),
            "lat_e7": 305000000 + rnd.randrange(2_000_000),
            "lon_e7": 1199000000 + rnd.randrange(2_000_000),
            "contract_end": date(2028, 12, 31) + timedelta(days=365 * (n % 3)),
        })
    session.execute(sa.insert(PARCELS_TABLE), parcel_rows)


def initial_pull(client: Any, headers: dict[str, str], limit: int | None = None
                 ) -> tuple[int, int, list[dict[str, Any]]]:
    """Every page of a first pull, gzip accepted: bytes as sent, pages, and the changes."""
    sent, pages, got, cursor = 0, 0, [], None
    while True:
        query = {k: v for k, v in {"cursor": cursor, "limit": limit}.items() if v}
        response = client.get(PULL, query_string=query,
                              headers={**headers, "Accept-Encoding": "gzip"})
        assert response.status_code == 200
        raw = response.get_data()
        sent, pages = sent + len(raw), pages + 1
        body = json.loads(gzip.decompress(raw) if response.content_encoding == "gzip" else raw)
        got.extend(body["changes"])
        cursor = body["cursor"]
        if not body["has_more"]:
            return sent, pages, got


@pytest.fixture
def village_headers(session: Any) -> dict[str, str]:
    village = f.village(session)
    coordinator = f.coordinator(session, f.station(session, [village]))
    headers, _device = f.device_headers(session, coordinator)
    seed(session, village)
    session.commit()
    return headers


def test_the_first_pull_of_a_big_village_fits_in_400_kb_of_gzip(
        client: Any, village_headers: dict[str, str]) -> None:
    sent, pages, got = initial_pull(client, village_headers)

    assert len(got) == FARMERS
    assert sum(len(e["data"]["parcels"]) for e in got) == PARCELS
    assert pages == 5  # four of 500, then the end of the snapshot
    assert sent <= MAX_GZIP_BYTES, sent


def test_a_page_costs_the_same_statements_whatever_its_size(
        app: Any, client: Any, session: Any, village_headers: dict[str, str]) -> None:
    _sent, _pages, got = initial_pull(client, village_headers, limit=1000)  # warms up too
    cursor = _last_cursor(client, village_headers)
    session.execute(sa.insert(changes.CHANGES), [
        changes.row(KIND, uuid.UUID(e["id"]), e["data"]["village_id"]) for e in got])
    session.commit()

    snapshot_counts = {limit: statements(app, client, village_headers, {"limit": limit})
                       for limit in (10, 100, 1000)}
    feed_counts = {limit: statements(app, client, village_headers,
                                     {"limit": limit, "cursor": cursor})
                   for limit in (10, 100, 1000)}

    assert len(set(snapshot_counts.values())) == 1, snapshot_counts
    assert len(set(feed_counts.values())) == 1, feed_counts


def _last_cursor(client: Any, headers: dict[str, str]) -> str:
    cursor = None
    while True:
        query = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        body = client.get(PULL, query_string=query, headers=headers).get_json()
        cursor = body["cursor"]
        if not body["has_more"]:
            return cursor


def statements(app: Any, client: Any, headers: dict[str, str], query: dict[str, Any]) -> int:
    """The SQL statements one pull runs, its page being full."""
    seen = [0]

    def count(*_args: Any) -> None:
        seen[0] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(PULL, query_string=query, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(response.get_json()["changes"]) == query["limit"]
    return seen[0]
