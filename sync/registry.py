"""What the domains tell sync: the operation types devices push, the entity kinds they pull.

``sync`` knows no lending and no agents: a domain registers, in its ``init_app``, each operation
type with the code that applies it (:func:`register_operation`) and each entity kind it publishes
to devices with the code that loads it (:func:`register_feed`). The registrations live on the
app (``app.extensions["nongdai.sync"]``), never in module globals, so two apps in one process
(tests) never see each other's.

The contract an operation handler follows (see ``sync.push.engine`` for the caller):

* ``prepare(ctx, ops)`` (optional) runs once per batch, before any ``apply``, with every
  operation of its type in the batch: it loads in a few queries what the batch needs and keeps it
  in ``ctx.cache``. It must not write.
* ``apply(ctx, op)`` validates ``op.payload`` (raise :class:`Rejected` with a reason code), and
  writes what the operation means. A *buffered* handler (``immediate=False``, the default and the
  fast path) writes only through ``ctx.insert`` / ``ctx.changed`` / ``ctx.audit``: the engine
  writes the batch's rows with one executemany per table. An *immediate* handler
  (``immediate=True``) may use ``ctx.session`` freely (ORM, services that flush): the engine runs
  it in its own savepoint. Either way, an exception rolls back that operation alone.
  It returns an :class:`Outcome`, or raises :class:`Rejected` (final) or :class:`Deferred`
  (not yet: e.g. a photo has not arrived).

A feed's loader, ``load(session, ids) -> {id: data}``, returns the current device-facing state of
the entities it still publishes (an id missing from the answer becomes a tombstone);
``snapshot(session, village_ids, after, limit) -> [(id, data)]`` pages through every entity of the
scope by id, for a device's first pull.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from flask import Flask, current_app

if TYPE_CHECKING:
    import marshmallow as ma

    from sync.push.engine import Context

KEY: Final = "nongdai.sync"

APPLIED: Final = "applied"
CONFLICT: Final = "conflict"


@dataclass(frozen=True)
class Op:
    """One operation as the device sent it (envelope checked, payload not yet)."""

    op_id: uuid.UUID
    device_seq: int
    type: str
    entity_id: uuid.UUID
    base_version: int | None
    payload: dict[str, Any]
    payload_sha256: str
    recorded_at: datetime


@dataclass
class Outcome:
    """What an applied operation answers: ``status`` is ``applied`` or ``conflict``; ``result``
    is JSON the device receives (ids, versions, ``flags``, ``conflicts``) and the server keeps."""

    result: dict[str, Any] = field(default_factory=dict)
    status: str = APPLIED


class Rejected(Exception):
    """A permanent refusal of one operation: the device sets it aside."""

    def __init__(self, reason: str, detail: str = "", errors: Mapping[str, Any] | None = None):
        super().__init__(reason)
        self.reason, self.detail, self.errors = reason, detail, dict(errors or {})


class Deferred(Exception):
    """Not applied yet (``attachment-missing``…): the device sends it again later."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


Apply = Callable[["Context", Op], Outcome]
Prepare = Callable[["Context", Sequence[Op]], None]
Load = Callable[[Any, Sequence[uuid.UUID]], dict[uuid.UUID, dict[str, Any]]]
Snapshot = Callable[[Any, frozenset[int], uuid.UUID | None, int],
                    Sequence[tuple[uuid.UUID, dict[str, Any]]]]
# resolver(session, entity_id, field, value): write a device's value into an editable record
# when staff resolve a conflict with ``take_device`` (see sync.push.records).
Resolver = Callable[[Any, uuid.UUID, str, Any], None]


@dataclass(frozen=True)
class Operation:
    type: str
    apply: Apply
    schema: ma.Schema | None = None
    prepare: Prepare | None = None
    immediate: bool = False


@dataclass(frozen=True)
class Feed:
    kind: str
    load: Load
    snapshot: Snapshot


@dataclass
class Registry:
    operations: dict[str, Operation] = field(default_factory=dict)
    feeds: dict[str, Feed] = field(default_factory=dict)  # in registration order
    resolvers: dict[str, Resolver] = field(default_factory=dict)


def of(app: Flask | None = None) -> Registry:
    """The app's registry (created empty on first use)."""
    target = app if app is not None else current_app
    found = target.extensions.get(KEY)
    if found is None:
        found = target.extensions[KEY] = Registry()
    return found


def register_operation(app: Flask, type_: str, apply: Apply, *, schema: ma.Schema | None = None,
                       prepare: Prepare | None = None, immediate: bool = False) -> None:
    """Teach sync what an operation type means. ``schema`` (a marshmallow schema instance), when
    given, loads the payload first; its errors become ``rejected`` ``invalid-payload``."""
    registry = of(app)
    if type_ in registry.operations:
        raise ValueError(f"operation type {type_!r} is registered twice")
    registry.operations[type_] = Operation(type_, apply, schema, prepare, immediate)


def register_feed(app: Flask, kind: str, load: Load, snapshot: Snapshot) -> None:
    """Publish an entity kind to devices (pulled in registration order on a first sync)."""
    registry = of(app)
    if kind in registry.feeds:
        raise ValueError(f"feed kind {kind!r} is registered twice")
    registry.feeds[kind] = Feed(kind, load, snapshot)


def kinds(app: Flask | None = None) -> Iterable[str]:
    return tuple(of(app).feeds)


def register_resolver(app: Flask, kind: str, resolver: Resolver) -> None:
    """How staff's ``take_device`` writes a conflicting device value into a record of ``kind``
    (an editable record merged by ``sync.push.records.merge``). The resolver may raise a
    ``core.errors`` error (the record is gone, say): the resolution is then refused."""
    registry = of(app)
    if kind in registry.resolvers:
        raise ValueError(f"resolver for kind {kind!r} is registered twice")
    registry.resolvers[kind] = resolver
