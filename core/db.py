"""The data layer's floor: one declarative base, shared column types, engine settings.

Conventions every model follows:
- ``id`` is an autoincrement integer that never leaves the server;
- ``public_id`` is a UUIDv7 (time-ordered, so it doubles as a stable pagination key);
- money is integer fen (``Fen``), times are timezone-aware UTC (``UTCDateTime``).
"""

from __future__ import annotations

import collections
import fcntl
import functools
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    make_transient_to_detached,
    mapped_column,
    scoped_session,
)

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


_M = TypeVar("_M", bound="Base")


@functools.cache
def _inserting(model: type[Base]) -> tuple[sa.Insert, frozenset[str]]:
    rows = table(model)
    return sa.insert(rows).returning(rows.c.id), frozenset(rows.c.keys()) - {"id"}


def insert_row(session: DbSession, model: type[_M], values: dict[str, Any]) -> _M:
    """A Core ``INSERT ... RETURNING id`` of ``values`` on the session's connection (after a
    flush of its pending changes), and the row as a persistent object of ``session``, as if
    loaded: no unit of work, no INSERT at the next flush, its relationships load when read.

    ``values`` names every column but ``id``: a value left to a column default would be
    written but unknown to the object (read, it would load again), so a missing column is a
    programming error (``ValueError``)."""
    statement, columns = _inserting(model)
    if missing := columns - values.keys():
        raise ValueError(f"insert_row({model.__name__}) without {sorted(missing)}")
    session.flush()
    row_id = session.connection().execute(statement, values).scalar_one()
    return as_loaded(session, model(id=row_id, **values))


def as_loaded(session: DbSession, obj: _M) -> _M:
    """``obj``, built with the values of a row just written by a Core statement, made a
    persistent object of ``session`` as if loaded (no INSERT at the next flush)."""
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


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

    writers = _writers_of(engine.url.database or "")
    timeout = busy_timeout_ms / 1000

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY, False):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_conn = conn.connection.dbapi_connection
        if not writers.acquire(timeout=timeout):
            raise sqlite3.OperationalError("database is locked")
        if not writers.lock_file(timeout):
            writers.release()
            raise sqlite3.OperationalError("database is locked")
        dbapi_conn.holds_writer = writers  # type: ignore[union-attr]
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            dbapi_conn.release_writer()  # type: ignore[union-attr]
            raise


class WriterQueue:
    """A lock handed to this process's waiters in the order they came (``threading.Lock`` is
    not fair: the thread that releases it may take it straight back), plus the file lock that
    orders the processes (see :func:`_writers_of`)."""

    def __init__(self, path: str = "") -> None:
        self._path = path
        self._fd: int | None = None
        self._pid = 0
        self._guard = threading.Lock()
        self._waiters: collections.deque[threading.Event] = collections.deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        with self._guard:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True  # handed over by release()
        with self._guard:
            if turn.is_set():
                return True
            self._waiters.remove(turn)
            return False

    def lock_file(self, timeout: float) -> bool:
        """Between processes: an exclusive ``flock`` on ``<database>-writer``, tried every
        tenth of a millisecond (one thread per process tries; SQLite's own wait sleeps up to
        100 ms between tries, so a busy process would keep the database to itself). The lock
        changes hands hundreds of times a second under load: a longer sleep leaves it idle."""
        if not self._path:
            return True
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
            self._fd = os.open(f"{self._path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        fd = self._fd
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.0001)

    def release(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        with self._guard:
            if self._waiters:
                self._waiters.popleft().set()  # the lock passes on, still held
            else:
                self._held = False


_writer_locks: dict[str, WriterQueue] = {}
_writer_locks_guard = threading.Lock()


def _writers_of(path: str) -> WriterQueue:
    """The queue for the write lock of one SQLite file, in this process.

    SQLite lets one transaction write at a time and makes the others poll, sleeping up to
    100 ms between tries: under load a late writer overtakes one that has waited for seconds,
    and a busy process keeps the database to itself while another one sleeps. So the threads
    of a process queue in order (:class:`WriterQueue`), and the one at the head takes an
    exclusive ``flock`` on ``<database>-writer``, tried every tenth of a millisecond, before
    ``BEGIN IMMEDIATE``. SQLite's own locking still guards the data; this only orders the
    writers. Durability is unchanged: each transaction still commits with its own fsync.
    """
    with _writer_locks_guard:
        if path not in _writer_locks:
            _writer_locks[path] = WriterQueue(path if path not in ('', ':memory:') else '')
        return _writer_locks[path]


class QueuedWriterConnection(sqlite3.Connection):
    """A pysqlite connection that gives back its place in the writers' queue when its write
    transaction ends (commit, rollback or close)."""

    holds_writer: WriterQueue | None = None

    def release_writer(self) -> None:
        held, self.holds_writer = self.holds_writer, None
        if held is not None:
            held.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_writer()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_writer()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_writer()


def engine_options(url: sa.URL) -> dict[str, Any]:
    """SQLite is a local file: a liveness ping on every checkout would only cost time; its
    connections queue their writers (:class:`QueuedWriterConnection`)."""
    options = dict(_ENGINE_OPTIONS)
    if url.get_backend_name() != "sqlite":
        options["pool_pre_ping"] = True
    else:
        options["connect_args"] = {"factory": QueuedWriterConnection}
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


def in_read(session: DbSession) -> bool:
    """Whether ``session`` holds a read begun with :func:`begin_read` (SQLite only)."""
    plain = session() if isinstance(session, scoped_session) else session
    if not plain.in_transaction() or plain.get_bind().dialect.name != "sqlite":
        return False
    return bool(plain.connection().get_execution_options().get(READ_ONLY, False))


def end_read(session: DbSession, *keep: Any) -> None:
    """End a read begun with :func:`begin_read`, keeping the objects ``keep`` loaded.

    For a write whose checks are reads: do them in the read, then end it here, so that the
    write transaction (SQLite: the database's one write lock) starts at the first write and
    lasts only as long as the writing. The objects in ``keep`` stay in the session, loaded
    as they were read. What the checks decided may change before the write (another request
    may commit in between): the database's own constraints must back every such decision, or
    the write must re-read what it rests on. A no-op when the transaction is not such a read
    (:func:`in_read`), as on backends whose reads never block writers (PostgreSQL), where one
    transaction is cheaper.
    """
    if not in_read(session):
        return
    plain = session() if isinstance(session, scoped_session) else session
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
