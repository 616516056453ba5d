"""Portfolio at risk: the daily job's snapshot per village, and its roll-up to stations and
counties.

PAR30 is the outstanding principal of loans more than 30 days past due over all outstanding
principal, of the active loans, as the daily job aged them on the snapshot's business date.
Amounts are integer fen; the ratio is given in basis points (rounded down) and as a number.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from core.authz import Principal, village_condition
from core.db import DbSession, table, utcnow
from core.places.models import County, Station, Township, Village, station_villages
from lending.servicing.daily_models import PortfolioSnapshot
from lending.servicing.models import ACTIVE, Loan

LEVELS = ("village", "station", "county")
LOANS, SNAPSHOTS = table(Loan), table(PortfolioSnapshot)
BUCKET_COLUMNS = {"current": "current_fen", "1-30": "dpd_1_30_fen", "31-60": "dpd_31_60_fen",
                  "61-90": "dpd_61_90_fen", "90+": "dpd_90_plus_fen"}
AMOUNTS = ("outstanding_fen", *BUCKET_COLUMNS.values(), "par30_fen")


def _principal_where(condition: Any) -> Any:
    return sa.func.sum(sa.case((condition, LOANS.c.principal_outstanding_fen), else_=0))


def snapshot(session: DbSession, on: date) -> int:
    """Replace the snapshot of ``on`` with the active loans as they stand; returns how many
    loans it counts."""
    session.execute(sa.delete(SNAPSHOTS).where(SNAPSHOTS.c.business_date == on))
    rows = (sa.select(sa.literal(on), LOANS.c.village_id, sa.func.count(),
                      sa.func.sum(LOANS.c.principal_outstanding_fen),
                      *(_principal_where(LOANS.c.bucket == bucket) for bucket in BUCKET_COLUMNS),
                      _principal_where(LOANS.c.dpd > 30), sa.literal(utcnow()))
            .where(LOANS.c.status == ACTIVE).group_by(LOANS.c.village_id))
    session.execute(sa.insert(SNAPSHOTS).from_select(
        ["business_date", "village_id", "loans", *AMOUNTS, "created_at"], rows))
    total = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(SNAPSHOTS.c.loans), 0))
                           .where(SNAPSHOTS.c.business_date == on))
    return int(total or 0)


def latest_date(session: DbSession, through: date) -> date | None:
    """The newest snapshot's business date on or before ``through``."""
    return session.scalar(sa.select(sa.func.max(SNAPSHOTS.c.business_date))
                          .where(SNAPSHOTS.c.business_date <= through))


def _groups(level: str) -> tuple[list[Any], list[Any], Any]:
    """The columns naming a group at ``level`` (id, code, name), those it is grouped by, and
    the FROM clause joining snapshots to it."""
    villages = SNAPSHOTS.join(Village, Village.id == SNAPSHOTS.c.village_id)
    if level == "village":
        keys = [Village.public_id, Village.code, Village.name]
        return keys, keys, villages
    if level == "station":
        joined = (SNAPSHOTS.join(station_villages,
                                 station_villages.c.village_id == SNAPSHOTS.c.village_id)
                  .join(Station, Station.id == station_villages.c.station_id))
        return ([Station.public_id, sa.null().label("code"), Station.name],
                [Station.public_id, Station.name], joined)
    joined = (villages.join(Township, Township.id == Village.township_id)
              .join(County, County.id == Township.county_id))
    keys = [County.public_id, County.code, County.name]
    return keys, keys, joined


def _figures(row: Any) -> dict[str, Any]:
    amounts = {name: int(getattr(row, name) or 0) for name in AMOUNTS}
    outstanding, par30 = amounts["outstanding_fen"], amounts["par30_fen"]
    return {"loans": int(row.loans or 0), "outstanding_fen": outstanding,
            "buckets": {bucket: amounts[column] for bucket, column in BUCKET_COLUMNS.items()},
            "par30_fen": par30,
            "par30_bp": par30 * 10_000 // outstanding if outstanding else 0,
            "par30_ratio": round(par30 / outstanding, 4) if outstanding else 0.0}


def par(session: DbSession, principal: Principal, level: str, on: date) -> dict[str, Any]:
    """PAR30 at ``level`` from the snapshot of ``on``, over the villages ``principal`` sees."""
    keys, grouped, joined = _groups(level)
    sums = [sa.func.sum(SNAPSHOTS.c.loans).label("loans"),
            *(sa.func.sum(SNAPSHOTS.c[name]).label(name) for name in AMOUNTS)]
    scope = sa.and_(SNAPSHOTS.c.business_date == on,
                    village_condition(SNAPSHOTS.c.village_id, principal))
    rows = session.execute(sa.select(*keys, *sums).select_from(joined).where(scope)
                           .group_by(*grouped).order_by(keys[2], keys[0])).all()
    total = session.execute(sa.select(*sums).where(scope)).one()
    return {"business_date": on, "level": level, "total": _figures(total),
            "rows": [{"id": row[0], "code": row[1], "name": row[2], **_figures(row)}
                     for row in rows]}
