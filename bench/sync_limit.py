"""The write limit of ``bench/sync.py``: the rows a push writes, inserted straight with Core.

Which rows, exactly, is read from the database rather than assumed: :func:`count_rows` before
and after a push of known size gives every table that grew and by how much per operation (the
sync op record, the field visit, the change-log entry, the audit event, and anything else the
push writes); :func:`templates` reads the rows that push wrote back through the app's own table
definitions (so the limit pays the same column types' conversions). :func:`limit` then writes
the same rows again, fresh values in every unique column, as SQLAlchemy Core ``insert()``
executemany per table, in batches of the push's size, one transaction and one durable commit per
batch, on the same database file with the app's engine settings (``core.db``: WAL,
``synchronous=FULL``, ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bench import ceiling_app
from core.db import db

SKIP = frozenset({"alembic_version", "bench_ceiling_rows"})


def _tables() -> list[sa.Table]:
    """The app's tables in dependency order (its models are imported by ``create_app``)."""
    return [t for t in db.metadata.sorted_tables if t.name not in SKIP]


def count_rows(url: str) -> dict[str, int]:
    engine = ceiling_app.make_engine(url)
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        counts = {t.name: conn.scalar(sa.select(sa.func.count()).select_from(t)) or 0
                  for t in _tables() if t.name in names}
    engine.dispose()
    return counts


@dataclass(frozen=True)
class Written:
    """What one push operation writes: rows per table (the tables in dependency order)."""

    per_op: dict[str, float]
    ops: int

    @property
    def rows_per_op(self) -> float:
        return sum(self.per_op.values())


def templates(url: str, what: Written) -> dict[str, list[dict[str, Any]]]:
    """The rows the measured push wrote, as the app's table types load them: the newest
    ``ops * rows per op`` rows of each table that grew."""
    engine = ceiling_app.make_engine(url)
    tables = {t.name: t for t in _tables()}
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for name, per_op in what.per_op.items():
            table = tables[name]
            count = max(1, round(per_op * what.ops))
            order: list[Any] = ([c.desc() for c in table.primary_key.columns]
                                or [sa.literal_column("rowid").desc()])
            rows = conn.execute(sa.select(table).order_by(*order).limit(count)).mappings().all()
            out[name] = [dict(r) for r in reversed(rows)]
    engine.dispose()
    return out


# --- fresh values in unique columns ------------------------------------------------------------

def _unique_sets(table: sa.Table) -> list[tuple[sa.Column[Any], ...]]:
    sets: list[tuple[sa.Column[Any], ...]] = []
    if table.primary_key.columns:
        sets.append(tuple(table.primary_key.columns))
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            sets.append(tuple(constraint.columns))
    sets.extend(tuple(index.columns) for index in table.indexes if index.unique)
    sets.extend((column,) for column in table.columns if column.unique)
    return sets


def _autoincrement(table: sa.Table) -> str | None:
    """The integer primary key the database assigns (left out of the inserted rows)."""
    pk = list(table.primary_key.columns)
    if len(pk) == 1 and pk[0] is table.autoincrement_column:
        return pk[0].name
    return None


def _fresh(value: Any, n: int) -> Any:
    """Another value of the same kind that no earlier row holds."""
    if isinstance(value, uuid.UUID):
        return uuid.uuid4()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return 1_000_000_000 + n
    if isinstance(value, str):
        try:
            uuid.UUID(value)
        except ValueError:
            return f"{value[:max(0, len(value) - 12)]}{n:012d}"
        return str(uuid.uuid4()) if "-" in value else uuid.uuid4().hex
    return value


@dataclass(frozen=True)
class Plan:
    """How to make a template row of one table insertable again."""

    table: sa.Table
    drop: frozenset[str]  # the autoincrement key and server defaults: the database's
    refresh: tuple[str, ...]  # one column per unique set without the key


def _plan(table: sa.Table, sample: dict[str, Any]) -> Plan:
    """Leave out what the database fills (the autoincrement key, server defaults such as the
    change log's transaction id): the path does not send them either."""
    drop = frozenset(name for name in (_autoincrement(table),
                                       *(c.name for c in table.columns
                                         if c.server_default is not None)) if name)
    refresh: list[str] = []
    for columns in _unique_sets(table):
        names = [c.name for c in columns]
        if drop & set(names) or any(n in refresh for n in names):
            continue
        # Never a foreign key (it must keep pointing at its row); a uuid-like column best.
        ranked = sorted(names, key=lambda n: (bool(table.c[n].foreign_keys),
                                              not isinstance(sample.get(n), (uuid.UUID, str))))
        refresh.append(ranked[0])
    return Plan(table, drop, tuple(refresh))


def _rows(plan: Plan, pool: list[dict[str, Any]], count: int,
          numbers: Iterator[int]) -> list[dict[str, Any]]:
    out = []
    for template in itertools.islice(itertools.cycle(pool), count):
        row = {k: v for k, v in template.items() if k not in plan.drop}
        for name in plan.refresh:
            row[name] = _fresh(row.get(name), next(numbers))
        out.append(row)
    return out


@dataclass(frozen=True)
class LimitPass:
    seconds: float
    cpu_seconds: float  # this process's CPU time: the inserts' Python and SQLite work
    operations: int
    rows: int
    batches: int

    @property
    def ops_rate(self) -> float:
        return self.operations / self.seconds

    @property
    def rows_rate(self) -> float:
        return self.rows / self.seconds


def limit(url: str, rows: dict[str, list[dict[str, Any]]], what: Written, *, operations: int,
          batch: int, start: int) -> LimitPass:
    """Insert what ``operations`` push operations write, ``batch`` operations' rows per
    transaction (one executemany per table, one durable commit), and time it. The rows are
    built before the clock starts: the limit is the database's, not Python's."""
    tables = {t.name: t for t in _tables()}
    plans = {name: _plan(tables[name], rows[name][0]) for name in what.per_op}
    numbers = itertools.count(start)
    work = []
    for at in range(0, operations, batch):
        size = min(batch, operations - at)
        work.append([(plans[name].table,
                      _rows(plans[name], rows[name], round(what.per_op[name] * size), numbers))
                     for name in tables if name in plans])
    engine = ceiling_app.make_engine(url)
    with engine.connect():  # the pool's connection opened (and configured) before the clock
        pass
    started, used = time.perf_counter(), time.process_time()
    for group in work:
        with engine.begin() as conn:
            for table, table_rows in group:
                if table_rows:  # an empty list would be one INSERT of defaults
                    conn.execute(sa.insert(table), table_rows)
    seconds, cpu = time.perf_counter() - started, time.process_time() - used
    engine.dispose()
    return LimitPass(seconds=seconds, cpu_seconds=cpu, operations=operations,
                     rows=sum(len(r) for group in work for _, r in group), batches=len(work))
