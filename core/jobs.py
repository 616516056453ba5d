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

A *daily* job (``Job(..., daily=True)``) runs once per business date. Each finished date is a
:class:`JobDay` row, written in the same transaction as the date's last chunk. A tick (or
:func:`run` without a date) catches up: it runs every date after the last finished one through
today, oldest first, each date a :class:`JobRun` of its own, all under one lease; the first
run ever does today only (or starts at ``Job.start`` / ``NONGDAI_JOBS_START``). A failure
stops the catch-up at that date: later dates wait for the next tick. ``run(name, on=D)`` runs
``D`` again explicitly (the job's idempotence makes that harmless; the row counts the runs).
While a job runs for a date, :func:`business_date` returns that date in the job's context.
See docs/operations.md.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa
from flask import Flask, current_app, g, has_app_context
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, IntPK, UTCDateTime, db, side_transaction, table, utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_CHUNK = 500
DAILY_TICK = {"minutes": 15}  # a daily job's default trigger: catch up every quarter hour
_RUN_DATE = "nongdai_job_business_date"  # ``g`` key: the date the job in this context runs for


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


class JobDay(Base):
    """One business date of a daily job: its outcome (``ok`` or ``failed``), when its last run
    started and finished, the chunks it committed, and how many times it ran."""

    __tablename__ = "job_days"
    __table_args__ = (sa.UniqueConstraint("name", "business_date"),)

    id: Mapped[IntPK]
    name: Mapped[str] = mapped_column(sa.String(60))
    business_date: Mapped[date] = mapped_column(sa.Date)
    status: Mapped[str] = mapped_column(sa.String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    chunks: Mapped[int] = mapped_column(default=0)
    runs: Mapped[int] = mapped_column(default=0)


class LeaseLost(RuntimeError):
    """Another runner took the lease over (this one overran it): stop before the next chunk."""


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
        """Commit the work so far and renew the lease (:class:`LeaseLost` if it was taken)."""
        db.session.commit()
        self.chunks_committed += 1
        log.info("job chunk committed", extra={"job": self.name, "chunk": self.chunks_committed,
                                               "business_date": self.business_date.isoformat()})
        if not _renew(self.name, self.lease_seconds):
            raise LeaseLost(f"job {self.name}: the lease was taken over by another runner")


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[JobRun], Any]
    trigger: dict[str, Any] = field(default_factory=dict)  # APScheduler interval kwargs
    lease_seconds: int = 600
    daily: bool = False  # once per business date, missed dates caught up in order
    start: date | None = None  # a daily job's first date (default: the day it first runs)


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


def _renew(name: str, seconds: int) -> bool:
    """Extend this runner's lease; False when it is no longer this runner's."""
    leases = table(JobLease)
    with side_transaction() as conn:
        renewed = conn.execute(
            sa.update(leases).where(leases.c.name == name, leases.c.holder == _holder())
            .values(leased_until=utcnow() + timedelta(seconds=seconds)))
        return renewed.rowcount == 1


def _release(name: str, status: str, job_run: JobRun | None) -> None:
    leases = table(JobLease)
    values: dict[str, Any] = {"holder": None, "leased_until": None,
                              "last_finished_at": utcnow(), "last_status": status}
    if job_run is not None:
        values.update(last_business_date=job_run.business_date,
                      last_chunks=job_run.chunks_committed)
    with side_transaction() as conn:
        conn.execute(sa.update(leases).where(leases.c.name == name, leases.c.holder == _holder())
                     .values(**values))


def business_date(at: datetime | None = None) -> date:
    """The bank's calendar day at ``at`` (default now), in ``NONGDAI_BUSINESS_TIMEZONE``.

    ``NONGDAI_BUSINESS_DATE`` (``YYYY-MM-DD``) pins "today" for tests and the season
    simulation: the business-date clock. Inside a job's run, "today" is the date the job runs
    for (a caught-up or re-run day). Neither applies when ``at`` is given.
    """
    if at is None and has_app_context() and g.get(_RUN_DATE) is not None:
        return g.get(_RUN_DATE)
    pinned = current_app.config.get("NONGDAI_BUSINESS_DATE")
    if at is None and pinned:
        return pinned if isinstance(pinned, date) else date.fromisoformat(str(pinned))
    zone = ZoneInfo(str(current_app.config.get("NONGDAI_BUSINESS_TIMEZONE", "Asia/Shanghai")))
    return (at or utcnow()).astimezone(zone).date()


def _registered(app: Flask) -> dict[str, Job]:
    jobs: dict[str, Job] = app.extensions.get("nongdai_jobs", {})
    return jobs


def run(name: str, on: date | None = None) -> str:
    """Run one registered job now for business date ``on`` (default today). Returns its
    status (``ok``, or ``skipped`` when another runner holds the lease); re-raises a failure.

    A daily job without ``on`` catches up every date it missed, oldest first; with ``on`` it
    runs that date again. The job gets an application context of its own (its own session
    and ``g``), as under the scheduler, whatever context the caller (the CLI, a test) is in.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    job = _registered(app)[name]
    with app.app_context():
        if not _acquire(name, job.lease_seconds):
            log.info("job skipped: lease held elsewhere", extra={"job": name})
            return "skipped"
        status, last = "failed", None
        try:
            for day in _dates(job, on):
                last = JobRun(name, day, job.lease_seconds)
                _run_day(job, last)
            status = "ok"
        finally:
            db.session.remove()
            _release(name, status, last)
    return status


def _dates(job: Job, on: date | None) -> list[date]:
    """The dates a run works through: ``on``; today; or a daily job's missed dates."""
    if on is not None:
        return [on]
    today = business_date()
    if not job.daily:
        return [today]
    days = pending(job.name, today, start=job.start or _configured_start())
    db.session.rollback()  # end the read: the dates run in transactions of their own
    if len(days) > 1:
        log.info("job catching up", extra={"job": job.name, "days": len(days),
                                           "first": days[0].isoformat(),
                                           "through": today.isoformat()})
    return days


def _configured_start() -> date | None:
    value = current_app.config.get("NONGDAI_JOBS_START")
    if not value:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def pending(name: str, today: date, start: date | None = None) -> list[date]:
    """A daily job's dates still to run through ``today``: every date after its last finished
    one; before it ever finished a date, from its first attempt (or ``start``, or today)."""
    rows = table(JobDay)
    last_ok = db.session.scalar(sa.select(sa.func.max(rows.c.business_date))
                                .where(rows.c.name == name, rows.c.status == "ok"))
    if last_ok is not None:
        first = last_ok + timedelta(days=1)
    else:
        tried = db.session.scalar(sa.select(sa.func.min(rows.c.business_date))
                                  .where(rows.c.name == name))
        first = min(d for d in (tried, start, today) if d is not None)
    return [first + timedelta(days=n) for n in range((today - first).days + 1)]


def _run_day(job: Job, job_run: JobRun) -> None:
    """Run ``job`` for one date: its chunks commit as they go, the rest (and a daily job's
    :class:`JobDay`) with the last commit. A failure rolls back the open chunk and re-raises."""
    day, started = job_run.business_date.isoformat(), utcnow()
    log.info("job started", extra={"job": job.name, "business_date": day})
    if not _renew(job.name, job.lease_seconds):
        raise LeaseLost(f"job {job.name}: the lease was taken over by another runner")
    setattr(g, _RUN_DATE, job_run.business_date)
    try:
        job.func(job_run)
        if job.daily:
            _mark_day(job_run, "ok", started, job_run.chunks_committed + 1)
        job_run.commit()
    except Exception as exc:
        db.session.rollback()
        log.exception("job failed", extra={"job": job.name, "business_date": day,
                                           "chunks": job_run.chunks_committed})
        if job.daily and not isinstance(exc, LeaseLost):
            _mark_failed(job_run, started)
        raise
    finally:
        g.pop(_RUN_DATE, None)
    log.info("job finished", extra={"job": job.name, "business_date": day,
                                    "chunks": job_run.chunks_committed})


def _mark_day(job_run: JobRun, status: str, started: datetime, chunks: int) -> None:
    row = db.session.scalar(sa.select(JobDay).where(JobDay.name == job_run.name,
                                                    JobDay.business_date == job_run.business_date))
    if row is None:
        row = JobDay(name=job_run.name, business_date=job_run.business_date, runs=0)
        db.session.add(row)
    row.status, row.started_at, row.finished_at = status, started, utcnow()
    row.chunks = chunks
    row.runs = (row.runs or 0) + 1


def _mark_failed(job_run: JobRun, started: datetime) -> None:
    """Record the failed date, so the next catch-up starts there; never hide the failure."""
    try:
        _mark_day(job_run, "failed", started, job_run.chunks_committed)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("job failure not recorded", extra={"job": job_run.name})


def days(name: str, limit: int = 10) -> list[JobDay]:
    """A daily job's latest dates, newest first (for ``flask jobs list`` and tests)."""
    return list(db.session.scalars(sa.select(JobDay).where(JobDay.name == name)
                                   .order_by(JobDay.business_date.desc()).limit(limit)))


jobs_cli = AppGroup("jobs", help="List and run scheduled jobs.")


@jobs_cli.command("list")
def _list() -> None:
    for job in _registered(current_app).values():
        line = f"{job.name}\t{job.trigger or (DAILY_TICK if job.daily else {})}"
        if job.daily:
            latest = days(job.name, limit=1)
            done = f"{latest[0].business_date} {latest[0].status}" if latest else "never run"
            line += f"\tdaily, last date: {done}"
        click.echo(line)


@jobs_cli.command("run")
@click.argument("name")
@click.option("--date", "on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Business date to run (again) for. Default: today, and for a daily job "
                   "every date it missed before today.")
def _run(name: str, on: datetime | None) -> None:
    if name not in _registered(current_app):
        raise click.BadParameter(f"no job named {name!r}")
    click.echo(f"{name}: {run(name, on.date() if on else None)}")


def add_jobs(app: Flask, scheduler: Any) -> Any:
    """Schedule every registered job on an APScheduler ``scheduler``; each tick runs it through
    :func:`run` (lease, own context and transaction). Used by ``flask scheduler`` and by the
    embedded default's in-process scheduler. A daily job also ticks as the scheduler starts,
    so a scheduler back from downtime catches up at once."""
    for job in _registered(app).values():
        def tick(name: str = job.name) -> None:
            with app.app_context():
                run(name)
        extra = {"next_run_time": datetime.now(UTC)} if job.daily else {}
        scheduler.add_job(tick, "interval", id=job.name, coalesce=True, max_instances=1,
                          **(job.trigger or (DAILY_TICK if job.daily else {})), **extra)
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
