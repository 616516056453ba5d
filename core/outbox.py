"""Outgoing messages (SMS) written in the request's transaction, sent after it commits.

``queue_sms`` adds a row and asks :func:`core.lifecycle.after_response` to deliver it right away;
the ``outbox.dispatch`` job retries what is still pending, with exponential backoff. Each step
of a delivery is committed on its own connection, and a message is claimed (a lease on
``next_attempt_at``) before it is sent, so the request and the job never send it twice.
A delivered message keeps no body (``[delivered]``) and only a masked recipient, so one-time
codes do not stay at rest.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_request_context
from sqlalchemy.orm import Mapped, mapped_column

from core import sms
from core.db import DbSession, Model, Timestamp, side_transaction, table, utcnow
from core.jobs import Job, JobRun, register
from core.lifecycle import after_response

log = logging.getLogger(__name__)

DELIVERED = "[delivered]"
UNDELIVERED = "[undelivered]"


class OutboxMessage(Model):
    __tablename__ = "outbox_messages"
    __table_args__ = (sa.Index("ix_outbox_messages_due", "status", "next_attempt_at"),)

    channel: Mapped[str] = mapped_column(sa.String(10), default="sms")
    recipient: Mapped[str] = mapped_column(sa.String(20))
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(10), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    expires_at: Mapped[Timestamp | None] = mapped_column(nullable=True)  # useless after this
    sent_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)


def queue_sms(session: DbSession, phone: str, body: str, *,
              expires_at: datetime | None = None) -> OutboxMessage:
    """Add an SMS to the outbox (flushed); it is sent once the transaction commits.

    In a request the message is written already claimed by this process (one attempt, leased
    for ``NONGDAI_OUTBOX_LEASE_SECONDS``) and sent right after the response, with no commit
    of its own before the send: should the process die first, the lease runs out and the
    ``outbox.dispatch`` job sends it.
    """
    now = utcnow()
    leased = has_request_context()
    message = OutboxMessage(channel="sms", recipient=phone, body=body, expires_at=expires_at,
                            attempts=1 if leased else 0,
                            next_attempt_at=now + _lease() if leased else now)
    session.add(message)
    session.flush()
    if leased:
        claimed = _Claimed(message.public_id, phone, body, 1, expires_at)
        message_id = message.id
        after_response(lambda: _deliver(message_id, claimed, utcnow()))
    return message


@dataclass(frozen=True)
class _Claimed:
    """A message this process holds the lease of: what sending it needs."""

    public_id: uuid.UUID
    recipient: str
    body: str
    attempts: int
    expires_at: datetime | None


def _lease() -> timedelta:
    return timedelta(seconds=int(current_app.config["NONGDAI_OUTBOX_LEASE_SECONDS"]))


_table = table(OutboxMessage)


def _claim(message_id: int, now: datetime) -> Any:
    """Take a lease on a due message; ``None`` when someone else has it or it is done."""
    lease = _lease()
    with side_transaction() as conn:
        return conn.execute(
            sa.update(_table)
            .where(_table.c.id == message_id, _table.c.status == "pending",
                   _table.c.next_attempt_at <= now)
            .values(attempts=_table.c.attempts + 1, next_attempt_at=now + lease)
            .returning(_table.c.public_id, _table.c.recipient, _table.c.body,
                       _table.c.attempts, _table.c.expires_at)
        ).first()


def _finish(message_id: int, **values: Any) -> None:
    with side_transaction() as conn:
        conn.execute(sa.update(_table).where(_table.c.id == message_id).values(**values))


def _backoff(attempts: int) -> timedelta:
    cfg = current_app.config
    base = int(cfg["NONGDAI_OUTBOX_BACKOFF_SECONDS"])
    return timedelta(seconds=min(base * 2 ** max(0, attempts - 1),
                                 int(cfg["NONGDAI_OUTBOX_BACKOFF_MAX_SECONDS"])))


def _error_text(exc: Exception, body: str) -> str:
    text = f"{type(exc).__name__}: {exc}".replace(body, "[body]")
    return text[:300]


def _failed(message_id: int, row: Any, exc: Exception, now: datetime) -> str:
    final = row.attempts >= int(current_app.config["NONGDAI_OUTBOX_MAX_ATTEMPTS"])
    if row.expires_at is not None and row.expires_at <= now + _backoff(row.attempts):
        final = True
    values: dict[str, Any] = {"last_error": _error_text(exc, row.body)}
    if final:
        values.update(status="failed", body=UNDELIVERED, recipient=sms.mask_phone(row.recipient))
    else:
        values.update(next_attempt_at=now + _backoff(row.attempts))
    _finish(message_id, **values)
    log.warning("sms not sent", extra={"message_id": str(row.public_id), "final": final,
                                       "to": sms.mask_phone(row.recipient),
                                       "error": type(exc).__name__})
    return "failed" if final else "pending"


def dispatch(message_id: int) -> str:
    """Try to deliver one message now. Returns its status afterwards (or ``"skipped"``)."""
    now = utcnow()
    row = _claim(message_id, now)
    if row is None:
        return "skipped"
    return _deliver(message_id, row, now)


def _deliver(message_id: int, row: Any, now: datetime) -> str:
    """Send a message whose lease this process holds; record the outcome."""
    if row.expires_at is not None and row.expires_at <= now:
        return _failed(message_id, row, TimeoutError("expired before delivery"), now)
    try:
        sms.sender().send(row.recipient, row.body)
    except Exception as exc:  # any gateway failure: retry later with backoff
        return _failed(message_id, row, exc, now)
    _finish(message_id, status="sent", sent_at=utcnow(), body=DELIVERED,
            recipient=sms.mask_phone(row.recipient), last_error=None)
    log.info("sms sent", extra={"message_id": str(row.public_id),
                                "to": sms.mask_phone(row.recipient)})
    return "sent"


def dispatch_due(_run: JobRun | None = None, batch: int = 100) -> int:
    """Job ``outbox.dispatch``: deliver pending messages whose time has come.

    Each delivery commits on its own connection (see :func:`dispatch`), so the job's own
    transaction holds nothing.
    """
    with side_transaction() as conn:
        ids = conn.scalars(
            sa.select(_table.c.id)
            .where(_table.c.status == "pending", _table.c.next_attempt_at <= utcnow())
            .order_by(_table.c.next_attempt_at).limit(batch)
        ).all()
    return sum(dispatch(message_id) == "sent" for message_id in ids)


def init_app(app: Flask) -> None:
    register(app, Job("outbox.dispatch", dispatch_due, {"seconds": 30}))
