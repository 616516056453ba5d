from datetime import timedelta

import sqlalchemy as sa

from core import jobs
from core.db import db, utcnow


def _register_counter(app) -> list[int]:
    calls: list[int] = []
    jobs.register(app, jobs.Job("test.count", lambda: calls.append(1), {"minutes": 5}))
    return calls


def test_a_job_runs_and_records_its_outcome(app) -> None:
    calls = _register_counter(app)
    assert jobs.run("test.count") == "ok"
    assert calls == [1]
    lease = db.session.get(jobs.JobLease, "test.count")
    assert lease.last_status == "ok"
    assert lease.holder is None


def test_a_held_lease_skips_the_run(app) -> None:
    calls = _register_counter(app)
    db.session.add(jobs.JobLease(name="test.count", holder="other-host:1",
                                 leased_until=utcnow() + timedelta(minutes=5)))
    db.session.commit()
    assert jobs.run("test.count") == "skipped"
    assert calls == []


def test_an_expired_lease_is_taken_over(app) -> None:
    calls = _register_counter(app)
    db.session.add(jobs.JobLease(name="test.count", holder="dead-host:1",
                                 leased_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert jobs.run("test.count") == "ok"
    assert calls == [1]


def test_cli_lists_and_runs_jobs(app, runner) -> None:
    _register_counter(app)
    listed = runner.invoke(args=["jobs", "list"])
    assert "test.count" in listed.output
    ran = runner.invoke(args=["jobs", "run", "test.count"])
    assert ran.exit_code == 0, ran.output
    assert "test.count: ok" in ran.output
    assert runner.invoke(args=["jobs", "run", "nope"]).exit_code != 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(jobs.JobLease)) == 1
