"""The change log devices pull from: one row per change of a published entity, written in the
same transaction as the change.

A row says only *that* an entity of a kind changed, in which village, and whether it was an
upsert or a delete; the pull loads the entity's current state when it serves the row. Its
position in the feed is ``(txid, seq)``: ``seq`` is an autoincrement, ``txid`` the writing
transaction's id (PostgreSQL's ``pg_current_xact_id()``, a server default). On PostgreSQL
sequence values are taken before commit, so a transaction can commit after another that took a
later ``seq``; a reader that passed the later one would skip it forever. Reading in ``(txid,
seq)`` order and only below the oldest transaction of this database still running
(:func:`safe_bound`) never passes over a transaction in flight: every such transaction has a
``txid`` at or above that mark. (So a write transaction left open for long holds the feed back;
it never makes it skip.) On SQLite writers are serialised, so ``seq`` order is commit order and
``txid`` is 0.

Three ways to write a row: :func:`row` (a dict for a bulk executemany, the push engine's path),
:func:`record` (one immediate insert) and :func:`watch` (an ORM listener that writes rows for
every insert, update and delete of a model in any session of an app that publishes its kind).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.expression import FunctionElement

from core.db import Base, DbSession, UTCDateTime, table, utcnow
from sync import registry

UPSERT: Final = "upsert"
DELETE: Final = "delete"
OPS: Final = (UPSERT, DELETE)

Position = tuple[int, int]  # (txid, seq)
ORIGIN: Final[Position] = (0, 0)


class current_xact_id(FunctionElement[int]):  # noqa: N801 - an SQL function, named as one
    """The writing transaction's id as a bigint (PostgreSQL), 0 elsewhere (see module doc)."""

    type = sa.BigInteger()
    inherit_cache = True


@compiles(current_xact_id)
def _xact_default(_element: Any, _compiler: Any, **_kw: Any) -> str:
    return "0"


@compiles(current_xact_id, "postgresql")
def _xact_postgresql(_element: Any, _compiler: Any, **_kw: Any) -> str:
    return "(pg_current_xact_id()::text::bigint)"


class SyncChange(Base):
    """One change of a published entity (see the module docstring)."""

    __tablename__ = "sync_changes"

    # AUTOINCREMENT on SQLite: a seq is never reused, even after retention empties the table.
    seq: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                     primary_key=True, autoincrement=True)
    txid: Mapped[int] = mapped_column(sa.BigInteger, server_default=current_xact_id())
    kind: Mapped[str] = mapped_column(sa.String(40))
    entity_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    village_id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"))
    op: Mapped[str] = mapped_column(sa.String(6))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        sa.Index("ix_sync_changes_position", "txid", "seq"),
        sa.CheckConstraint("op IN ('upsert', 'delete')", name="op"),
        {"sqlite_autoincrement": True},
    )


class SyncFeedHorizon(Base):
    """The last position retention deleted (one row): a cursor below it may have missed rows,
    so it gets 412 ``resync-required`` instead of a silent gap."""

    __tablename__ = "sync_feed_horizon"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    txid: Mapped[int] = mapped_column(sa.BigInteger)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


CHANGES: Final = table(SyncChange)
HORIZON: Final = table(SyncFeedHorizon)
HORIZON_ROW: Final = 1
_INSERT: Final = sa.insert(CHANGES)  # built once: most writes record a change


def row(kind: str, entity_id: uuid.UUID, village_id: int, op: str = UPSERT) -> dict[str, Any]:
    """A change row for a bulk insert (``txid`` and ``seq`` come from the database)."""
    if op not in OPS:
        raise ValueError(f"change op must be one of {OPS}, not {op!r}")
    return {"kind": kind, "entity_id": entity_id, "village_id": village_id, "op": op,
            "changed_at": utcnow()}


def record(session: DbSession, kind: str, entity_id: uuid.UUID, village_id: int,
           op: str = UPSERT) -> None:
    """Write one change row now, in the session's transaction (Core, no ORM flush)."""
    session.connection().execute(_INSERT, [row(kind, entity_id, village_id, op)])


# --- positions ----------------------------------------------------------------------------------

def position_column() -> Any:
    return sa.tuple_(CHANGES.c.txid, CHANGES.c.seq)


# The lowest transaction id of this database that may still commit: the lowest id the statement's
# snapshot sees running (``xip``), leaving out those that pg_stat_activity shows running in another
# database of the cluster (they never write here: without this, a long transaction in any other
# database would hold every feed back); when none is left, the snapshot's ``xmax`` (ids from there
# on are running or not yet given out). A running id that pg_stat_activity does not show (hidden
# from this role, a prepared transaction) counts as ours: the mark is then only lower, never
# unsafe. xid8 is 64-bit, pg_stat_activity's xid 32-bit: compared modulo 2^32 (two running ids
# never lie 2^32 apart).
_SAFE_MARK = """(SELECT coalesce(
    (SELECT min(x::text::bigint) FROM pg_snapshot_xip(snap.s) AS x
     WHERE x::text::bigint % 4294967296 NOT IN (
         SELECT a.backend_xid::text::bigint FROM pg_stat_activity AS a
         WHERE a.backend_xid IS NOT NULL AND a.datname IS DISTINCT FROM current_database())),
    pg_snapshot_xmax(snap.s)::text::bigint)
 FROM (SELECT pg_current_snapshot() AS s) AS snap)"""


def _finished_below() -> sa.ColumnElement[bool]:
    """Rows of transactions that had ended when the statement's snapshot was taken."""
    mark: sa.ColumnElement[int] = sa.literal_column(_SAFE_MARK)
    return CHANGES.c.txid < mark


def safe_bound(session: DbSession) -> Position:
    """The highest position below which every row is committed and visible (or ORIGIN).

    Read it first, then read rows up to it: the set of rows at or below it cannot grow, even
    under READ COMMITTED where each statement sees a newer snapshot."""
    stmt = (sa.select(CHANGES.c.txid, CHANGES.c.seq)
            .order_by(CHANGES.c.txid.desc(), CHANGES.c.seq.desc()).limit(1))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.where(_finished_below())
    found = session.execute(stmt).first()
    return (int(found.txid), int(found.seq)) if found is not None else ORIGIN


def horizon(session: DbSession) -> Position:
    """The last position retention deleted (ORIGIN when it never ran)."""
    found = session.execute(sa.select(HORIZON.c.txid, HORIZON.c.seq)
                            .where(HORIZON.c.id == HORIZON_ROW)).first()
    return (int(found.txid), int(found.seq)) if found is not None else ORIGIN


# --- the ORM listener -------------------------------------------------------------------------

Getter = Callable[[Any], Any]


@dataclass(frozen=True)
class Watch:
    kind: str
    village: Getter
    entity_id: Getter


_watched: dict[type[Any], dict[str, Watch]] = {}  # model -> kind -> how to read it
_PENDING: Final = "nongdai.sync.changes"  # session.info: what before_flush saw


def watch(model: type[Any], kind: str, village: Getter = lambda obj: obj.village_id,
          entity_id: Getter = lambda obj: obj.public_id) -> None:
    """Write a change row for every insert, update and delete of ``model`` (in the flush that
    writes it, so in the same transaction): an insert or a real change (ORM history) is an
    upsert in its village; a delete a tombstone; a changed village a tombstone in the old
    village, then an upsert in the new one.

    Process-wide and idempotent (domains call it from ``init_app``; tests build many apps): the
    listener is installed once, and writes only in sessions whose app has registered the feed
    ``kind`` (:func:`sync.registry.register_feed`), so an app that does not publish the kind
    writes nothing. ``village`` and ``entity_id`` read the object; for the old village
    ``village`` is given the object as it was before the change (the attributes it reads must
    be column or scalar attributes of the model itself). An object in no village (``village``
    gives None) is in no coordinator's scope: it writes no row.
    """
    _install()
    _watched.setdefault(model, {})[kind] = Watch(kind, village, entity_id)


def _install() -> None:
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "after_flush", _after_flush)


def _published() -> Collection[str]:
    """The feed kinds the current app publishes (none outside an app context)."""
    return registry.of(current_app).feeds.keys() if has_app_context() else ()


def _watches(obj: Any, published: Collection[str]) -> Sequence[Watch]:
    found = _watched.get(type(obj))
    if not found:
        return ()
    return [w for w in found.values() if w.kind in published]


@dataclass
class _Pending:
    deleted: list[dict[str, Any]]
    updated: list[tuple[Any, Watch, Any]]  # (obj, watch, old village)


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    """Read what only the state before the flush tells: deleted rows and old villages."""
    session.info.pop(_PENDING, None)
    if not _watched:
        return
    pending, published = _Pending([], []), _published()
    with session.no_autoflush:
        for obj in session.deleted:
            for w in _watches(obj, published):
                before = _Before(session, obj)
                pending.deleted.append(row(w.kind, w.entity_id(before), w.village(before),
                                           DELETE))
        for obj in session.dirty:
            watches = _watches(obj, published)
            if watches and session.is_modified(obj):
                pending.updated.extend((obj, w, w.village(_Before(session, obj)))
                                       for w in watches)
    if pending.deleted or pending.updated:
        session.info[_PENDING] = pending


def _after_flush(session: Session, _context: Any) -> None:
    """Write the rows: inserts and new villages are known only once the flush has run."""
    pending = session.info.pop(_PENDING, None) or _Pending([], [])
    rows = [r for r in pending.deleted if r["village_id"] is not None]
    for obj, w, old in pending.updated:
        new = w.village(obj)
        if new != old and old is not None:
            rows.append(row(w.kind, w.entity_id(obj), old, DELETE))
        if new is not None:
            rows.append(row(w.kind, w.entity_id(obj), new))
    if _watched and session.new:
        published = _published()
        for obj in session.new:
            rows.extend(row(w.kind, w.entity_id(obj), village)
                        for w in _watches(obj, published)
                        if (village := w.village(obj)) is not None)
    if rows:
        session.connection().execute(_INSERT, rows)


class _Before:
    """The object as it was before the pending change: an attribute changed in this session
    answers its old value (from ORM history; from the database when the old value was never
    loaded), any other its current one."""

    def __init__(self, session: Session, obj: Any) -> None:
        self._session, self._obj = session, obj

    def __getattr__(self, name: str) -> Any:
        state = sa.inspect(self._obj)
        attr = state.attrs.get(name) if name in state.mapper.attrs else None
        if attr is None:
            return getattr(self._obj, name)
        history = attr.history
        if history.deleted:
            return history.deleted[0]
        if history.added and state.key is not None and name in state.mapper.column_attrs:
            return self._stored(state, name)  # changed without the old value loaded
        return getattr(self._obj, name)

    def _stored(self, state: Any, name: str) -> Any:
        mapper = state.mapper
        column = mapper.column_attrs[name].columns[0]
        condition = sa.and_(*(pk == value for pk, value in zip(mapper.primary_key,
                                                                  state.identity, strict=True)))
        return self._session.execute(sa.select(column).where(condition)).scalar()
