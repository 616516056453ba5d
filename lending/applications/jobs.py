"""Scheduled work on applications: retry decisions a registry outage held up, and expire what
waits too long on the farmer or on a field visit.

Both run in chunks (a commit per chunk, the lease renewed), each application in its own
savepoint so that one that fails is logged and skipped while the rest of the chunk commits.
Running a job twice is harmless: each picks only what is still due.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from core import audit
from core.db import db, savepoint, utcnow
from core.jobs import Job, JobRun, register
from lending.applications import pipeline, states
from lending.applications.models import Application, ReviewAction

log = logging.getLogger(__name__)
CHUNK = 10  # a retry may wait on the registries: small chunks keep each commit short


def retry_decisions(run: JobRun) -> int:
    """Decide again the applications referred because a registry was unavailable."""
    now = utcnow()
    ids = list(db.session.scalars(pipeline.due_for_retry(now)))
    db.session.rollback()
    done = 0
    for chunk in run.chunks(ids, CHUNK):
        for application_id in chunk:
            done += _retry_one(application_id, now)
    log.info("decisions retried", extra={"job": run.name, "due": len(ids), "decided": done})
    return done


def _retry_one(application_id: int, now: object) -> int:
    session = db.session
    application = session.get(Application, application_id)
    if application is None or application.state != states.UNDER_REVIEW \
            or application.retry_at is None or application.retry_at > now:  # type: ignore[operator]
        return 0
    try:
        with savepoint(session):
            pipeline.redecide(session, application, actor="system")
    except pipeline.ConsentRequired:
        application.retry_at = None  # the farmer withdrew a consent: no more queries
        audit.record(session, "application.retry_stopped", application, actor="system",
                     summary={"why": "consent"})
        return 0
    except Exception:  # one case must not stop the others; it stays due and is logged
        log.exception("decision retry failed",
                      extra={"application_id": str(application.public_id)})
        return 0
    return 1


EXPIRING = (states.DRAFT, states.AWAITING_FIELD_CHECK)


def _stale(cutoff: datetime) -> sa.Select[Any]:
    """Applications untouched since ``cutoff``: a draft or a wait for a field visit since its
    last change of state; a wait for the farmer's answer since the bank's latest question."""
    asked = (sa.select(sa.func.max(ReviewAction.created_at))
             .where(ReviewAction.application_id == Application.id,
                    ReviewAction.action == "request_information")
             .scalar_subquery())
    waiting_on_farmer = sa.and_(Application.state == states.UNDER_REVIEW,
                                Application.info_requested.is_(True),
                                sa.func.coalesce(asked, Application.state_changed_at) < cutoff)
    idle = sa.and_(Application.state.in_(EXPIRING), Application.state_changed_at < cutoff)
    return sa.select(Application).where(sa.or_(idle, waiting_on_farmer))


def expire_stale(run: JobRun) -> int:
    """Expire drafts, cases waiting for a field visit, and cases waiting for the farmer's
    answer, untouched for ``NONGDAI_APPLICATION_EXPIRY_DAYS``. Cases waiting on the bank's
    own review never expire on their own."""
    days = int(current_app.config["NONGDAI_APPLICATION_EXPIRY_DAYS"])
    cutoff = utcnow() - timedelta(days=days)
    ids = list(db.session.scalars(
        _stale(cutoff).with_only_columns(Application.id).order_by(Application.id)))
    db.session.rollback()
    expired = 0
    for chunk in run.chunks(ids, 100):
        for application in db.session.scalars(_stale(cutoff).where(Application.id.in_(chunk))):
            pipeline.expire(db.session, application)
            expired += 1
    log.info("applications expired", extra={"job": run.name, "expired": expired})
    return expired


def init_app(app: Flask) -> None:
    register(app, Job("applications.retry_decisions", retry_decisions, {"minutes": 5}))
    register(app, Job("applications.expire", expire_stale, {"hours": 6}))
