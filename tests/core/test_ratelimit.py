"""Database-backed fixed-window rate limits (core.ratelimit).

Tests that count call the module directly: they take ``session`` for its application context,
and leave that session without a transaction while counting, as a request must.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core import ratelimit
from core.db import utcnow
from core.errors import RateLimited
from core.ratelimit import RateLimitCounter


def test_counts_then_refuses_past_the_limit(session):
    assert [ratelimit.hit("t:a", 3, 60) for _ in range(3)] == [1, 2, 3]
    with pytest.raises(RateLimited) as raised:
        ratelimit.hit("t:a", 3, 60)
    retry_after = int(raised.value.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert ratelimit.hit("t:b", 3, 60) == 1  # buckets are independent


def test_counts_survive_the_request_rolling_back(session):
    ratelimit.hit("t:c", 5, 3600)
    session.rollback()
    assert session.scalars(sa.select(RateLimitCounter.count)).one() == 1


def test_key_hides_the_value(session):
    bucket = ratelimit.key("otp.phone", "13800001111")
    assert bucket.startswith("otp.phone:")
    assert "13800001111" not in bucket
    assert bucket == ratelimit.key("otp.phone", "13800001111")
    assert bucket != ratelimit.key("otp.phone", "13800001112")
    assert ratelimit.key("login.user", "13800001111").startswith("login.user:")


def test_window_boundary_starts_a_new_count(session, monkeypatch):
    earlier = utcnow() - timedelta(hours=2)
    monkeypatch.setattr(ratelimit, "utcnow", lambda: earlier)
    ratelimit.hit("t:d", 1, 3600)
    with pytest.raises(RateLimited):
        ratelimit.hit("t:d", 1, 3600)
    monkeypatch.undo()
    assert ratelimit.hit("t:d", 1, 3600) == 1


def test_purge_drops_ended_windows_only(session, monkeypatch):
    earlier = utcnow() - timedelta(hours=2)
    monkeypatch.setattr(ratelimit, "utcnow", lambda: earlier)
    ratelimit.hit("t:old", 5, 3600)
    monkeypatch.undo()
    ratelimit.hit("t:new", 5, 3600)
    assert ratelimit.purge() == 1
    session.commit()
    assert session.scalars(sa.select(RateLimitCounter.bucket)).all() == ["t:new"]


def test_parallel_hits_are_counted_exactly(app):
    counts: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                counts.append(ratelimit.hit("t:parallel", 100, 3600))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(counts) == list(range(1, 9))


def _bucket_rows(session: Any) -> list[tuple[str, int]]:
    return list(session.execute(sa.select(RateLimitCounter.bucket, RateLimitCounter.count)))


def test_one_row_per_bucket_and_window(session):
    for _ in range(4):
        ratelimit.hit("t:e", 10, 3600)
    assert _bucket_rows(session) == [("t:e", 4)]


class WrongPassword(Exception):
    pass


def _fail(bucket: str, limit: int, error: Exception) -> None:
    with ratelimit.failures(bucket, limit, 3600, WrongPassword):
        raise error


def test_failures_count_only_the_counted_errors(session):
    for _ in range(2):
        with pytest.raises(WrongPassword):
            _fail("t:f", 2, WrongPassword())
    with pytest.raises(ValueError, match="other"):
        _fail("t:other", 2, ValueError("other"))
    session.rollback()
    assert sorted(_bucket_rows(session)) == [("t:f", 2)]


def test_failures_refuse_once_the_limit_is_reached(session):
    with ratelimit.failures("t:g", 1, 3600, WrongPassword):
        pass  # a success counts nothing
    with pytest.raises(WrongPassword):
        _fail("t:g", 1, WrongPassword())
    with pytest.raises(RateLimited), ratelimit.failures("t:g", 1, 3600, WrongPassword):
        pytest.fail("the block must not run past the limit")


def _read_then_fail(session: Any) -> None:
    session.scalar(sa.select(sa.func.count()).select_from(RateLimitCounter))
    assert session().in_transaction()
    raise WrongPassword()


def test_a_failure_is_counted_after_the_failed_work_is_rolled_back(session):
    """The block has read (so its session holds a transaction) when it fails."""
    with pytest.raises(WrongPassword), ratelimit.failures("t:h", 5, 3600, WrongPassword):
        _read_then_fail(session)
    assert _bucket_rows(session) == [("t:h", 1)]
