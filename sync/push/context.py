"""What an operation handler receives: :class:`Context` (see ``sync.registry`` for the contract).

A buffered handler writes only through :meth:`Context.insert`, :meth:`Context.changed` and
:meth:`Context.audit`: the rows wait in the operation's :class:`Unit`, and the engine writes the
units of many operations with one executemany per table (``sync.push.writer``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import g, has_request_context

from core.audit import AuditEvent
from core.db import DbSession, table, utcnow
from sync.registry import Op

AUDIT = table(AuditEvent)


@dataclass
class Unit:
    """One operation's writes: buffered rows (in the order given) and its ``sync_ops`` row.
    ``index`` is its place in the batch as sent."""

    index: int
    op: Op
    rows: list[tuple[sa.Table, dict[str, Any]]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Who:
    """The device and coordinator a batch comes from."""

    device_id: int
    device_public_id: uuid.UUID
    coordinator_id: int
    coordinator_public_id: uuid.UUID
    village_ids: frozenset[int]


class Context:
    """The handler's view of the batch: who pushes, when, the session, and the buffers."""

    def __init__(self, session: DbSession, who: Who, received_at: datetime,
                 config: Mapping[str, Any]) -> None:
        self.session = session
        self.device_id = who.device_id
        self.device_public_id = who.device_public_id
        self.coordinator_id = who.coordinator_id
        self.coordinator_public_id = who.coordinator_public_id
        self.village_ids = who.village_ids
        self.received_at = received_at
        self.actor = f"coordinator:{who.coordinator_public_id}"
        self.config = config
        self.cache: dict[str, Any] = {}
        self.immediate = False  # whether the operation being applied is an immediate one
        self.op: Op | None = None
        self._rows: list[tuple[sa.Table, dict[str, Any]]] = []
        self._flags: list[dict[str, Any]] = []
        self._request_id = g.get("request_id") if has_request_context() else None

    # --- the handler's API ---------------------------------------------------------------

    def insert(self, table_: sa.Table, row: dict[str, Any]) -> None:
        """Buffer a row for ``table_`` (written with the operation, in order per table)."""
        self._rows.append((table_, row))

    def changed(self, kind: str, entity_id: uuid.UUID, village_id: int,
                op: str = "upsert") -> None:
        """Buffer a change-log entry, so that devices of the village pull the entity."""
        from sync.feed import changes  # noqa: PLC0415 - the feed part may load after push

        self.insert(changes.CHANGES, changes.row(kind, entity_id, village_id, op))

    def audit(self, action: str, object_type: str, object_id: str,
              summary: dict[str, Any]) -> None:
        """Buffer an audit event by the coordinator (ids and codes only in ``summary``)."""
        self.insert(AUDIT, {
            "occurred_at": utcnow(), "actor": self.actor, "action": action,
            "object_type": object_type, "object_id": str(object_id),
            "request_id": self._request_id, "summary": summary})

    def attachments_ready(self, shas: Iterable[str]) -> set[str]:
        """Which of the photos ``shas`` (SHA-256 hex) have fully arrived."""
        from sync.uploads import services  # noqa: PLC0415 - the uploads part loads later

        wanted = set(shas)
        return set(services.ready(self.session, wanted)) if wanted else set()

    def flag(self, code: str, detail: dict[str, Any] | None = None) -> None:
        """Flag the operation (kept with its record; the code goes to ``result.flags``)."""
        self._flags.append({"code": code, "detail": detail})

    # --- the engine's side -----------------------------------------------------------------

    def begin(self, op: Op, *, immediate: bool) -> None:
        self.op, self.immediate = op, immediate
        self._rows, self._flags = [], []

    def take(self) -> tuple[list[tuple[sa.Table, dict[str, Any]]], list[dict[str, Any]]]:
        """The rows and flags the current operation buffered (and forget them)."""
        rows, flags = self._rows, self._flags
        self._rows, self._flags = [], []
        return rows, flags
