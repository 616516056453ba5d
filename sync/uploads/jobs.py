"""Housekeeping: uploads abandoned half-way free their bytes."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, current_app

from core import jobs
from core.db import db, table, utcnow
from sync.uploads.models import Upload
from sync.uploads.store import current_store

log = logging.getLogger(__name__)


def expire_abandoned(run: jobs.JobRun) -> int:
    """Delete unfinished uploads older than ``NONGDAI_SYNC_MAX_OFFLINE_DAYS`` and their partial
    bytes (the phone still holds the photo: it can start a new upload). The bytes go first: a
    row whose bytes are gone is answered 404 and forgotten by the next request for it anyway."""
    days = int(current_app.config["NONGDAI_SYNC_MAX_OFFLINE_DAYS"])
    uploads = table(Upload)
    stale = db.session.execute(sa.select(uploads.c.id, uploads.c.public_id).where(
        uploads.c.completed_at.is_(None),
        uploads.c.created_at < utcnow() - timedelta(days=days))).all()
    store = current_store()
    for chunk in run.chunks(stale):
        for row in chunk:
            store.discard(row.public_id.hex)
        db.session.execute(sa.delete(uploads).where(uploads.c.id.in_([r.id for r in chunk])))
    log.info("abandoned uploads expired", extra={"expired": len(stale)})
    return len(stale)


def init_app(app: Flask) -> None:
    jobs.register(app, jobs.Job("sync.uploads.expire", expire_abandoned, {"hours": 6}))
