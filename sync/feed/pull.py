"""One page of a coordinator's pull: the snapshot of their scope first, then the change feed.

A first pull (no cursor) pages through every registered feed kind in registration order, by
id, with each feed's ``snapshot``. It notes the feed position at its start: every change
committed after that lies beyond it, so the feed that follows the snapshot misses nothing (a
change that the snapshot already showed comes again: re-applying it is harmless).

A feed page reads the change rows after the cursor and up to the safe bound
(:func:`sync.feed.changes.safe_bound`), in the coordinator's villages, keeps each entity once
(at its last place in the page), and loads the current state of all of them with one ``load``
call per kind. A row says only that an entity changed: what the device gets is decided by the
entity's latest change row (by ``seq``; changes of one entity are serialised by its row lock)
and by the loader. It is an upsert when that row is an upsert in one of the coordinator's
villages and the loader returns the entity; otherwise a tombstone (deleted, or moved out of the
scope). The statements per page do not grow with its size.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from core.db import DbSession
from core.i18n import _
from sync.feed import changes
from sync.feed.changes import CHANGES, DELETE, UPSERT, Position
from sync.feed.cursor import FEED, SNAPSHOT, Cursor
from sync.feed.errors import ResyncRequired
from sync.registry import Feed


@dataclass(frozen=True)
class Scope:
    """Whose pull: the coordinator and their station's villages."""

    coordinator: uuid.UUID
    village_ids: frozenset[int]
    hash: str


@dataclass
class Page:
    changes: list[dict[str, Any]]
    cursor: Cursor
    has_more: bool


def start(session: DbSession, scope: Scope, feeds: Mapping[str, Feed]) -> Cursor:
    """The cursor of a first pull: the snapshot's first kind, and the feed position now."""
    position = max(changes.safe_bound(session), changes.horizon(session))
    first = next(iter(feeds), None)
    if first is None:
        return Cursor(FEED, position, scope.coordinator, scope.hash)
    return Cursor(SNAPSHOT, position, scope.coordinator, scope.hash, first)


def page(session: DbSession, scope: Scope, feeds: Mapping[str, Feed], cursor: Cursor,
         limit: int) -> Page:
    """The next page after ``cursor`` (412 when the feed no longer reaches back to it)."""
    if cursor.mode == SNAPSHOT:
        result = _snapshot_page(session, scope, feeds, cursor, limit)
    else:
        result = _feed_page(session, scope, feeds, cursor, limit)
    # After the reads: retention that committed before them has moved the horizon by now.
    if cursor.position < changes.horizon(session):
        raise ResyncRequired(_("The cursor is older than the changes the server keeps; pull "
                               "from the start"))
    return result


# --- snapshot -----------------------------------------------------------------------------------

def _snapshot_page(session: DbSession, scope: Scope, feeds: Mapping[str, Feed], cursor: Cursor,
                   limit: int) -> Page:
    kinds = list(feeds)
    if cursor.kind not in feeds:  # a kind no longer published (a new release)
        raise ResyncRequired(_("The server publishes other kinds now; pull from the start"))
    index, after = kinds.index(str(cursor.kind)), cursor.after
    out: list[dict[str, Any]] = []
    while index < len(kinds):
        kind, want = kinds[index], limit - len(out)
        rows = list(feeds[kind].snapshot(session, scope.village_ids, after, want))[:want]
        out.extend(entry(kind, entity_id, data) for entity_id, data in rows)
        if len(rows) == want:
            return Page(out, replace(cursor, kind=kind, after=rows[-1][0]), True)
        index, after = index + 1, None
    done = Cursor(FEED, cursor.position, cursor.coordinator, cursor.scope)
    return Page(out, done, _changed_since(session, scope, feeds, cursor.position))


def _in_scope(scope: Scope) -> sa.ColumnElement[bool]:
    if not scope.village_ids:
        return sa.false()
    return CHANGES.c.village_id.in_(sorted(scope.village_ids))


def _changed_since(session: DbSession, scope: Scope, feeds: Mapping[str, Feed],
                   position: Position) -> bool:
    """Whether the scope has changes after ``position`` (committed ones: seen now)."""
    stmt = sa.select(CHANGES.c.seq).where(changes.position_column() > position,
                                          _in_scope(scope), CHANGES.c.kind.in_(list(feeds))
                                          ).limit(1)
    return session.execute(stmt).first() is not None


# --- change feed --------------------------------------------------------------------------------

def _feed_page(session: DbSession, scope: Scope, feeds: Mapping[str, Feed], cursor: Cursor,
               limit: int) -> Page:
    bound = changes.safe_bound(session)  # first: the rows up to it are fixed from now on
    position = changes.position_column()
    rows = session.execute(
        sa.select(CHANGES.c.kind, CHANGES.c.entity_id, CHANGES.c.txid, CHANGES.c.seq)
        .where(position > cursor.position, position <= bound, _in_scope(scope),
               CHANGES.c.kind.in_(list(feeds)))
        .order_by(CHANGES.c.txid, CHANGES.c.seq).limit(limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    # Not full: every row of the scope up to the bound was read, so move on to the bound.
    reached = (int(rows[-1].txid), int(rows[-1].seq)) if has_more else max(bound,
                                                                           cursor.position)
    keys = _latest_first_seen(rows, feeds)
    out = _resolve(session, scope, feeds, keys)
    return Page(out, replace(cursor, position=reached), has_more)


def _latest_first_seen(rows: Sequence[Any], feeds: Mapping[str, Feed]
                       ) -> list[tuple[str, uuid.UUID]]:
    """Each (kind, id) once, at its last place in the page; kinds no longer published drop."""
    keys: dict[tuple[str, uuid.UUID], None] = {}
    for r in rows:
        if r.kind in feeds:
            key = (r.kind, r.entity_id)
            keys.pop(key, None)
            keys[key] = None
    return list(keys)


def _resolve(session: DbSession, scope: Scope, feeds: Mapping[str, Feed],
             keys: Sequence[tuple[str, uuid.UUID]]) -> list[dict[str, Any]]:
    if not keys:
        return []
    by_kind: dict[str, list[uuid.UUID]] = {}
    for kind, entity_id in keys:
        by_kind.setdefault(kind, []).append(entity_id)
    # Load first, then read where each entity lives now: an entity that moved out of the scope
    # meanwhile has its move's rows committed by then, so its data is never sent.
    loaded = {kind: feeds[kind].load(session, ids) for kind, ids in by_kind.items()}
    homes = _homes(session, [entity_id for _kind, entity_id in keys])
    out = []
    for kind, entity_id in keys:
        home = homes.get((kind, entity_id))
        data = loaded[kind].get(entity_id)
        in_scope = home is not None and home[1] == UPSERT and home[0] in scope.village_ids
        out.append(entry(kind, entity_id, data) if in_scope and data is not None
                   else tombstone(kind, entity_id))
    return out


def _homes(session: DbSession, ids: Sequence[uuid.UUID]
           ) -> dict[tuple[str, uuid.UUID], tuple[int, str]]:
    """(village, op) of each entity's latest change row."""
    latest = (sa.select(sa.func.max(CHANGES.c.seq))
              .where(CHANGES.c.entity_id.in_(ids))
              .group_by(CHANGES.c.kind, CHANGES.c.entity_id))
    found = session.execute(
        sa.select(CHANGES.c.kind, CHANGES.c.entity_id, CHANGES.c.village_id, CHANGES.c.op)
        .where(CHANGES.c.seq.in_(latest)))
    return {(r.kind, r.entity_id): (int(r.village_id), r.op) for r in found}


# --- entries ------------------------------------------------------------------------------------

def entry(kind: str, entity_id: uuid.UUID, data: Mapping[str, Any]) -> dict[str, Any]:
    """An upsert as the device receives it: a ``version`` in the loader's data is lifted to
    the entry (§4); keys whose value is null are left out (a missing key reads as null)."""
    body = compact(data)
    out: dict[str, Any] = {"kind": kind, "id": str(entity_id), "op": UPSERT}
    version = body.pop("version", None)
    if version is not None:
        out["version"] = version
    out["data"] = body
    return out


def tombstone(kind: str, entity_id: uuid.UUID) -> dict[str, Any]:
    return {"kind": kind, "id": str(entity_id), "op": DELETE}


_NESTED = (dict, list, tuple)


def compact(value: Any) -> Any:
    """``value`` without the null members of its objects, at every depth (dicts and lists:
    what loaders build; checked by concrete type, the fast path for thousands of rows)."""
    if isinstance(value, dict):
        return {k: compact(v) if isinstance(v, _NESTED) else v
                for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [compact(v) if isinstance(v, _NESTED) else v for v in value]
    return value
