"""Count what code does at the database: statements, transactions and durable commits.

Listens to SQLAlchemy engine events, so it sees the request's ORM session, side transactions
and Core statements alike. A *durable* commit is the commit of a transaction that wrote (an
INSERT, UPDATE or DELETE ran in it): the one that waits for the disk (an fsync of SQLite's WAL,
PostgreSQL's WAL flush). Transaction control (``BEGIN IMMEDIATE`` on SQLite) is not counted as
a statement, so the figures compare across backends.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

_VERB = re.compile(r"^\s*(\w+)")
_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE|JOIN)\s+"?(\w+)"?', re.IGNORECASE)
_CALL = re.compile(r"^\s*SELECT\s+(\w+)\s*\(", re.IGNORECASE)  # SELECT pg_advisory_lock(...)
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE"})
_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"})
_WROTE = "bench_sqlcount_wrote"


def shape(statement: str) -> str:
    """``"SELECT farmers"``: the verb and the first table (or the function a table-less SELECT
    calls), enough to read a profile by."""
    verb = _VERB.match(statement)
    target = _TABLE.search(statement) or _CALL.match(statement)
    return " ".join(part for part in ((verb.group(1).upper() if verb else "?"),
                                      target.group(1) if target else "") if part)


@dataclass
class Tally:
    statements: int = 0
    transactions: int = 0
    durable_commits: int = 0
    checkouts: int = 0  # connections taken from the pool (on PostgreSQL each is pre-pinged)
    shapes: Counter[str] = field(default_factory=Counter)


class SqlCounter:
    """Attach to an engine; :meth:`measure` tallies what one block of code does."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.tally = Tally()
        self._listeners: list[tuple[str, Callable[..., None]]] = [
            ("before_cursor_execute", self._on_execute), ("begin", self._on_begin),
            ("commit", self._on_commit), ("rollback", self._on_rollback),
            ("checkout", self._on_checkout)]
        for name, listener in self._listeners:
            event.listen(engine, name, listener)

    def close(self) -> None:
        for name, listener in self._listeners:
            event.remove(self.engine, name, listener)

    @contextmanager
    def measure(self) -> Iterator[Tally]:
        self.tally = Tally()
        yield self.tally

    def _on_execute(self, conn: sa.Connection, _cursor: Any, statement: str,
                    *_args: Any) -> None:
        kind = shape(statement)
        verb = kind.split(" ", 1)[0]
        if verb in _CONTROL:
            return
        self.tally.statements += 1
        self.tally.shapes[kind] += 1
        if verb in _WRITES:
            conn.info[_WROTE] = True

    def _on_begin(self, _conn: sa.Connection) -> None:
        self.tally.transactions += 1

    def _on_commit(self, conn: sa.Connection) -> None:
        if conn.info.pop(_WROTE, False):
            self.tally.durable_commits += 1

    def _on_rollback(self, conn: sa.Connection) -> None:
        conn.info.pop(_WROTE, None)

    def _on_checkout(self, *_args: Any) -> None:
        self.tally.checkouts += 1
