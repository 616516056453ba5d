"""The HTTP load driver of ``bench/api_farmers.py``: client threads posting bodies to servers.

A *pass* posts a batch of bodies, each with its Idempotency-Key, from several threads and
records the time taken and every answer's status. A *round* runs four passes (the ceiling's
write, its read, Nongdai's create and its replay) interleaved slice by slice, so that a
neighbour's burst of work on the shared machine falls on all four alike.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import requests

from core.idempotency import REPLAYED_HEADER

SLICES = 5  # per round: the four passes over one fifth of the bodies at a time, five times over


class Progress:
    """A bar on a terminal, redrawn at most 10 times a second; elsewhere (a log file) a line
    every few seconds, so a short pass prints nothing. On stderr: stdout keeps the figures."""

    QUIET_SECONDS = 3.0

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.tty = sys.stderr.isatty()
        self._last = time.monotonic()

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self._last < (0.1 if self.tty else self.QUIET_SECONDS):
            return
        self._last = now
        if self.tty:
            bar = "#" * (self.done * 40 // self.total)
            print(f"\r  {self.label:<24} [{bar:.<40}] {self.done}/{self.total}", end="",
                  file=sys.stderr, flush=True)
        else:
            print(f"  {self.label}: {self.done}/{self.total}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print("\r" + " " * 80 + "\r", end="", file=sys.stderr, flush=True)


@dataclass
class Pass:
    """One pass of requests (or the sum of its slices): time taken and what came back."""

    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    replayed: int = 0  # answers marked Idempotent-Replayed

    def add(self, other: Pass) -> None:
        self.seconds += other.seconds
        self.statuses.update(other.statuses)
        self.replayed += other.replayed

    @property
    def ok(self) -> int:
        return self.statuses[201]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    @property
    def seconds_per_ok(self) -> float:
        return self.seconds / self.ok if self.ok else float("inf")


@dataclass(frozen=True)
class Batch:
    """The bodies of one pass and the Idempotency-Key of each."""

    bodies: list[dict]
    keys: list[str]

    def slices(self, count: int) -> list[Batch]:
        size = -(-len(self.bodies) // count)
        return [Batch(self.bodies[at:at + size], self.keys[at:at + size])
                for at in range(0, len(self.bodies), size)]


@dataclass(frozen=True)
class Clients:
    """The client side, the same for every server: one token, ``threads`` phones."""

    token: str
    threads: int


def push(url: str, batch: Batch, clients: Clients, progress: Progress) -> Pass:
    """POST every body with its key from ``clients.threads`` threads, each with its own
    ``requests.Session`` (as a phone would), reporting progress as answers arrive."""
    local = threading.local()

    def send(body: dict, key: str) -> tuple[int, bool]:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        answer = local.http.post(url, json=body, timeout=60, headers={
            "Authorization": f"Bearer {clients.token}", "Idempotency-Key": key})
        return answer.status_code, answer.headers.get(REPLAYED_HEADER) == "true"

    statuses: Counter[int] = Counter()
    replayed = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients.threads) as pool:
        futures = [pool.submit(send, body, key)
                   for body, key in zip(batch.bodies, batch.keys, strict=True)]
        for future in as_completed(futures):
            status, was_replayed = future.result()
            statuses[status] += 1
            replayed += was_replayed
            progress.step()
    return Pass(time.perf_counter() - started, statuses, replayed)


@dataclass
class Round:
    """The four passes of one round, each summed over its slices."""

    ceiling: Pass = field(default_factory=Pass)
    ceiling_read: Pass = field(default_factory=Pass)
    create: Pass = field(default_factory=Pass)
    replay: Pass = field(default_factory=Pass)

    def passes(self) -> dict[str, Pass]:
        return {"ceiling": self.ceiling, "ceiling_read": self.ceiling_read,
                "create": self.create, "replay": self.replay}


def run_round(label: str, bases: tuple[str, str], batch: Batch, clients: Clients) -> Round:
    """The ceilings, the creates and their replays, interleaved slice by slice: the machine is
    shared, and a neighbour's burst of work then lands on all four alike, not on one pass."""
    ceiling, nongdai = bases
    farmers = f"{nongdai}/api/v1/farmers"
    result = Round()
    progress = Progress(label, 4 * len(batch.bodies))
    for part in batch.slices(SLICES):
        result.ceiling.add(push(f"{ceiling}/rows", part, clients, progress))
        result.ceiling_read.add(push(f"{ceiling}/rows/stored", part, clients, progress))
        result.create.add(push(farmers, part, clients, progress))
        result.replay.add(push(farmers, part, clients, progress))
    progress.close()
    cost = result.replay.seconds_per_ok / result.create.seconds_per_ok
    print(f"{label}: ceiling {result.ceiling.rate:7.1f}/s (read {result.ceiling_read.rate:7.1f}/s)"
          f", created {result.create.rate:7.1f}/s, replayed {result.replay.rate:7.1f}/s "
          f"({cost:.2f} of a create)", flush=True)
    return result


def flags(rounds: list[Round], per_pass: int) -> list[str]:
    """Passes whose answers were not all what they should be (the figures count only 201s)."""
    found = []
    for n, r in enumerate(rounds, start=1):
        for name, one in r.passes().items():
            if one.ok != per_pass:
                found.append(f"round {n} {name}: {per_pass - one.ok} of {per_pass} not 201 "
                             f"({dict(one.statuses)})")
        if r.create.replayed:
            found.append(f"round {n} create: {r.create.replayed} answered as replays")
        if r.replay.replayed != r.replay.ok:
            found.append(f"round {n} replay: {r.replay.ok - r.replay.replayed} 201s "
                         "not marked as replays")
    return found
