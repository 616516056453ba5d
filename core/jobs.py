"""Scheduled jobs: domains register plain functions; one scheduler process runs them.

A job is a function of a :class:`JobRun`: it gets the business date it works for (the bank's
calendar day in ``NONGDAI_BUSINESS_TIMEZONE``, or the date given on the command line, so a
missed day can be run again) and commits per chunk through :meth:`JobRun.chunks`, so a long
job holds no lock for long and a failure loses only the chunk it was in. Whatever the function
does after its last chunk commits at its end. A lease row in the database stops a second
scheduler (a deploy overlap, a mistaken second process) from running it twice at once; every
chunk renews the lease. A failed run rolls back its open chunk, records ``failed`` and releases
the lease. Jobs must be idempotent for a business date: running one twice for a day does
nothing the second time. ``flask --app app jobs list|run NAME [--date YYYY-MM-DD]`` and
``flask --app app scheduler``.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, db, side_transaction, table, utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_CHUNK = 500


class JobLease(Base):
    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(sa.String(60), primary_key=True)
    holder: Mapped[str | None] = mapped_column(sa.String(120), nullable=True)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    last_business_date: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    last_chunks: Mapped[int | None] = mapped_column(nullable=True)


@dataclass
class JobRun:
    """One run of a job: the business date it works for, and its per-chunk commits."""

    name: str
    business_date: date
    lease_seconds: int
    chunks_committed: int = 0

    def chunks(self, items: Iterable[T], size: int = DEFAULT_CHUNK) -> Iterator[list[T]]:
        """Yield ``items`` ``size`` at a time; commit after each chunk the caller processed.

        Pass ids, not ORM objects: each chunk reloads what it changes in its own transaction.
        """
        iterator = iter(items)
        while chunk := list(itertools.islice(iterator, size)):
            yield chunk
            self.commit()

    def commit(self) -> None:
        """Commit the work so far and renew the lease."""
        db.session.commit()
        self.chunks_committed += 1
        _renew(self.name, self.lease_seconds)


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[JobRun], Any]
    trigger: dict[str, Any] = field(default_factory=dict)  # APScheduler interval/cron kwargs
    lease_seconds: int = 600


def register(app: Flask, job: Job) -> None:
    app.extensions.setdefault("nongdai_jobs", {})[job.name] = job


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _acquire(name: str, seconds: int) -> bool:
    now = utcnow()
    leases = table(JobLease)
    with side_transaction() as conn:
        exists = conn.execute(sa.select(leases.c.name).where(leases.c.name == name)).first()
        if exists is None:
            conn.execute(sa.insert(leases).values(name=name))
        taken = conn.execute(
            sa.update(leases)
            .where(leases.c.name == name,
                   sa.or_(leases.c.leased_until.is_(None), leases.c.leased_until < now))
            .values(holder=_holder(), leased_until=now + timedelta(seconds=seconds),
                    last_started_at=now)
        )
        return taken.rowcount == 1


def _renew(name: str, seconds: int) -> None:
    leases = table(JobLease)
    with side_transaction() as conn:
        conn.execute(sa.update(leases).where(leases.c.name == name, leases.c.holder == _holder())
                     .values(leased_until=utcnow() + timedelta(seconds=seconds)))


def _release(name: str, status: str, job_run: JobRun) -> None:
    leases = table(JobLease)
    with side_transaction() as conn:
        conn.execute(sa.update(leases).where(leases.c.name == name, leases.c.holder == _holder())
                     .values(holder=None, leased_until=None, last_finished_at=utcnow(),
                             last_status=status, last_business_date=job_run.business_date,
                             last_chunks=job_run.chunks_committed))


def business_date(at: datetime | None = None) -> date:
    """The bank's calendar day at ``at`` (default now), in ``NONGDAI_BUSINESS_TIMEZONE``.

    ``NONGDAI_BUSINESS_DATE`` (``YYYY-MM-DD``) pins "today" for tests and the season
    simulation: the business-date clock. It never applies when ``at`` is given.
    """
    pinned = current_app.config.get("NONGDAI_BUSINESS_DATE")
    if at is None and pinned:
        return pinned if isinstance(pinned, date) else date.fromisoformat(str(pinned))
    zone = ZoneInfo(str(current_app.config.get("NONGDAI_BUSINESS_TIMEZONE", "Asia/Shanghai")))
    return (at or utcnow()).astimezone(zone).date()


def run(name: str, on: date | None = None) -> str:
    """Run one registered job now for business date ``on`` (default today). Returns its
    status; re-raises a failure.

    The job gets an application context of its own (its own session and ``g``), as under the
    scheduler, whatever context the caller (the CLI, a test) is in.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    job: Job = app.extensions.get("nongdai_jobs", {})[name]
    with app.app_context():
        if not _acquire(name, job.lease_seconds):
            log.info("job skipped: lease held elsewhere", extra={"job": name})
            return "skipped"
        job_run = JobRun(name, on or business_date(), job.lease_seconds)
        status = "failed"
        try:
            job.func(job_run)
            job_run.commit()
            status = "ok"
        except Exception:
            db.session.rollback()
            log.exception("job failed", extra={"job": name, "chunks": job_run.chunks_committed})
            raise
        finally:
            db.session.remove()
            _release(name, status, job_run)
    return status


jobs_cli = AppGroup("jobs", help="List and run scheduled jobs.")


@jobs_cli.command("list")
def _list() -> None:
    for job in current_app.extensions.get("nongdai_jobs", {}).values():
        click.echo(f"{job.name}\t{job.trigger}")


@jobs_cli.command("run")
@click.argument("name")
@click.option("--date", "on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Business date to run for (default: today in NONGDAI_BUSINESS_TIMEZONE).")
def _run(name: str, on: datetime | None) -> None:
    if name not in current_app.extensions.get("nongdai_jobs", {}):
        raise click.BadParameter(f"no job named {name!r}")
    click.echo(f"{name}: {run(name, on.date() if on else None)}")


def add_jobs(app: Flask, scheduler: Any) -> Any:
    """Schedule every registered job on an APScheduler ``scheduler``; each tick runs it through
    :func:`run` (lease, own context and transaction). Used by ``flask scheduler`` and by the
    embedded default's in-process scheduler."""
    for job in app.extensions.get("nongdai_jobs", {}).values():
        def tick(name: str = job.name) -> None:
            with app.app_context():
                run(name)
        scheduler.add_job(tick, "interval", id=job.name, coalesce=True, max_instances=1,
                          **job.trigger)
    return scheduler


@click.command("scheduler", help="Run the job scheduler (one process per deployment).")
@with_appcontext
def scheduler_command() -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler  # noqa: PLC0415

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    sched = add_jobs(app, BlockingScheduler(timezone="UTC"))
    click.echo(f"scheduler: {len(sched.get_jobs())} jobs")
    sched.start()


def init_app(app: Flask) -> None:
    app.cli.add_command(jobs_cli)
    app.cli.add_command(scheduler_command)
