"""Agents: coordinators' work: operations registered with sync, field checks, the device client.

``init_app`` teaches sync the operation types of docs/sync-protocol.md §6 and publishes the
``visit`` kind to devices. Parcel and post-loan visits are *buffered* (the push's fast path:
read in ``prepare`` once per batch, written through the engine's buffers); the types that
write rows other modules own (farmers, consents, assignments, a farmer's identity) are
*immediate* and go through those modules' services.

Nothing is imported here at module level: :mod:`agents.client` (the device client) must be
importable without Flask or the server, so the server's parts are imported in ``init_app``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Register agents' catalog, operations and feed with sync."""
    from agents import (  # noqa: PLC0415
        assignments,
        checks,
        consents,
        farmers,
        feed,
        visits,
    )
    from agents.models import FieldVisit  # noqa: PLC0415
    from core.i18n import register_catalog  # noqa: PLC0415
    from sync import registry  # noqa: PLC0415
    from sync.feed import changes  # noqa: PLC0415

    register_catalog(app, Path(__file__).parent / "translations")
    op = registry.register_operation
    op(app, "register_farmer", farmers.register_farmer, immediate=True)
    op(app, "update_farmer", farmers.update_farmer, immediate=True)
    op(app, "identity_check", checks.identity_check, immediate=True)
    op(app, "parcel_visit", visits.apply_parcel_visit, prepare=visits.prepare)
    op(app, "post_loan_visit", visits.apply_post_loan_visit, prepare=visits.prepare)
    op(app, "assignment_status", assignments.assignment_status, immediate=True)
    op(app, "record_consent", consents.record_consent, immediate=True)
    registry.register_resolver(app, farmers.KIND, farmers.resolve)
    farmers.track_edits()  # staff's edits move a farmer's version: devices' edits then conflict
    registry.register_feed(app, feed.KIND, feed.load, feed.snapshot)
    changes.watch(FieldVisit, feed.KIND)  # visits written through the ORM (identity checks)
