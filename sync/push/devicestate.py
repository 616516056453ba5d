"""A device's sync row: made on first use, read for a replay, locked for a push.

Two pushes of one device never interleave: on SQLite the write transaction holds the database's
write lock; on PostgreSQL the push locks the device's row (``SELECT … FOR UPDATE``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.auth.models import Device
from core.db import DbSession, table, utcnow, uuid7
from sync.push.models import SyncDevice

STATE = table(SyncDevice)
DEVICES = table(Device)


def _upsert(session: DbSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert(STATE) if dialect == "postgresql" else sqlite.insert(STATE))


def _fresh(device_id: int, now: datetime) -> dict[str, Any]:
    return {"device_id": device_id, "acked_seq": 0, "final_ahead": [], "flags": {},
            "public_id": uuid7(), "created_at": now}


def ensure(session: DbSession, device_id: int) -> None:
    """Make the device's row if it has none (a no-op when it exists, even concurrently)."""
    stmt = _upsert(session).values(_fresh(device_id, utcnow()))
    session.execute(stmt.on_conflict_do_nothing(index_elements=["device_id"]))


_READ = (sa.select(STATE, DEVICES.c.public_id.label("device_public_id"))
         .join(DEVICES, DEVICES.c.id == STATE.c.device_id)
         .where(STATE.c.device_id == sa.bindparam("device_id")))


def read(session: DbSession, device_id: int) -> Any:
    """The device's row (with ``device_public_id``), or None before its first sync."""
    return session.execute(_READ, {"device_id": device_id}).first()


def lock(session: DbSession, device_id: int, *, exists: bool = False) -> Any:
    """The device's row, made if need be (unless it is known to ``exists``) and locked until
    the transaction ends."""
    if not exists:
        ensure(session, device_id)
    return session.execute(_READ.with_for_update(of=STATE), {"device_id": device_id}).one()


def note_pull(session: DbSession, device_id: int, cursor: str) -> None:
    """Record a pull: its time and the cursor it served (the feed calls this on each pull)."""
    now = utcnow()
    stmt = _upsert(session).values({**_fresh(device_id, now), "cursor": cursor,
                                    "last_pull_at": now})
    session.execute(stmt.on_conflict_do_update(
        index_elements=["device_id"], set_={"cursor": cursor, "last_pull_at": now}))


def save(session: DbSession, device_id: int, values: dict[str, Any]) -> None:
    session.execute(sa.update(STATE).where(STATE.c.device_id == device_id).values(values))
