"""The append-only audit trail: one event per state-changing call, in the same transaction.

Summaries carry ids, codes and masked values only: never a plaintext ID number, a one-time
code, a password or a token. Rows are never updated or deleted (the migration installs
triggers that refuse it on SQLite and PostgreSQL).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import g, has_request_context
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, DbSession, IntPK, UTCDateTime, table, utcnow
from core.lifecycle import note_audit_event

SYSTEM = "system"


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[IntPK]
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(sa.String(60))  # "staff:<uuid>", "system", "anonymous"
    action: Mapped[str] = mapped_column(sa.String(60))  # "village.create"
    object_type: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    object_id: Mapped[str | None] = mapped_column(sa.String(60), nullable=True, index=True)
    request_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


def _actor() -> str:
    if not has_request_context():
        return SYSTEM
    principal = g.get("principal")
    return principal.ref if principal else "anonymous"


_INSERT = sa.insert(table(AuditEvent))


def record(session: DbSession, action: str, obj: Any = None, *,
           summary: dict[str, Any] | None = None, actor: str | None = None) -> None:
    """Write an audit event in ``session``'s transaction, now.

    ``obj`` must have been flushed (its ``public_id`` is the event's object id). A Core INSERT
    on the session's connection, not an ORM object: an event is never read back by the
    request that writes it, refers to no row by key (nothing need flush before it), and every
    state-changing request pays for one.
    """
    object_id = getattr(obj, "public_id", obj)
    session.connection().execute(_INSERT, {
        "occurred_at": utcnow(),
        "actor": actor or _actor(),
        "action": action,
        "object_type": getattr(obj, "__tablename__", None) if obj is not None else None,
        "object_id": str(object_id) if isinstance(object_id, uuid.UUID | str) else None,
        "request_id": g.get("request_id") if has_request_context() else None,
        "summary": summary or {},
    })
    note_audit_event(session)
