"""Scheduled jobs: domains register plain functions; one scheduler process runs them.

A job runs in an app context and its own transaction, holding a lease row in the database so
that a second scheduler (a deploy overlap, a mistaken second process) never runs it twice at
once. ``flask --app app jobs list|run NAME`` and ``flask --app app scheduler``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, db, side_transaction, utcnow

log = logging.getLogger(__name__)


class JobLease(Base):
    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(sa.String(60), primary_key=True)
    holder: Mapped[str | None] = mapped_column(sa.String(120), nullable=True)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[], Any]
    trigger: dict[str, Any] = field(default_factory=dict)  # APScheduler interval/cron kwargs
    lease_seconds: int = 600


def register(app: Flask, job: Job) -> None:
    app.extensions.setdefault("nongdai_jobs", {})[job.name] = job


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _acquire(name: str, seconds: int) -> bool:
    now = utcnow()
    table = JobLease.__table__
    with side_transaction() as conn:
        exists = conn.execute(sa.select(table.c.name).where(table.c.name == name)).first()
        if exists is None:
            conn.execute(sa.insert(table).values(name=name))
        taken = conn.execute(
            sa.update(table)
            .where(table.c.name == name,
                   sa.or_(table.c.leased_until.is_(None), table.c.leased_until < now))
            .values(holder=_holder(), leased_until=now + timedelta(seconds=seconds),
                    last_started_at=now)
        )
        return taken.rowcount == 1


def _release(name: str, status: str) -> None:
    table = JobLease.__table__
    with side_transaction() as conn:
        conn.execute(sa.update(table).where(table.c.name == name, table.c.holder == _holder())
                     .values(holder=None, leased_until=None, last_finished_at=utcnow(),
                             last_status=status))


def run(name: str) -> str:
    """Run one registered job now (inside an app context). Returns its status."""
    job: Job = current_app.extensions.get("nongdai_jobs", {})[name]
    if not _acquire(name, job.lease_seconds):
        log.info("job skipped: lease held elsewhere", extra={"job": name})
        return "skipped"
    status = "failed"
    try:
        job.func()
        db.session.commit()
        status = "ok"
    except Exception:
        db.session.rollback()
        log.exception("job failed", extra={"job": name})
        raise
    finally:
        db.session.remove()
        _release(name, status)
    return status


jobs_cli = click.Group("jobs", help="List and run scheduled jobs.")


@jobs_cli.command("list")
def _list() -> None:
    for job in current_app.extensions.get("nongdai_jobs", {}).values():
        click.echo(f"{job.name}\t{job.trigger}")


@jobs_cli.command("run")
@click.argument("name")
def _run(name: str) -> None:
    if name not in current_app.extensions.get("nongdai_jobs", {}):
        raise click.BadParameter(f"no job named {name!r}")
    click.echo(f"{name}: {run(name)}")


@click.command("scheduler", help="Run the job scheduler (one process per deployment).")
def scheduler_command() -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler  # noqa: PLC0415

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    sched = BlockingScheduler(timezone="UTC")
    for job in app.extensions.get("nongdai_jobs", {}).values():
        def tick(name: str = job.name) -> None:
            with app.app_context():
                run(name)
        sched.add_job(tick, "interval", id=job.name, coalesce=True, max_instances=1,
                      **job.trigger)
    click.echo(f"scheduler: {len(sched.get_jobs())} jobs")
    sched.start()


def init_app(app: Flask) -> None:
    app.cli.add_command(jobs_cli)
    app.cli.add_command(scheduler_command)
