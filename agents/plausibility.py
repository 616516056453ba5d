"""Plausibility checks on what a coordinator recorded: each finding is a flag, never a refusal.

The device may be right and the registry wrong, or the phone's clock may be off: staff judge.
So a check only names what looks wrong (``gps-far-from-parcel``, ``impossible-travel``,
``before-assignment``) with the figures that made it look so; the visit is kept either way.

Pure functions on plain values (no database): the handlers load what they compare in a few
set-based queries per batch and call these per operation.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

GPS_FAR: Final = "gps-far-from-parcel"
IMPOSSIBLE_TRAVEL: Final = "impossible-travel"
BEFORE_ASSIGNMENT: Final = "before-assignment"

EARTH_RADIUS_M: Final = 6_371_008.8  # mean radius (IUGG)
E7: Final = 10_000_000


def distance_m(lat1_e7: int, lon1_e7: int, lat2_e7: int, lon2_e7: int) -> float:
    """Great-circle distance in metres between two points given in 1e-7 degrees (haversine)."""
    lat1, lat2 = math.radians(lat1_e7 / E7), math.radians(lat2_e7 / E7)
    dlat = lat2 - lat1
    dlon = math.radians((lon2_e7 - lon1_e7) / E7)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Fix:
    """Where and when (device clock) a coordinator was."""

    at: datetime
    lat_e7: int
    lon_e7: int
    accuracy_m: int = 0


def far_from_parcel(fix: Fix, parcel: tuple[int, int] | None,
                    limit_m: int) -> dict[str, Any] | None:
    """``gps-far-from-parcel`` when the fix lies farther from the registry's location of the
    parcel than ``limit_m`` plus the fix's own accuracy (a vague fix is not held against it)."""
    if parcel is None:
        return None
    metres = distance_m(fix.lat_e7, fix.lon_e7, parcel[0], parcel[1])
    if metres <= limit_m + fix.accuracy_m:
        return None
    return {"code": GPS_FAR, "distance_m": round(metres), "limit_m": limit_m + fix.accuracy_m}


def travel(a: Fix, b: Fix, limit_kmh: int) -> dict[str, Any] | None:
    """``impossible-travel`` when going from ``a`` to ``b`` (either order in time) needs more
    than ``limit_kmh``. Both accuracies are given the benefit of the doubt; two fixes at the
    same recorded second count as impossible only if they are apart beyond their accuracies."""
    metres = distance_m(a.lat_e7, a.lon_e7, b.lat_e7, b.lon_e7)
    apart = max(0.0, metres - a.accuracy_m - b.accuracy_m)
    if apart == 0:
        return None
    seconds = abs((b.at - a.at).total_seconds())
    kmh = math.inf if seconds == 0 else apart / 1000 / (seconds / 3600)
    if kmh <= limit_kmh:
        return None
    return {"code": IMPOSSIBLE_TRAVEL, "distance_m": round(metres),
            "seconds": round(seconds), "speed_kmh": None if math.isinf(kmh) else round(kmh),
            "limit_kmh": limit_kmh}


def before_assignment(recorded_at: datetime, assignment_created: datetime | None,
                      tolerance: timedelta) -> dict[str, Any] | None:
    """``before-assignment`` when the visit's recorded time is earlier than its assignment's
    creation by more than the clock tolerance (a phone a minute slow is not a finding)."""
    if assignment_created is None or recorded_at >= assignment_created - tolerance:
        return None
    return {"code": BEFORE_ASSIGNMENT, "assignment_created_at": assignment_created.isoformat()}


@dataclass
class Timeline:
    """One coordinator's located visits ordered by recorded time: the stored ones around a
    batch (loaded once) plus the batch's own as they are applied."""

    fixes: list[Fix] = field(default_factory=list)
    keys: list[datetime] = field(init=False)

    def __post_init__(self) -> None:
        self.fixes.sort(key=lambda fix: fix.at)
        self.keys = [fix.at for fix in self.fixes]

    def neighbours(self, fix: Fix) -> list[Fix]:
        """The visits just before and just after ``fix`` by recorded time."""
        left = bisect.bisect_left(self.keys, fix.at)
        right = bisect.bisect_right(self.keys, fix.at)
        around = self.fixes[left:right]  # same recorded time
        if left > 0:
            around.append(self.fixes[left - 1])
        if right < len(self.fixes):
            around.append(self.fixes[right])
        return around

    def add(self, fix: Fix) -> None:
        at = bisect.bisect_right(self.keys, fix.at)
        self.keys.insert(at, fix.at)
        self.fixes.insert(at, fix)

    def impossible(self, fix: Fix, limit_kmh: int) -> dict[str, Any] | None:
        """The worst impossible travel between ``fix`` and its neighbours, if any."""
        found = [flag for other in self.neighbours(fix)
                 if (flag := travel(other, fix, limit_kmh)) is not None]
        if not found:
            return None
        return max(found, key=lambda flag: flag["speed_kmh"] or math.inf)
