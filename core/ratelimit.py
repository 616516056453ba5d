"""Fixed-window rate limits kept in the database, so every worker process shares them.

``hit(bucket, limit, window_seconds)`` counts one request in the current window with an atomic
upsert on its own connection (:func:`core.db.side_transaction`), so the count survives the
request failing; past the limit it raises :class:`core.errors.RateLimited` with Retry-After.
Buckets never hold a phone number or a username in the clear: build them with :func:`key`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, IntPK, UTCDateTime, db, side_transaction, utcnow
from core.errors import RateLimited

_KEY_PURPOSE = b"nongdai/rate-limit-bucket/v1"


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
    secret = hmac.new(str(current_app.config["SECRET_KEY"]).encode(), _KEY_PURPOSE,
                      hashlib.sha256).digest()
    digest = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:40]
    return f"{scope}:{digest}"


def _window(now: datetime, seconds: int) -> datetime:
    start = math.floor(now.timestamp() / seconds) * seconds
    return datetime.fromtimestamp(start, UTC)


def _upsert(bucket: str, start: datetime, end: datetime) -> sa.Executable:
    table = RateLimitCounter.__table__
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(bucket=bucket, window_start=start, expires_at=end, count=1)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.bucket, table.c.window_start],
        set_={"count": table.c.count + 1},
    ).returning(table.c.count)


def hit(bucket: str, limit: int, window_seconds: int) -> int:
    """Count one hit; raise ``RateLimited`` once more than ``limit`` fall in the window."""
    now = utcnow()
    start = _window(now, window_seconds)
    end = start + timedelta(seconds=window_seconds)
    with side_transaction() as conn:
        count = int(conn.execute(_upsert(bucket, start, end)).scalar_one())
    if count > limit:
        retry_after = math.ceil((end - now).total_seconds())
        raise RateLimited("Too many attempts; try again later", retry_after=retry_after)
    return count


def purge() -> int:
    """Job ``ratelimit.purge``: drop windows that have ended."""
    table = RateLimitCounter.__table__
    result = db.session.execute(sa.delete(table).where(table.c.expires_at < utcnow()))
    return int(result.rowcount or 0)
