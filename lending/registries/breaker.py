"""A circuit breaker per registry and process: ``pybreaker`` driven so that calls run at once.

``pybreaker.CircuitBreaker.call`` holds the breaker's lock for the whole wrapped call
(danielfm/pybreaker#55), so every registry call of a process would wait for the one before
it. :class:`Breaker` keeps pybreaker for what it does well (the failure count, the
closed/open/half-open transitions, the time it opened) and takes the lock only around those:
it admits a call, lets it run unlocked, then records the outcome through ``call`` with a
function that returns or raises at once.

- closed: every call runs; ``fail_max`` failures in a row open it;
- open: calls fail at once (``pybreaker.CircuitBreakerError``) until ``reset_timeout`` passed;
- then one call, the trial, runs (half-open) while the others still fail at once; its success
  closes the breaker, its failure opens it again.

The state lives in this process's memory: it only protects the registry and our threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn, TypeVar

import pybreaker

T = TypeVar("T")


def _succeed() -> None:
    return None


def _fail(exc: BaseException) -> NoReturn:
    raise exc


class Breaker:
    def __init__(self, name: str, fail_max: int, reset_seconds: float) -> None:
        self.storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=max(fail_max, 1), reset_timeout=reset_seconds, name=name,
            state_storage=self.storage, throw_new_error_on_trip=False)
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        return self.breaker.current_state

    def run(self, call: Callable[[], T]) -> T:
        """Run ``call`` if the breaker admits it (else ``CircuitBreakerError``) and count it."""
        self._admit()
        try:
            result = call()
        except BaseException as exc:
            self._record(exc)
            raise
        self._record(None)
        return result

    def _admit(self) -> None:
        with self._lock:
            state = self.breaker.current_state
            if state == pybreaker.STATE_CLOSED:
                return
            if state == pybreaker.STATE_HALF_OPEN:  # a trial call is under way
                raise pybreaker.CircuitBreakerError("a trial call is under way")
            opened = self.storage.opened_at
            wait = timedelta(seconds=self.breaker.reset_timeout)
            if opened is not None and datetime.now(UTC) < opened + wait:
                raise pybreaker.CircuitBreakerError("open")
            self.breaker.half_open()  # this call is the trial

    def _record(self, failure: BaseException | None) -> None:
        with self._lock:
            try:
                if failure is None:
                    self.breaker.call(_succeed)
                else:
                    self.breaker.call(_fail, failure)
            except BaseException as exc:  # the failure itself, or the breaker being open
                if exc is not failure and not isinstance(exc, pybreaker.CircuitBreakerError):
                    raise
