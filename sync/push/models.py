"""What the server keeps of a device's pushes: its sync state, every operation that reached a
final state, the versions of editable records and the conflicts filed for staff.

``sync_ops`` is the permanent record of ``(device, op_id)``: a replay is answered from it, and
an ``op_id`` reused with another payload is refused by it. It holds the payload's hash, never the
payload (the domain's own tables hold what the operation meant).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Model, Timestamp, UTCDateTime, fk

OPEN, RESOLVED = "open", "resolved"
KEEP_SERVER, TAKE_DEVICE = "keep_server", "take_device"


class SyncDevice(Model):
    """Per-device sync state, one row per ``devices.id`` (made on its first push or pull).

    ``acked_seq``: every ``device_seq`` up to it reached a final state. ``final_ahead``: the
    sequences above it already final (a known ``op_id`` resent under a new sequence after the
    device renumbered), consumed when ``acked_seq`` reaches them. ``flags``: code -> details
    (``seq-regression``, ``clock-skew``) for staff.
    """

    __tablename__ = "sync_devices"

    device_id: Mapped[int] = fk("devices.id", unique=True)
    acked_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    final_ahead: Mapped[list[int]] = mapped_column(sa.JSON, default=list)
    last_push_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    last_sent_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    last_pull_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    cursor: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    pending_reported: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    flags: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class SyncOp(Model):
    """One operation that reached a final state (``applied``, ``conflict``, ``rejected``)."""

    __tablename__ = "sync_ops"
    __table_args__ = (
        sa.UniqueConstraint("device_id", "op_id", name="uq_sync_ops_device_id_op_id"),
        sa.CheckConstraint(sa.text("status IN ('applied', 'conflict', 'rejected')"),
                           name="status"),
    )

    device_id: Mapped[int] = fk("devices.id")
    op_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    device_seq: Mapped[int] = mapped_column(sa.BigInteger)
    type: Mapped[str] = mapped_column(sa.String(60))
    entity_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    # keyed hash of the payload's SHA-256 (outcomes.payload_key), never the bare digest
    payload_key: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(12))
    reason: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    detail: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    flags: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RecordVersion(Model):
    """The version of an editable record and, per field, the version that last changed it."""

    __tablename__ = "record_versions"
    __table_args__ = (
        sa.UniqueConstraint("kind", "entity_id", name="uq_record_versions_kind_entity_id"),
    )

    kind: Mapped[str] = mapped_column(sa.String(40))
    entity_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    version: Mapped[int] = mapped_column(sa.BigInteger, default=1)
    field_versions: Mapped[dict[str, int]] = mapped_column(sa.JSON, default=dict)


class SyncConflict(Model):
    """A device's value for a field that changed on the server since the device's version:
    the server kept its value; staff decide (``keep_server`` or ``take_device``)."""

    __tablename__ = "sync_conflicts"
    __noun__ = "conflict"
    __table_args__ = (
        sa.CheckConstraint(sa.text("status IN ('open', 'resolved')"), name="status"),
        sa.CheckConstraint(
            sa.text("resolution IS NULL OR resolution IN ('keep_server', 'take_device')"),
            name="resolution"),
        sa.Index("ix_sync_conflicts_status", "status"),
    )

    kind: Mapped[str] = mapped_column(sa.String(40))
    entity_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    field: Mapped[str] = mapped_column(sa.String(60))
    server_value: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
    device_value: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
    device_id: Mapped[int] = fk("devices.id", index=True)
    op_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    base_version: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.String(12), default=OPEN)
    resolution: Mapped[str | None] = mapped_column(sa.String(12), nullable=True)
    reason: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(sa.String(60), nullable=True)
    resolved_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
