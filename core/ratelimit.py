"""Fixed-window rate limits kept in the database, so every worker process shares them.

``hit(bucket, limit, window_seconds)`` counts one request in the current window with an atomic
upsert on its own connection (:func:`core.db.side_transaction`), so the count survives the
request failing; past the limit it raises :class:`core.errors.RateLimited` with Retry-After.
:func:`failures` rations failures instead of attempts (wrong passwords of one account, answers
that would confirm an ID number). Buckets never hold a phone number or a username in the clear:
build them with :func:`key`.

Like every side transaction, a count runs while the request's own session holds no transaction:
at the start of a view, or (``failures``) after the failed work has been rolled back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from core import security
from core.db import Base, IntPK, UTCDateTime, db, rowcount, side_transaction, table, utcnow
from core.errors import RateLimited
from core.i18n import _
from core.jobs import Job, JobRun, register
from core.lifecycle import rollback

_KEY_PURPOSE = "nongdai/rate-limit-bucket/v1"


class RateLimitCounter(Base):
    __tablename__ = "rate_limit_counters"
    __table_args__ = (sa.UniqueConstraint("bucket", "window_start"),)

    id: Mapped[IntPK]
    bucket: Mapped[str] = mapped_column(sa.String(120))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    count: Mapped[int] = mapped_column(default=0)


def key(scope: str, value: str) -> str:
    """``scope:<keyed hash of value>``, e.g. ``key("otp.phone", "13800001111")``."""
    secret = security.derive_key(str(current_app.config["SECRET_KEY"]).encode(), _KEY_PURPOSE)
    return f"{scope}:{security.keyed_hash(secret, value)[:40]}"


def _window(now: datetime, seconds: int) -> datetime:
    start = math.floor(now.timestamp() / seconds) * seconds
    return datetime.fromtimestamp(start, UTC)


def _upsert(bucket: str, start: datetime, end: datetime) -> sa.Executable:
    counters = table(RateLimitCounter)
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(counters).values(bucket=bucket, window_start=start, expires_at=end, count=1)
    return stmt.on_conflict_do_update(
        index_elements=[counters.c.bucket, counters.c.window_start],
        set_={"count": counters.c.count + 1},
    ).returning(counters.c.count)


def hit(bucket: str, limit: int, window_seconds: int) -> int:
    """Count one hit; raise ``RateLimited`` once more than ``limit`` fall in the window."""
    now = utcnow()
    start = _window(now, window_seconds)
    end = start + timedelta(seconds=window_seconds)
    with side_transaction() as conn:
        count = int(conn.execute(_upsert(bucket, start, end)).scalar_one())
    if count > limit:
        raise RateLimited(_("Too many attempts; try again later"),
                          retry_after=_retry_after(end, now))
    return count


def _retry_after(end: datetime, now: datetime) -> int:
    return math.ceil((end - now).total_seconds())


def check(bucket: str, limit: int, window_seconds: int) -> None:
    """Refuse (429) when ``bucket`` already holds ``limit`` hits in this window; count nothing."""
    now = utcnow()
    start = _window(now, window_seconds)
    counters = table(RateLimitCounter)
    with side_transaction() as conn:
        count = conn.scalar(sa.select(counters.c.count).where(
            counters.c.bucket == bucket, counters.c.window_start == start)) or 0
    if count >= limit:
        end = start + timedelta(seconds=window_seconds)
        raise RateLimited(_("Too many attempts; try again later"),
                          retry_after=_retry_after(end, now))


@contextmanager
def failures(bucket: str, limit: int, window_seconds: int, *counted: type[Exception],
             check_first: bool = True) -> Iterator[None]:
    """Ration the failures of a block: an exception of a ``counted`` type counts one hit.

    With ``check_first`` a caller whose failures already reached ``limit`` is refused (429)
    before the block runs, so it must start before the request's session reads anything.
    On a counted failure the request's transaction is rolled back first (the failed work is
    void anyway, and the count needs its own connection), then the failure is counted; past
    the limit the answer becomes 429 instead of the failure itself.
    """
    if check_first:
        check(bucket, limit, window_seconds)
    try:
        yield
    except counted:
        rollback(db.session)
        hit(bucket, limit, window_seconds)
        raise


def purge(_run: JobRun | None = None) -> int:
    """Job ``ratelimit.purge``: drop windows that have ended."""
    counters = table(RateLimitCounter)
    result = db.session.execute(sa.delete(counters).where(counters.c.expires_at < utcnow()))
    return rowcount(result)


def init_app(app: Flask) -> None:
    register(app, Job("ratelimit.purge", purge, {"hours": 1}))
