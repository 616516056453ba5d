"""Portfolio at risk: the daily snapshot per village, rolled up to stations and counties, over
HTTP, scoped to what the caller sees."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from lending.servicing.daily_models import PortfolioSnapshot
from tests import factories as f
from tests.servicing import world as w
from tests.servicing.daily_helpers import loan, run

ON = date(2027, 3, 15)
URL = f"{w.API}/portfolio/par"


@pytest.fixture(autouse=True)
def _today(app: Any) -> None:
    app.config["NONGDAI_BUSINESS_DATE"] = ON.isoformat()


def _seed(session: Any) -> w.World:
    """Village A: 1,000,000 fen 40 days past due, 500,000 current; village B: 2,000,000 fen
    10 days past due."""
    world = w.build(session)
    loan(session, world, principal_fen=1_000_000, schedule=[(date(2027, 2, 3), 1_000_000, 0)])
    loan(session, world, principal_fen=500_000)
    loan(session, world, principal_fen=2_000_000, village=world.other_village,
         schedule=[(date(2027, 3, 5), 2_000_000, 0)])
    run(session, ON)
    return world


def _get(client: Any, session: Any, who: Any, **query: str) -> Any:
    return client.get(URL, query_string=query, headers=f.auth_headers(session, who))


def test_par_per_village(client: Any, session: Any) -> None:
    world = _seed(session)
    response = _get(client, session, world.reviewer, level="village")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["business_date"] == ON.isoformat()
    assert body["level"] == "village"
    rows = {r["id"]: r for r in body["rows"]}
    a, b = rows[str(world.village.public_id)], rows[str(world.other_village.public_id)]
    assert (a["loans"], a["outstanding_fen"], a["par30_fen"]) == (2, 1_500_000, 1_000_000)
    assert a["buckets"] == {"current": 500_000, "1-30": 0, "31-60": 1_000_000, "61-90": 0,
                            "90+": 0}
    assert (a["par30_bp"], a["par30_ratio"]) == (6666, 0.6667)
    assert (b["loans"], b["par30_fen"], b["buckets"]["1-30"]) == (1, 0, 2_000_000)
    assert body["total"]["outstanding_fen"] == 3_500_000
    assert body["total"]["par30_fen"] == 1_000_000
    assert body["total"]["par30_bp"] == 2857


def test_par_per_station_and_county(client: Any, session: Any) -> None:
    world = _seed(session)
    stations = _get(client, session, world.approver, level="station").json["rows"]
    assert sorted((r["loans"], r["par30_fen"]) for r in stations) == [(1, 0), (2, 1_000_000)]
    county = _get(client, session, world.approver, level="county").json["rows"]
    assert [(r["code"], r["loans"], r["outstanding_fen"], r["par30_fen"]) for r in county] == [
        (w.COUNTY, 3, 3_500_000, 1_000_000)]


def test_a_coordinator_sees_the_villages_of_their_station(client: Any, session: Any) -> None:
    world = _seed(session)
    body = _get(client, session, world.coordinator, level="county").json
    assert body["total"]["loans"] == 2
    assert body["total"]["par30_fen"] == 1_000_000
    rows = _get(client, session, world.coordinator, level="village").json["rows"]
    assert [r["id"] for r in rows] == [str(world.village.public_id)]


def test_a_farmer_may_not_read_the_portfolio(client: Any, session: Any) -> None:
    world = _seed(session)
    farmer = w.farmer(session, world)
    assert _get(client, session, farmer).status_code == 403


def test_snapshots_by_date_and_rerun(client: Any, session: Any, app: Any) -> None:
    world = _seed(session)
    run(session, ON)  # replaced, not doubled
    assert session.scalar(sa.select(sa.func.count()).select_from(PortfolioSnapshot)) == 2
    run(session, date(2027, 3, 20))
    app.config["NONGDAI_BUSINESS_DATE"] = "2027-03-25"
    latest = _get(client, session, world.reviewer).json
    assert latest["business_date"] == "2027-03-20"
    older = _get(client, session, world.reviewer, date=ON.isoformat()).json
    assert older["business_date"] == ON.isoformat()
    assert older["total"]["par30_fen"] == 1_000_000
    none = _get(client, session, world.reviewer, date="2027-01-01").json
    assert none["rows"] == []
    assert none["total"]["loans"] == 0
    assert _get(client, session, world.reviewer, level="planet").status_code == 422


def test_no_snapshot_yet(client: Any, session: Any) -> None:
    world = w.build(session)
    body = _get(client, session, world.reviewer).json
    assert body["business_date"] is None
    assert body["rows"] == []
