"""Portable SQL pieces the daily job's set-based statements need (SQLite and PostgreSQL).

- :class:`epoch_day`: a date as whole days since 2000-01-01 (``julianday`` on SQLite, date
  subtraction on PostgreSQL), so ``epoch_day(b) - epoch_day(a)`` is ``(b - a).days``.
- :class:`day360`: a date's position on the 30/360 calendar (see :func:`day360_of`), so the
  difference of two is the summed 30/360 weight of the days between them
  (:func:`lending.servicing.interest.days_weight`).
- :class:`add_days`: a date plus a whole number of days.
- :class:`new_public_id`: a UUIDv7 per row (the millisecond prefix given by Python, the random
  tail drawn per row), for rows inserted with ``INSERT ... SELECT``.
"""

from __future__ import annotations

import calendar
import time
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

EPOCH = date(2000, 1, 1)


def epoch_day_of(day: date) -> int:
    return (day - EPOCH).days


def day360_of(day: date) -> int:
    """360 per year, 30 per month; the 31st and the last day of February count as the 30th."""
    last_feb = day.month == 2 and day.day == calendar.monthrange(day.year, 2)[1]
    dd = 30 if day.day == 31 or last_feb else day.day
    return 360 * day.year + 30 * (day.month - 1) + dd


class epoch_day(FunctionElement[int]):  # noqa: N801 - an SQL function, named as one
    type = sa.Integer()
    inherit_cache = True


@compiles(epoch_day)
def _epoch_day_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(next(iter(element.clauses)), **kw)
    return f"CAST(julianday({arg}) - 2451544.5 AS INTEGER)"


@compiles(epoch_day, "postgresql")
def _epoch_day_pg(element: Any, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(next(iter(element.clauses)), **kw)
    return f"(CAST({arg} AS DATE) - DATE '2000-01-01')"


class day360(FunctionElement[int]):  # noqa: N801 - an SQL function, named as one
    type = sa.Integer()
    inherit_cache = True


@compiles(day360)
def _day360_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    d = compiler.process(next(iter(element.clauses)), **kw)
    return (f"(360 * CAST(strftime('%Y', {d}) AS INTEGER)"
            f" + 30 * (CAST(strftime('%m', {d}) AS INTEGER) - 1)"
            f" + CASE WHEN strftime('%d', {d}) = '31' OR (strftime('%m', {d}) = '02'"
            f" AND strftime('%m', date({d}, '+1 day')) = '03') THEN 30"
            f" ELSE CAST(strftime('%d', {d}) AS INTEGER) END)")


@compiles(day360, "postgresql")
def _day360_pg(element: Any, compiler: Any, **kw: Any) -> str:
    d = compiler.process(next(iter(element.clauses)), **kw)
    return (f"(360 * CAST(EXTRACT(YEAR FROM {d}) AS INTEGER)"
            f" + 30 * (CAST(EXTRACT(MONTH FROM {d}) AS INTEGER) - 1)"
            f" + CASE WHEN EXTRACT(DAY FROM {d}) = 31 OR (EXTRACT(MONTH FROM {d}) = 2"
            f" AND EXTRACT(MONTH FROM CAST({d} AS DATE) + 1) = 3) THEN 30"
            f" ELSE CAST(EXTRACT(DAY FROM {d}) AS INTEGER) END)")


class add_days(FunctionElement[date]):  # noqa: N801 - an SQL function, named as one
    type = sa.Date()
    inherit_cache = True


@compiles(add_days)
def _add_days_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    d, n = (compiler.process(c, **kw) for c in element.clauses)
    return f"date({d}, printf('%+d days', {n}))"


@compiles(add_days, "postgresql")
def _add_days_pg(element: Any, compiler: Any, **kw: Any) -> str:
    d, n = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({d} AS DATE) + CAST({n} AS INTEGER))"


class new_public_id(FunctionElement[Any]):  # noqa: N801 - an SQL function, named as one
    """A UUIDv7 per row: ``new_public_id(sa.literal(millis_hex()))``."""

    type = sa.Uuid()
    inherit_cache = True


@compiles(new_public_id)
def _uuid_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    prefix = compiler.process(next(iter(element.clauses)), **kw)
    return (f"({prefix} || '7' || substr(lower(hex(randomblob(2))), 1, 3)"
            f" || substr('89ab', 1 + abs(random() % 4), 1)"
            f" || substr(lower(hex(randomblob(8))), 1, 15))")


@compiles(new_public_id, "postgresql")
def _uuid_pg(element: Any, compiler: Any, **kw: Any) -> str:
    prefix = compiler.process(next(iter(element.clauses)), **kw)
    return (f"CAST(({prefix} || '7' || substr(md5(random()::text), 1, 3)"
            f" || substr('89ab', 1 + floor(random() * 4)::int, 1)"
            f" || substr(md5(random()::text), 1, 15)) AS UUID)")


def millis_hex() -> str:
    """The 48-bit Unix-millisecond prefix of a UUIDv7, as 12 hex digits."""
    return f"{(time.time_ns() // 1_000_000) & ((1 << 48) - 1):012x}"


def yuan_text(fen: Any) -> Any:
    """``fen`` (a non-negative integer expression) as yuan text with two decimals."""
    cents = fen % 100
    return (sa.cast(fen // 100, sa.String)
            + sa.literal(".")
            + sa.case((cents < 10, sa.literal("0")), else_=sa.literal(""))
            + sa.cast(cents, sa.String))


__all__ = ["add_days", "day360", "day360_of", "epoch_day", "epoch_day_of", "millis_hex",
           "new_public_id", "yuan_text"]
