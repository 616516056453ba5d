"""The data layer's floor: one declarative base, shared column types, engine settings.

Conventions every model follows:
- ``id`` is an autoincrement integer that never leaves the server;
- ``public_id`` is a UUIDv7 (time-ordered, so it doubles as a stable pagination key);
- money is integer fen (``Fen``), times are timezone-aware UTC (``UTCDateTime``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def uuid7() -> uuid.UUID:
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, then random bits (``uuid.uuid7`` from 3.14)."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80 | rand & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
    return uuid.UUID(int=value)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Nongdai stores UTC-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, _dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


IntPK = Annotated[int, mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                     primary_key=True, autoincrement=True)]
PublicId = Annotated[uuid.UUID, mapped_column(sa.Uuid, unique=True, default=uuid7)]
Fen = Annotated[int, mapped_column(sa.BigInteger)]
Timestamp = Annotated[datetime, mapped_column(UTCDateTime)]
CreatedAt = Annotated[datetime, mapped_column(UTCDateTime, default=utcnow)]


def fk(target: str, **kwargs: Any) -> Any:
    """A foreign key column to ``table.id`` of the same integer type as ``IntPK``."""
    return mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                         sa.ForeignKey(target), **kwargs)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Model(Base):
    """Abstract base with the internal key, the public id and the creation time."""

    __abstract__ = True

    id: Mapped[IntPK]
    public_id: Mapped[PublicId]
    created_at: Mapped[CreatedAt]


db = SQLAlchemy(model_class=Base, engine_options={"pool_pre_ping": True})


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """Durable, serialised SQLite: WAL + synchronous=FULL, BEGIN IMMEDIATE, real SAVEPOINTs.

    pysqlite's own transaction handling defers BEGIN until the first write and breaks
    SAVEPOINT; we take it over (the SQLAlchemy-documented recipe) and begin every
    transaction IMMEDIATE so two writers wait for each other instead of failing.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def init_app(app: Flask) -> None:
    url = sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine, app.config["NONGDAI_DB_BUSY_TIMEOUT_MS"])


@contextmanager
def side_transaction() -> Iterator[Connection]:
    """A short transaction on its own connection that commits whatever the request does.

    For counters that must survive a failed request: rate-limit hits, one-time-code
    attempts, idempotency claims. Call it before the request's own session has begun a
    transaction (on SQLite the request would otherwise hold the write lock).
    """
    if db.engine.dialect.name == "sqlite" and db.session().in_transaction():
        raise RuntimeError("side_transaction() inside an open request transaction would deadlock")
    with db.engine.begin() as conn:
        yield conn
