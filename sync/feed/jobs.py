"""Retention of the change log: rows older than ``NONGDAI_SYNC_FEED_RETENTION_DAYS`` go, a
chunk per transaction, oldest position first.

Only a prefix of the feed is deleted (in ``(txid, seq)`` order, below the safe bound, up to the
first row still young), and the last position deleted is kept as the horizon in the same
transaction: a cursor below it might have missed a deleted row, so the pull answers it 412
``resync-required``, never a silent gap. Idempotent: a second run the same day finds nothing
older than the cut-off.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app

from core.db import DbSession, db, rowcount, utcnow
from core.jobs import DEFAULT_CHUNK, Job, JobRun, register
from sync.feed import changes
from sync.feed.changes import CHANGES, HORIZON, HORIZON_ROW, Position

NAME = "sync.feed_retention"


def purge_changes(job_run: JobRun) -> None:
    days = int(current_app.config["NONGDAI_SYNC_FEED_RETENTION_DAYS"])
    cutoff = utcnow() - timedelta(days=days)
    while purge_chunk(db.session, cutoff):
        job_run.commit()


def purge_chunk(session: DbSession, cutoff: datetime, size: int = DEFAULT_CHUNK) -> bool:
    """Delete up to ``size`` rows of the oldest prefix changed before ``cutoff`` and move the
    horizon to the last one. Whether a next chunk may find more."""
    bound = changes.safe_bound(session)
    rows = session.execute(
        sa.select(CHANGES.c.txid, CHANGES.c.seq, CHANGES.c.changed_at)
        .where(changes.position_column() <= bound)
        .order_by(CHANGES.c.txid, CHANGES.c.seq).limit(size)).all()
    old = []
    for r in rows:
        if r.changed_at >= cutoff:
            break
        old.append(r)
    if not old:
        return False
    session.execute(sa.delete(CHANGES).where(CHANGES.c.seq.in_([r.seq for r in old])))
    _move_horizon(session, (int(old[-1].txid), int(old[-1].seq)))
    return len(old) == size  # a young row, or the end of the feed, ends the prefix


def _move_horizon(session: DbSession, position: Position) -> None:
    if changes.horizon(session) >= position:
        return
    values = {"txid": position[0], "seq": position[1], "updated_at": utcnow()}
    updated = session.execute(sa.update(HORIZON).where(HORIZON.c.id == HORIZON_ROW)
                              .values(**values))
    if not rowcount(updated):
        session.execute(sa.insert(HORIZON).values(id=HORIZON_ROW, **values))


def init_app(app: Flask) -> None:
    register(app, Job(NAME, purge_changes, {"days": 1}))
