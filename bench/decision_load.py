"""The decision benchmark's HTTP load (see ``bench/decision.py``): farmers' phones applying.

A *pass* sends applications from several client threads, each with its own
``requests.Session`` (a phone), each application with its farmer's token and its own
Idempotency-Key, and records for every answer its status, the time from sending the request to
the decided application arriving, and the state it was decided into. A *round* interleaves
the stack ceiling's pass (``bench/ceiling_app.py``, driven by ``bench/http_load.py``) with
Nongdai's, slice by slice, so that a neighbour's burst of work falls on both alike; after it,
the reference registry's request log tells how many lookups the round made and how long the
registry took over them.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.decision_seed import Submission
from bench.http_load import SLICES, Batch, Clients, Pass, Progress, push

AUTO = frozenset({"approved", "declined"})  # decided with no person: the 310 figure's cases


@dataclass(frozen=True)
class Answer:
    status: int
    ms: float  # request sent to answer read, on the client
    state: str  # the application's state in a 201; "" otherwise


@dataclass
class DecisionPass:
    """Nongdai's applications of one round (the sum of its slices)."""

    seconds: float = 0.0
    answers: list[Answer] = field(default_factory=list)

    def add(self, other: DecisionPass) -> None:
        self.seconds += other.seconds
        self.answers.extend(other.answers)

    @property
    def ok(self) -> int:
        return sum(1 for a in self.answers if a.status == 201)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers)

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(a.state for a in self.answers if a.status == 201)

    def latencies(self, states: frozenset[str] = AUTO) -> list[float]:
        """Milliseconds of the 201s decided into ``states``, sorted."""
        return sorted(a.ms for a in self.answers if a.status == 201 and a.state in states)


def percentile(ordered: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..100) of an ordered sample; NaN if empty."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)]


def submit(url: str, submissions: Sequence[Submission], threads: int,
           progress: Progress) -> DecisionPass:
    """POST every application from ``threads`` phones; the time of each, and the whole's."""
    local = threading.local()

    def send(item: Submission) -> Answer:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        started = time.perf_counter()
        answer = local.http.post(url, json=item.body, timeout=60, headers={
            "Authorization": f"Bearer {item.token}", "Idempotency-Key": item.key})
        body = answer.json() if answer.status_code == 201 else {}
        ms = (time.perf_counter() - started) * 1000
        return Answer(answer.status_code, ms, str(body.get("state", "")))

    answers = []
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in as_completed([pool.submit(send, item) for item in submissions]):
            answers.append(future.result())
            progress.step()
    return DecisionPass(time.perf_counter() - started, answers)


_TICK = os.sysconf("SC_CLK_TCK")


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of group ``pgid``: a
    server's master and workers. Robust where wall time is not: neighbours on the shared
    machine delay our processes but do not add to their CPU time."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # gone in between
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


@dataclass
class Cpu:
    """CPU seconds spent during one kind of slice, per process (group)."""

    server: float = 0.0  # the gunicorn server the slice was sent to
    registry: float = 0.0  # the reference registry (separate process)
    client: float = 0.0  # this process: the client threads

    def add(self, other: Cpu) -> None:
        self.server += other.server
        self.registry += other.registry
        self.client += other.client


class LockLog:
    """The write-lock lines Nongdai's workers append (``bench/decision_gunicorn.py``): each
    read returns the lines added since the one before."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.offsets: dict[Path, int] = {}

    def take(self) -> list[tuple[float, float]]:
        """(waited ms, held ms) of every write transaction since the last call."""
        found = []
        for path in sorted(self.folder.glob("locks-*.log")):
            with path.open(encoding="ascii") as log:
                log.seek(self.offsets.get(path, 0))
                text = log.read()
            complete = text[:text.rfind("\n") + 1]
            self.offsets[path] = self.offsets.get(path, 0) + len(complete)
            for line in complete.splitlines():
                waited, held = line.split()
                found.append((float(waited), float(held)))
        return found


def lock_figures(lines: list[tuple[float, float]], decisions: int) -> dict[str, Any]:
    """The SQLite write lock over a round: how long writers queued for it, how long each
    held it, per transaction (percentiles) and per decision (sums / decisions)."""
    if not lines:
        return {}
    waits = sorted(w for w, _h in lines)
    holds = sorted(h for _w, h in lines)
    return {"write_transactions": len(lines),
            "lock_wait_ms_p50": round(percentile(waits, 50), 1),
            "lock_wait_ms_p99": round(percentile(waits, 99), 1),
            "lock_wait_ms_max": round(waits[-1], 1),
            "lock_held_ms_p50": round(percentile(holds, 50), 2),
            "lock_held_ms_p99": round(percentile(holds, 99), 2),
            "lock_wait_ms_per_decision": round(sum(waits) / max(decisions, 1), 1),
            "lock_held_ms_per_decision": round(sum(holds) / max(decisions, 1), 2)}


@dataclass
class Round:
    ceiling: Pass = field(default_factory=Pass)
    decision: DecisionPass = field(default_factory=DecisionPass)
    registry: dict[str, Any] = field(default_factory=dict)
    locks: dict[str, Any] = field(default_factory=dict)
    ceiling_cpu: Cpu = field(default_factory=Cpu)
    decision_cpu: Cpu = field(default_factory=Cpu)


@dataclass(frozen=True)
class Bases:
    """Where each server answers, and its process group (for its CPU time)."""

    ceiling: str
    nongdai: str
    registry: str
    ceiling_group: int
    nongdai_group: int
    registry_group: int
    locks: LockLog


@contextmanager
def _cpu(bases: Bases, server_group: int, into: Cpu) -> Iterator[None]:
    def now() -> Cpu:
        return Cpu(group_cpu(server_group), group_cpu(bases.registry_group), time.process_time())

    before = now()
    yield
    after = now()
    into.add(Cpu(after.server - before.server, after.registry - before.registry,
                 after.client - before.client))


def run_round(label: str, bases: Bases, submissions: list[Submission], threads: int) -> Round:
    """The ceiling and the applications, interleaved slice by slice; then what the registry
    served in the round (its log is cleared for the next one)."""
    result = Round()
    progress = Progress(label, 2 * len(submissions))
    size = -(-len(submissions) // SLICES)
    clients = Clients("ceiling", threads)  # the bare view reads no token
    for at in range(0, len(submissions), size):
        part = submissions[at:at + size]
        batch = Batch([s.body for s in part], [s.key for s in part])
        with _cpu(bases, bases.ceiling_group, result.ceiling_cpu):
            result.ceiling.add(push(f"{bases.ceiling}/rows", batch, clients, progress))
        with _cpu(bases, bases.nongdai_group, result.decision_cpu):
            result.decision.add(submit(f"{bases.nongdai}/api/v1/applications", part, threads,
                                       progress))
    progress.close()
    result.registry = registry_log(bases.registry)
    result.locks = lock_figures(bases.locks.take(), result.decision.ok)
    auto = result.decision.latencies()
    ok = max(result.decision.ok, 1)
    print(f"{label}: ceiling {result.ceiling.rate:7.1f}/s, decided {result.decision.rate:6.1f}/s"
          f" ({dict(sorted(result.decision.outcomes.items()))}); auto-decided p50 "
          f"{percentile(auto, 50):.0f} ms, p99 {percentile(auto, 99):.0f} ms; CPU ms per "
          f"decision: app {result.decision_cpu.server * 1000 / ok:.1f}, registry "
          f"{result.decision_cpu.registry * 1000 / ok:.1f}, client "
          f"{result.decision_cpu.client * 1000 / ok:.1f}", flush=True)
    if result.locks:
        print(f"  SQLite write lock: waited p50 {result.locks['lock_wait_ms_p50']} ms, p99 "
              f"{result.locks['lock_wait_ms_p99']} ms, max {result.locks['lock_wait_ms_max']} "
              f"ms; held {result.locks['lock_held_ms_per_decision']} ms per decision", flush=True)
    return result


def registry_log(base: str) -> dict[str, Any]:
    """What the reference registry served since its last reset (lookups per registry, its own
    time per lookup, which includes the configured latency); then reset the log."""
    seen = requests.get(f"{base}/_control/requests", timeout=30).json()["requests"]
    requests.post(f"{base}/_control/reset", timeout=30).raise_for_status()
    served = sorted((s["ended"] - s["started"]) * 1000 for s in seen if s["ended"] is not None)
    return {"calls": dict(sorted(Counter(s["registry"] for s in seen).items())),
            "statuses": dict(sorted(Counter(str(s["status"]) for s in seen).items())),
            "served_ms_p50": round(percentile(served, 50), 1),
            "served_ms_p99": round(percentile(served, 99), 1)}
