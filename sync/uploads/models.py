"""Photos uploaded by coordinators' phones: the uploads in progress and the files that arrived.

The bytes live in an :class:`~sync.uploads.store.AttachmentStore`; the database holds the
state every worker on every host must agree on: how far each upload has got (its ``offset``,
moved only after the bytes are durable in the store) and which files have fully arrived and
been verified (:class:`StoredFile`, keyed by SHA-256: a photo sent twice is stored once).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.authz import Principal
from core.db import Base, CreatedAt, IntPK, Model, Timestamp, fk

SHA256_HEX = 64


class Upload(Model):
    """One tus upload: a coordinator's claim that a file of ``length`` bytes with digest
    ``sha256`` is on its way; ``offset`` bytes of it are durably stored."""

    __tablename__ = "sync_uploads"
    __noun__ = "upload"
    __table_args__ = (
        sa.CheckConstraint(sa.text("upload_offset >= 0 AND upload_offset <= upload_length"),
                           name="offset_in_range"),
    )

    coordinator_id: Mapped[int] = fk("coordinators.id", index=True)
    device_id: Mapped[int | None] = fk("devices.id", index=True, nullable=True)
    sha256: Mapped[str] = mapped_column(sa.String(SHA256_HEX), index=True)
    length: Mapped[int] = mapped_column("upload_length", sa.BigInteger)
    offset: Mapped[int] = mapped_column("upload_offset", sa.BigInteger, default=0)
    # The Upload-Metadata header as the client sent it: tus gives it back on HEAD.
    metadata_header: Mapped[str] = mapped_column(sa.Text, default="")
    filename: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    content_type: Mapped[str] = mapped_column(sa.String(100))
    completed_at: Mapped[Timestamp | None] = mapped_column(nullable=True)

    @property
    def key(self) -> str:
        """The name of its partial bytes in the store (never a client-chosen string)."""
        return self.public_id.hex

    @property
    def is_complete(self) -> bool:
        return self.completed_at is not None

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        """Only the coordinator who created an upload sees it (others get 404)."""
        if principal.kind == "coordinator":
            return cls.coordinator_id == principal.id
        return sa.false()


class StoredFile(Base):
    """A file that fully arrived and matched its SHA-256: what operations refer to."""

    __tablename__ = "sync_stored_files"

    id: Mapped[IntPK]
    sha256: Mapped[str] = mapped_column(sa.String(SHA256_HEX), unique=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    content_type: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[CreatedAt]

    def __repr__(self) -> str:
        return f"<StoredFile {self.sha256[:12]} {self.size}B>"

