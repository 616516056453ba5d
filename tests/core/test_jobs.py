"""Jobs (core.jobs): leases, business dates, per-chunk commits and the failure path."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core import jobs
from core.db import utcnow
from core.places.models import County


def _register(app: Any, name: str, func: Any) -> None:
    jobs.register(app, jobs.Job(name, func, {"minutes": 5}))


def _register_counter(app: Any) -> list[date]:
    calls: list[date] = []
    _register(app, "test.count", lambda run: calls.append(run.business_date))
    return calls


def _lease(session: Any, name: str) -> jobs.JobLease:
    session.expire_all()
    return session.get(jobs.JobLease, name)


def test_a_job_runs_for_today_and_records_its_outcome(app: Any, session: Any) -> None:
    calls = _register_counter(app)

    assert jobs.run("test.count") == "ok"

    assert calls == [jobs.business_date()]
    lease = _lease(session, "test.count")
    assert lease.last_status == "ok"
    assert lease.holder is None
    assert lease.last_business_date == calls[0]


def test_a_job_runs_for_the_business_date_given(app: Any, session: Any) -> None:
    calls = _register_counter(app)

    assert jobs.run("test.count", date(2026, 10, 1)) == "ok"

    assert calls == [date(2026, 10, 1)]
    assert _lease(session, "test.count").last_business_date == date(2026, 10, 1)


def test_the_business_date_is_the_banks_calendar_day(session: Any) -> None:
    late_evening_utc = datetime(2026, 11, 29, 17, 30, tzinfo=UTC)  # 01:30 on the 30th in Beijing

    assert jobs.business_date(late_evening_utc) == date(2026, 11, 30)


def test_a_held_lease_skips_the_run(app: Any, session: Any) -> None:
    calls = _register_counter(app)
    session.add(jobs.JobLease(name="test.count", holder="other-host:1",
                              leased_until=utcnow() + timedelta(minutes=5)))
    session.commit()

    assert jobs.run("test.count") == "skipped"
    assert calls == []


def test_an_expired_lease_is_taken_over(app: Any, session: Any) -> None:
    calls = _register_counter(app)
    session.add(jobs.JobLease(name="test.count", holder="dead-host:1",
                              leased_until=utcnow() - timedelta(seconds=1)))
    session.commit()

    assert jobs.run("test.count") == "ok"
    assert len(calls) == 1


def _county_codes(session: Any) -> list[str]:
    session.rollback()
    return list(session.scalars(sa.select(County.code).order_by(County.code)))


def _make_counties(codes: list[str], fail_at: str | None = None) -> Any:
    """A job that adds the counties not there yet, two per chunk, failing at ``fail_at``:
    idempotent, so a second run finishes what a failed one left."""
    def job(run: jobs.JobRun) -> None:
        from core.db import db  # noqa: PLC0415 - the job's own session, as the scheduler runs it

        done = set(db.session.scalars(sa.select(County.code)))
        for chunk in run.chunks([code for code in codes if code not in done], size=2):
            for code in chunk:
                db.session.add(County(code=code, name=f"县{code}"))
                db.session.flush()
                if code == fail_at:
                    raise RuntimeError("the registry went away")
    return job


def test_a_job_commits_per_chunk(app: Any, session: Any) -> None:
    codes = [f"33050{n}" for n in range(5)]
    _register(app, "test.chunks", _make_counties(codes))

    assert jobs.run("test.chunks") == "ok"

    assert _county_codes(session) == codes
    assert _lease(session, "test.chunks").last_chunks == 4  # 3 chunks, then the closing commit


def test_a_failed_job_keeps_its_committed_chunks_and_releases_the_lease(
        app: Any, session: Any, caplog: pytest.LogCaptureFixture) -> None:
    codes = [f"33050{n}" for n in range(5)]
    _register(app, "test.chunks", _make_counties(codes, fail_at="330503"))

    with pytest.raises(RuntimeError, match="registry"):
        jobs.run("test.chunks")

    assert _county_codes(session) == ["330500", "330501"]  # chunk 2 rolled back, chunk 1 stays
    lease = _lease(session, "test.chunks")
    assert lease.last_status == "failed"
    assert lease.holder is None
    assert lease.leased_until is None
    assert lease.last_chunks == 1
    assert "job failed" in caplog.text
    session.commit()  # end the test's read before the job runs again
    _register(app, "test.chunks", _make_counties(codes))
    assert jobs.run("test.chunks") == "ok"  # the lease is free; the rerun finishes the rest
    assert _county_codes(session) == codes


def test_cli_lists_and_runs_jobs(app: Any, runner: Any, session: Any) -> None:
    calls = _register_counter(app)

    listed = runner.invoke(args=["jobs", "list"])
    assert "test.count" in listed.output
    ran = runner.invoke(args=["jobs", "run", "test.count", "--date", "2026-09-30"])
    assert ran.exit_code == 0, ran.output
    assert "test.count: ok" in ran.output
    assert calls == [date(2026, 9, 30)]
    assert runner.invoke(args=["jobs", "run", "nope"]).exit_code != 0
    assert runner.invoke(args=["jobs", "run", "test.count", "--date", "30/9"]).exit_code != 0
    assert session.scalar(sa.select(sa.func.count()).select_from(jobs.JobLease)) == 1
