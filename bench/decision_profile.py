"""Where a decision's time goes, in-process (see ``bench/decision.py``; ``service_`` figures).

The same applications, on the same database and registry, through the Flask test client (so no
HTTP to the app and no gunicorn, hence the prefix): per submission, the SQL statements by shape,
transactions, durable commits and pool checkouts (``bench/sqlcount.py``); the wall and CPU time
of each phase of the view (read, registries, write and decide, present), timed by wrapping the
pipeline's functions for this profile only; and how long the request holds write transactions
(on SQLite the database's one write lock, which every worker's writers queue for) and how much
of that is commits. With ``pyinstrument`` importable, one sampled profile of the same requests
is printed on stderr as well.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from app import create_app
from bench.decision_seed import Submission, settings
from bench.sqlcount import SqlCounter, Tally
from core.db import READ_ONLY, db
from lending.applications import pipeline, presenting, underwriting

# (module, function, phase): the view's steps in order, then the engine inside "write".
PHASES = ((pipeline, "plan_new", "read"), (pipeline, "ask_registries", "registries"),
          (pipeline, "record_new", "write"), (underwriting, "evaluate", "engine"),
          (presenting, "present", "present"))


@contextmanager
def _timed(wall: dict[str, float], cpu: dict[str, float]) -> Iterator[None]:
    """Wrap each phase's function to add its wall and CPU time (the process's: the registry
    lookups run partly on a pool thread) to ``wall``/``cpu``; restore them after."""
    originals = [(module, name, getattr(module, name)) for module, name, _ in PHASES]

    def wrap(function: Callable[..., Any], phase: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started, used = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                wall[phase] = wall.get(phase, 0.0) + time.perf_counter() - started
                cpu[phase] = cpu.get(phase, 0.0) + time.process_time() - used
        return timed

    for (module, name, function), (_m, _n, phase) in zip(originals, PHASES, strict=True):
        setattr(module, name, wrap(function, phase))
    try:
        yield
    finally:
        for module, name, function in originals:
            setattr(module, name, function)


class WriteLocks:
    """How long each request holds write transactions open: from a ``BEGIN`` that is not a
    read (SQLite: ``BEGIN IMMEDIATE``, which takes the database's one write lock) until the
    connection is back in the pool after its commit, and how much of that is the commit itself
    (its fsync). On SQLite, every writer of every worker waits while one holds it."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.held = self.committing = 0.0
        self._begun: dict[int, float] = {}
        self._commit: dict[int, float] = {}
        self._listeners: list[tuple[Any, str, Callable[..., None]]] = [
            (engine, "begin", self._on_begin), (engine, "commit", self._on_commit),
            (engine.pool, "checkin", self._on_checkin)]
        for target, name, listener in self._listeners:
            event.listen(target, name, listener)

    def close(self) -> None:
        for target, name, listener in self._listeners:
            event.remove(target, name, listener)

    def reset(self) -> None:
        self.held = self.committing = 0.0

    def _on_begin(self, conn: sa.Connection) -> None:
        if not conn.get_execution_options().get(READ_ONLY, False):
            self._begun[id(conn.connection.dbapi_connection)] = time.perf_counter()

    def _on_commit(self, conn: sa.Connection) -> None:
        self._commit[id(conn.connection.dbapi_connection)] = time.perf_counter()

    def _on_checkin(self, dbapi_connection: Any, _record: Any) -> None:
        now = time.perf_counter()
        begun = self._begun.pop(id(dbapi_connection), None)
        committed = self._commit.pop(id(dbapi_connection), None)
        if begun is not None:
            self.held += now - begun
        if committed is not None:
            self.committing += now - committed


def _shapes(tallies: list[Tally]) -> dict[str, float]:
    shapes: Counter[str] = Counter()
    for tally in tallies:
        shapes.update(tally.shapes)
    return {shape: round(n / len(tallies), 2) for shape, n in sorted(shapes.items())}


def _mean(tallies: list[Tally], name: str) -> float:
    return round(sum(getattr(t, name) for t in tallies) / len(tallies), 2)


def profile(url: str, instance: Path, registry_url: str, submissions: list[Submission],
            sampler: bool = False) -> dict[str, Any]:
    """Statements and phase times per submission over ``submissions`` (each answered 201)."""
    app = create_app(settings(url, instance, registry_url))
    client = app.test_client()
    with app.app_context():
        counter, locks = SqlCounter(db.engine), WriteLocks(db.engine)
    tallies: list[Tally] = []
    walls: list[dict[str, float]] = []
    cpus: list[dict[str, float]] = []
    outcomes: Counter[str] = Counter()
    profiler = _sampler() if sampler else None
    try:
        for item in submissions:
            wall: dict[str, float] = {}
            cpu: dict[str, float] = {}
            locks.reset()
            with _timed(wall, cpu), counter.measure() as tally:
                if profiler is not None:
                    profiler.start()
                started, used = time.perf_counter(), time.process_time()
                answer = client.post("/api/v1/applications", json=item.body, buffered=True,
                                     headers={"Authorization": f"Bearer {item.token}",
                                              "Idempotency-Key": item.key})
                wall["total"] = time.perf_counter() - started
                cpu["total"] = time.process_time() - used
                if profiler is not None:
                    profiler.stop()
            if answer.status_code != 201:
                raise SystemExit(f"profile: {answer.status_code} {answer.text}")
            wall["write_lock"], wall["commits"] = locks.held, locks.committing
            outcomes[answer.get_json()["state"]] += 1
            tallies.append(tally)
            walls.append(wall)
            cpus.append(cpu)
    finally:
        counter.close()
        locks.close()
        with app.app_context():
            db.engine.dispose()
    if profiler is not None:
        print(profiler.output_text(unicode=True, color=False, show_all=False), file=sys.stderr)
    figures = _figures(tallies, walls, cpus, outcomes)
    if not url.startswith("sqlite"):  # every transaction writes there: the whole request's
        del figures["service_phase_ms"]["write_lock"]
    return figures


def _medians(phases: list[dict[str, float]], names: tuple[str, ...]) -> dict[str, float]:
    """Median milliseconds per name, and ``rest``: the request's time outside the view's four
    steps (authentication, idempotency, schema, commit, JSON, the SMS sent after the answer)."""
    out = {name: round(statistics.median(p.get(name, 0.0) for p in phases) * 1000, 2)
           for name in names}
    steps = ("read", "registries", "write", "present")
    out["rest"] = round(statistics.median(
        p["total"] - sum(p.get(step, 0.0) for step in steps) for p in phases) * 1000, 2)
    return out


def _figures(tallies: list[Tally], walls: list[dict[str, float]],
             cpus: list[dict[str, float]], outcomes: Counter[str]) -> dict[str, Any]:
    names = ("total", *(phase for _m, _n, phase in PHASES))
    return {
        "service_statements_per_decision": _mean(tallies, "statements"),
        "service_transactions_per_decision": _mean(tallies, "transactions"),
        "service_durable_commits_per_decision": _mean(tallies, "durable_commits"),
        "service_checkouts_per_decision": _mean(tallies, "checkouts"),
        "service_shapes": _shapes(tallies),
        "service_phase_ms": _medians(walls, (*names, "write_lock", "commits")),
        "service_phase_cpu_ms": _medians(cpus, names),
        "service_outcomes": dict(sorted(outcomes.items())),
        "service_requests": len(tallies),
    }


def _sampler() -> Any:
    """A pyinstrument profiler, or None when it is not installed (it is optional)."""
    try:
        sampling = importlib.import_module("pyinstrument")
    except ImportError:
        print("pyinstrument is not installed: no sampled profile", file=sys.stderr)
        return None
    return sampling.Profiler(interval=0.0005)
