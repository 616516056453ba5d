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
from typing import Annotated, Any, cast

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, scoped_session

# What services take as their first argument: the request's scoped session, or a plain one.
DbSession = Session | scoped_session[Any]

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


def table(model: type[Base]) -> sa.Table:
    """The Core table of ``model``, for set-based statements (typed as a ``Table``, which
    ``__table__`` is at run time)."""
    return cast(sa.Table, model.__table__)


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE matched (``Session.execute`` is typed as returning a plain
    ``Result``; for those statements it is a ``CursorResult``)."""
    return int(cast(sa.CursorResult[Any], result).rowcount or 0)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Model(Base):
    """Abstract base with the internal key, the public id and the creation time."""

    __abstract__ = True

    id: Mapped[IntPK]
    public_id: Mapped[PublicId]
    created_at: Mapped[CreatedAt]


db = SQLAlchemy(model_class=Base)

# Statement parameters carry phone numbers, names and password hashes: never put them in an
# exception's text, which reaches the error log.
_ENGINE_OPTIONS: dict[str, Any] = {"hide_parameters": True}


def configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
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
        read = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def engine_options(url: sa.URL) -> dict[str, Any]:
    """SQLite is a local file: a liveness ping on every checkout would only cost time."""
    options = dict(_ENGINE_OPTIONS)
    if url.get_backend_name() != "sqlite":
        options["pool_pre_ping"] = True
    return options


def init_app(app: Flask) -> None:
    url = sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **engine_options(url), **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {})}
    db.init_app(app)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            configure_sqlite(engine, app.config["NONGDAI_DB_BUSY_TIMEOUT_MS"])


READ_ONLY = "nongdai_read_only"  # execution option: see begin_read()


def begin_read(session: DbSession) -> None:
    """Begin the session's next transaction as a read that takes no write lock.

    On SQLite every other transaction begins IMMEDIATE, holding the database's one write lock
    from its first statement to its end; a read that ends before any write need not wait for
    it, nor make writers wait (WAL readers see the last commit). Use it for reads that end
    with a rollback before the request writes: authentication, an idempotent replay. Writing
    in such a transaction is a bug (SQLite may refuse the upgrade with "database is locked").
    Elsewhere a no-op: PostgreSQL's reads never block writers.
    """
    plain = session() if isinstance(session, scoped_session) else session
    if plain.get_bind().dialect.name != "sqlite":
        return
    if plain.in_transaction():
        raise RuntimeError("begin_read() while the session holds a transaction")
    plain.connection(execution_options={READ_ONLY: True})


def in_write(session: DbSession) -> bool:
    """Whether ``session`` holds a transaction that may write (begun, and not by
    :func:`begin_read`)."""
    plain = session() if isinstance(session, scoped_session) else session
    if not plain.in_transaction():
        return False
    return not plain.connection().get_execution_options().get(READ_ONLY, False)


def end_read(session: DbSession, *keep: Any) -> None:
    """End a read begun with :func:`begin_read`, keeping the objects ``keep`` loaded.

    For a write whose checks are reads: do them in the read, then end it here, so that the
    write transaction (SQLite: the database's one write lock) starts at the first write and
    lasts only as long as the writing. The objects in ``keep`` stay in the session, loaded
    as they were read. What the checks decided may change before the write (another request
    may commit in between): the database's own constraints must back every such decision.
    A no-op when the transaction is not such a read, and on backends whose reads never block
    writers (PostgreSQL), where one transaction is cheaper.
    """
    plain = session() if isinstance(session, scoped_session) else session
    if not plain.in_transaction() or plain.get_bind().dialect.name != "sqlite":
        return
    if not plain.connection().get_execution_options().get(READ_ONLY, False):
        return
    for obj in keep:
        plain.expunge(obj)
    plain.rollback()
    for obj in keep:
        plain.add(obj)


class SideTransactionInsideRequest(RuntimeError):
    """A side transaction was asked for while the request's own transaction was open."""


@contextmanager
def side_transaction() -> Iterator[Connection]:
    """A short transaction on its own connection that commits whatever the request does.

    For counters that must survive a failed request: rate-limit hits, one-time-code attempts,
    the revocation of a session whose refresh token was reused. The rule, the same on every
    backend: it runs only while the request's session holds no transaction, that is before the
    request reads anything or after its work was rolled back (``ratelimit.failures``). On
    SQLite the request's transaction holds the write lock, so breaking the rule would deadlock;
    on PostgreSQL it would work, which is how such a bug hides until the embedded default.
    """
    if db.session().in_transaction():
        raise SideTransactionInsideRequest(
            "side_transaction() while the request's session holds a transaction")
    with db.engine.begin() as conn:
        yield conn


@contextmanager
def savepoint(session: DbSession) -> Iterator[None]:
    """One unit of work inside the current transaction, rolled back alone if it fails.

    A SAVEPOINT (real on SQLite too, see ``configure_sqlite``): when the block raises, the
    unit's rows are undone, and so is what it noted in ``session.info`` (audit-event counts,
    callbacks to run after the commit); the error propagates and the enclosing transaction
    goes on, to commit the other units. The sync push applies each operation of a batch this
    way, with one durable commit for the batch.
    """
    noted = {key: _copy(value) for key, value in session.info.items()}
    try:
        with session.begin_nested():
            yield
    except BaseException:
        session.info.clear()
        session.info.update(noted)
        raise


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
