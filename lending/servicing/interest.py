"""Daily interest, in one place: the day-count conventions and the whole-fen arithmetic that
both the daily job's set-based SQL and a single loan's accrual (a settlement to the day) use.

A day adds ``principal * annual_rate_bp * weight`` to a numerator over
``basis * 10,000``; whole fen are booked and the remainder (``carry``) waits for the next day,
so no fraction of a fen is ever lost or invented, and a loan accrued day by day and a loan
accrued over the same days at once book the same total.

- ``ACT/360`` (the default; RMB practice): every calendar day has weight 1, basis 360.
- ``ACT/365``: every calendar day has weight 1, basis 365 (also in leap years).
- ``30/360``: every month counts 30 days: the 31st has weight 0, and the last day of February
  has weight 30 - its day (3 on 28 February, 2 on 29 February), basis 360.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

BASIS = {"ACT/360": 360, "ACT/365": 365, "30/360": 360}
SCALE = 10_000  # the rate is in basis points


def weight(day_count: str, day: date) -> int:
    """How many days' interest ``day`` counts under ``day_count``."""
    if day_count != "30/360":
        return 1
    if day.day == 31:
        return 0
    if day.month == 2 and day.day == calendar.monthrange(day.year, 2)[1]:
        return 30 - day.day + 1
    return 1


def denominator(day_count: str) -> int:
    return BASIS[day_count] * SCALE


def days_weight(day_count: str, after: date, through: date) -> int:
    """The summed weight of the days in ``(after, through]``."""
    total, day = 0, after + timedelta(days=1)
    while day <= through:
        total += weight(day_count, day)
        day += timedelta(days=1)
    return total


def accrue(principal_fen: int, rate_bp: int, day_count: str, carry: int,
           weight_days: int) -> tuple[int, int]:
    """Whole fen of interest for ``weight_days`` and the new carry."""
    numerator = carry + principal_fen * rate_bp * weight_days
    return divmod(numerator, denominator(day_count))
