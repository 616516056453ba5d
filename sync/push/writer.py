"""Writing operations' units: many at once (one executemany per table), or one by one.

The fast path writes a group of units inside one savepoint; a group that fails (an integrity
error of one row) is rolled back and written again unit by unit, each in its own savepoint, so
that one bad operation fails alone (see ``sync.push.engine``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from core.db import DbSession, table
from core.lifecycle import note_audit_event
from sync.push.context import AUDIT, Unit
from sync.push.models import SyncOp

OPS = table(SyncOp)


def write(session: DbSession, units: Sequence[Unit]) -> None:
    """Insert the units' rows: per table (and set of columns) one executemany, tables in the
    order they first appear, then every unit's ``sync_ops`` row in one executemany."""
    groups: dict[tuple[sa.Table, frozenset[str]], list[dict[str, Any]]] = {}
    audits = 0
    for unit in units:
        for target, row in unit.rows:
            groups.setdefault((target, frozenset(row)), []).append(row)
            audits += target is AUDIT
    for (target, _columns), rows in groups.items():
        session.execute(sa.insert(target), rows)
    records = [unit.record for unit in units if unit.record]
    if records:
        session.execute(sa.insert(OPS), records)
    for _ in range(audits):
        note_audit_event(session)
