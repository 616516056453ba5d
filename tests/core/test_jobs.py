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


# --- daily jobs: one run per business date, missed dates caught up in order -------------------

MARCH_1 = date(2027, 3, 1)


def _today(app: Any, day: date) -> None:
    app.config["NONGDAI_BUSINESS_DATE"] = day.isoformat()


def _register_daily(app: Any, name: str = "test.daily", *, fail_on: set[date] | None = None,
                    start: date | None = None) -> list[tuple[date, date]]:
    """A daily job that notes (its run's date, the business-date clock inside it), failing on
    the dates in ``fail_on`` (a set the test may empty to "fix" the job)."""
    seen: list[tuple[date, date]] = []

    def job(run: jobs.JobRun) -> None:
        seen.append((run.business_date, jobs.business_date()))
        if fail_on and run.business_date in fail_on:
            raise RuntimeError(f"no rates for {run.business_date}")

    jobs.register(app, jobs.Job(name, job, {"minutes": 5}, daily=True, start=start))
    return seen


def _days(session: Any, name: str = "test.daily") -> dict[date, tuple[str, int]]:
    session.expire_all()
    rows = session.scalars(sa.select(jobs.JobDay).where(jobs.JobDay.name == name))
    return {row.business_date: (row.status, row.runs) for row in rows}


def _dates_seen(seen: list[tuple[date, date]]) -> list[date]:
    return [run_date for run_date, _ in seen]


def test_a_daily_job_first_runs_today_only(app: Any, session: Any) -> None:
    seen = _register_daily(app)
    _today(app, MARCH_1)

    assert jobs.run("test.daily") == "ok"

    assert _dates_seen(seen) == [MARCH_1]
    assert _days(session) == {MARCH_1: ("ok", 1)}


def test_a_daily_job_catches_up_missed_days_in_order(app: Any, session: Any) -> None:
    seen = _register_daily(app)
    _today(app, MARCH_1)
    jobs.run("test.daily")
    _today(app, date(2027, 3, 4))  # the scheduler was down for two days

    assert jobs.run("test.daily") == "ok"

    assert _dates_seen(seen) == [MARCH_1, date(2027, 3, 2), date(2027, 3, 3), date(2027, 3, 4)]
    # each date runs on its own business-date clock, as if the job had run that day
    assert all(run_date == clock for run_date, clock in seen)
    assert set(_days(session)) == {MARCH_1 + timedelta(days=n) for n in range(4)}
    lease = _lease(session, "test.daily")
    assert (lease.last_status, lease.last_business_date, lease.holder) == (
        "ok", date(2027, 3, 4), None)


def test_a_daily_job_skips_finished_dates(app: Any, session: Any) -> None:
    seen = _register_daily(app)
    _today(app, MARCH_1)
    jobs.run("test.daily")

    assert jobs.run("test.daily") == "ok"  # a second tick the same day
    assert jobs.run("test.daily") == "ok"

    assert _dates_seen(seen) == [MARCH_1]
    assert _days(session) == {MARCH_1: ("ok", 1)}


def test_a_daily_job_starts_at_its_configured_start(app: Any, session: Any) -> None:
    seen = _register_daily(app, start=date(2027, 2, 27))
    _today(app, MARCH_1)

    jobs.run("test.daily")

    assert _dates_seen(seen) == [date(2027, 2, 27), date(2027, 2, 28), MARCH_1]


def test_the_jobs_start_setting_sets_where_a_daily_job_begins(app: Any, session: Any) -> None:
    seen = _register_daily(app)
    app.config["NONGDAI_JOBS_START"] = "2027-02-28"
    _today(app, MARCH_1)

    jobs.run("test.daily")

    assert _dates_seen(seen) == [date(2027, 2, 28), MARCH_1]


def _no_county(session: Any, code: str) -> bool:
    return session.scalar(sa.select(County.id).where(County.code == code)) is None


def test_each_date_commits_its_own_chunks(app: Any, session: Any) -> None:
    """Per date: its chunks commit as they go; the date's row records them."""
    def job(run: jobs.JobRun) -> None:
        from core.db import db  # noqa: PLC0415 - the job's own session

        day = run.business_date.day
        for chunk in run.chunks([f"3306{day:02d}", f"3307{day:02d}", f"3308{day:02d}"], size=2):
            for code in chunk:
                if _no_county(db.session, code):
                    db.session.add(County(code=code, name=f"县{code}"))

    jobs.register(app, jobs.Job("test.daily", job, daily=True))
    _today(app, MARCH_1)
    jobs.run("test.daily")
    _today(app, date(2027, 3, 2))

    jobs.run("test.daily")

    assert _county_codes(session) == ["330601", "330602", "330701", "330702", "330801",
                                      "330802"]
    chunks = dict(session.execute(sa.select(jobs.JobDay.business_date, jobs.JobDay.chunks)).all())
    assert chunks == {MARCH_1: 3, date(2027, 3, 2): 3}  # two chunks and the closing commit


def test_a_date_run_again_changes_nothing_and_is_noted(app: Any, runner: Any,
                                                       session: Any) -> None:
    def job(run: jobs.JobRun) -> None:  # idempotent: one county per date, added once
        from core.db import db  # noqa: PLC0415

        code = f"3309{run.business_date.day:02d}"
        if _no_county(db.session, code):
            db.session.add(County(code=code, name="县"))

    jobs.register(app, jobs.Job("test.daily", job, daily=True))
    _today(app, MARCH_1)
    jobs.run("test.daily")
    _today(app, date(2027, 3, 3))
    jobs.run("test.daily")
    before = _county_codes(session)

    ran = runner.invoke(args=["jobs", "run", "test.daily", "--date", "2027-03-02"])

    assert ran.exit_code == 0, ran.output
    assert "test.daily: ok" in ran.output
    assert _county_codes(session) == before == ["330901", "330902", "330903"]
    assert _days(session) == {MARCH_1: ("ok", 1), date(2027, 3, 2): ("ok", 2),
                              date(2027, 3, 3): ("ok", 1)}
    session.commit()
    assert jobs.run("test.daily") == "ok"  # the catch-up still has nothing left to do
    assert _days(session)[date(2027, 3, 3)] == ("ok", 1)


def test_a_failed_date_stops_the_catch_up_there(app: Any, session: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    broken = {date(2027, 3, 3)}
    seen = _register_daily(app, fail_on=broken)
    _today(app, MARCH_1)
    jobs.run("test.daily")
    _today(app, date(2027, 3, 5))

    with pytest.raises(RuntimeError, match="no rates"):
        jobs.run("test.daily")

    assert _dates_seen(seen) == [MARCH_1, date(2027, 3, 2), date(2027, 3, 3)]  # 4th, 5th wait
    assert _days(session) == {MARCH_1: ("ok", 1), date(2027, 3, 2): ("ok", 1),
                              date(2027, 3, 3): ("failed", 1)}
    lease = _lease(session, "test.daily")
    assert (lease.last_status, lease.holder, lease.last_business_date) == (
        "failed", None, date(2027, 3, 3))
    failed = [r for r in caplog.records if r.getMessage() == "job failed"]
    assert [(r.job, r.business_date) for r in failed] == [("test.daily", "2027-03-03")]  # type: ignore[attr-defined]

    session.commit()
    broken.clear()  # the rates arrive
    seen.clear()
    assert jobs.run("test.daily") == "ok"
    assert _dates_seen(seen) == [date(2027, 3, 3), date(2027, 3, 4), date(2027, 3, 5)]
    assert _days(session)[date(2027, 3, 3)] == ("ok", 2)


def test_a_first_run_that_failed_is_retried_first(app: Any, session: Any) -> None:
    broken = {MARCH_1}
    seen = _register_daily(app, fail_on=broken)
    _today(app, MARCH_1)
    with pytest.raises(RuntimeError):
        jobs.run("test.daily")
    broken.clear()
    _today(app, date(2027, 3, 2))
    session.commit()

    jobs.run("test.daily")

    assert _dates_seen(seen) == [MARCH_1, MARCH_1, date(2027, 3, 2)]


def test_a_daily_job_skips_when_the_lease_is_held_elsewhere(app: Any, session: Any) -> None:
    seen = _register_daily(app)
    _today(app, MARCH_1)
    session.add(jobs.JobLease(name="test.daily", holder="other-host:1",
                              leased_until=utcnow() + timedelta(minutes=5)))
    session.commit()

    assert jobs.run("test.daily") == "skipped"

    assert seen == []
    assert _days(session) == {}
    assert _lease(session, "test.daily").holder == "other-host:1"


def _lease_as_the_job_sees_it(name: str) -> tuple[str | None, bool]:
    from core.db import db  # noqa: PLC0415

    with db.engine.connect() as conn:
        holder, until = conn.execute(sa.select(jobs.JobLease.holder, jobs.JobLease.leased_until)
                                     .where(jobs.JobLease.name == name)).one()
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return holder, until > utcnow()


def test_the_lease_covers_the_whole_catch_up(app: Any, session: Any) -> None:
    held: list[tuple[str | None, bool]] = []

    def job(run: jobs.JobRun) -> None:
        for _ in run.chunks(range(3), size=1):
            held.append(_lease_as_the_job_sees_it("test.daily"))

    jobs.register(app, jobs.Job("test.daily", job, daily=True, start=MARCH_1))
    _today(app, date(2027, 3, 3))

    assert jobs.run("test.daily") == "ok"

    assert len(held) == 9
    assert {holder for holder, _ in held} == {jobs._holder()}
    assert all(live for _, live in held)


def test_a_run_whose_lease_was_taken_over_stops(app: Any, session: Any) -> None:
    """A runner that overran its lease finds it renewed by another and stops at its next
    chunk, recording nothing for the date: the other runner owns it now."""
    seen: list[date] = []

    def job(run: jobs.JobRun) -> None:
        from core.db import db  # noqa: PLC0415

        seen.append(run.business_date)
        with db.engine.begin() as conn:  # another scheduler took the expired lease
            conn.execute(sa.update(jobs.JobLease).values(holder="other-host:2"))
        run.commit()

    jobs.register(app, jobs.Job("test.daily", job, daily=True, start=MARCH_1))
    _today(app, date(2027, 3, 2))

    with pytest.raises(jobs.LeaseLost):
        jobs.run("test.daily")

    assert seen == [MARCH_1]
    assert _days(session) == {}
    assert _lease(session, "test.daily").holder == "other-host:2"  # not released by the loser


def test_progress_is_logged_per_date_and_per_chunk(app: Any, session: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    def job(run: jobs.JobRun) -> None:
        for _ in run.chunks(range(2), size=1):
            pass

    jobs.register(app, jobs.Job("test.daily", job, daily=True, start=MARCH_1))
    _today(app, date(2027, 3, 2))
    caplog.set_level("INFO", logger="core.jobs")

    jobs.run("test.daily")

    events = [(r.getMessage(), getattr(r, "business_date", None), getattr(r, "chunk", None))
              for r in caplog.records if getattr(r, "job", None) == "test.daily"]
    per_day = [("job started", None), ("job chunk committed", 1), ("job chunk committed", 2),
               ("job chunk committed", 3), ("job finished", None)]
    expected = [("job catching up", None, None)] + [
        (message, day, chunk) for day in ("2027-03-01", "2027-03-02")
        for message, chunk in per_day]
    assert events == expected


def test_jobs_list_shows_a_daily_jobs_last_date(app: Any, runner: Any, session: Any) -> None:
    _register_daily(app)
    _today(app, MARCH_1)
    assert "never run" in runner.invoke(args=["jobs", "list"]).output

    jobs.run("test.daily")

    assert "last date: 2027-03-01 ok" in runner.invoke(args=["jobs", "list"]).output


# --- the scheduler: its own process in production, never inside the web workers --------------

def test_add_jobs_schedules_every_registered_job(app: Any) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler  # noqa: PLC0415

    _register(app, "test.every5", lambda _run: None)
    _register_daily(app)
    scheduler = jobs.add_jobs(app, BackgroundScheduler(timezone="UTC"))  # never started

    scheduled = {job.id: job for job in scheduler.get_jobs()}

    assert set(scheduled) == set(app.extensions["nongdai_jobs"])
    assert scheduled["test.every5"].trigger.interval == timedelta(minutes=5)
    assert scheduled["test.daily"].trigger.interval == timedelta(minutes=5)
    assert scheduled["test.every5"].max_instances == 1
    # a daily job ticks at once when the scheduler starts: it catches up after downtime
    assert scheduled["test.daily"].next_run_time is not None
    # the others wait for their first interval
    assert getattr(scheduled["test.every5"], "next_run_time", None) is None


def test_a_daily_job_without_a_trigger_ticks_every_quarter_hour(app: Any) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler  # noqa: PLC0415

    jobs.register(app, jobs.Job("test.daily", lambda _run: None, daily=True))

    (job,) = [j for j in jobs.add_jobs(app, BackgroundScheduler(timezone="UTC")).get_jobs()
              if j.id == "test.daily"]

    assert job.trigger.interval == timedelta(minutes=15)


def test_the_scheduler_command_runs_every_job_in_its_own_process(
        app: Any, runner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler  # noqa: PLC0415

    started: list[list[str]] = []
    monkeypatch.setattr(BlockingScheduler, "start",
                        lambda self, *_a, **_k: started.append([j.id for j in self.get_jobs()]))
    _register_daily(app)

    result = runner.invoke(args=["scheduler"])

    assert result.exit_code == 0, result.output
    assert f"scheduler: {len(app.extensions['nongdai_jobs'])} jobs" in result.output
    assert len(started) == 1
    assert sorted(started[0]) == sorted(app.extensions["nongdai_jobs"])


def test_the_app_factory_alone_schedules_nothing(database: str, tmp_path: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn serves ``app:create_app()``: its workers must never run jobs."""
    import threading  # noqa: PLC0415

    from apscheduler.schedulers.base import BaseScheduler  # noqa: PLC0415

    from app import create_app  # noqa: PLC0415
    from tests.conftest import _overrides, fresh_database_url  # noqa: PLC0415

    started: list[Any] = []
    monkeypatch.setattr(BaseScheduler, "start", lambda self, *_a, **_k: started.append(self))
    threads = set(threading.enumerate())

    created = create_app(_overrides(fresh_database_url(database, tmp_path), tmp_path))
    with created.test_request_context():
        created.preprocess_request()

    assert started == []
    assert set(threading.enumerate()) <= threads
    assert created.extensions["nongdai_jobs"]  # the jobs are registered, only not scheduled
