"""The reference registry's memory: planted records, fault switches, the log of requests.

It lives in the process of the reference service, which stands in for systems outside the
bank: nothing of Nongdai's is kept here, and a restart forgets it all, as intended.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from lending.registries.reference import synthetic

MODES = ("none", "timeout", "error", "malformed", "trickle")
REGISTRIES = ("land", "insurance")
HANG_MS = 30_000  # how long a "timeout" fault hangs unless latency_ms says otherwise
UNKNOWN = object()  # a planted "the registry does not know this holder" (answers 404)


@dataclass(frozen=True)
class Fault:
    """One registry's switch. ``count`` set: only the next ``count`` requests are faulted."""

    mode: str = "none"
    latency_ms: int = 0
    rate: float = 1.0
    count: int | None = None
    status: int = 503  # for "error"
    variant: str = "text"  # for "malformed": text | shape | truncated
    chunk_bytes: int = 4  # for "trickle"
    interval_ms: int = 100
    hang_ms: int = HANG_MS  # for "timeout": how long the request hangs before answering


@dataclass
class Seen:
    """One request as the service saw it (monotonic seconds of this process)."""

    registry: str
    endpoint: str
    started: float
    fault: str
    connection: str = ""  # the client's address and port: the same on a kept-alive connection
    status: int = 0
    ended: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"registry": self.registry, "endpoint": self.endpoint, "started": self.started,
                "ended": self.ended, "status": self.status, "fault": self.fault,
                "connection": self.connection}


@dataclass
class State:
    seed: str
    latency_ms: int
    as_of: date | None = None
    faults: dict[str, Fault] = field(default_factory=dict)
    planted: dict[str, dict[str, Any]] = field(default_factory=dict)  # hash -> registry -> JSON
    issued: dict[str, str] = field(default_factory=dict)  # certificate number -> holder hash
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)  # set: stop waiting now
    generation: int = 0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the start: no plants, no faults, an empty request log; sleepers wake up."""
        with self.lock:
            self.faults = {name: Fault(latency_ms=self.latency_ms) for name in REGISTRIES}
            self.planted.clear()
            self.issued.clear()
            self.seen.clear()
            self.generation += 1
            self.rng = random.Random(self.seed)  # noqa: S311 - fault sampling, not secrets
            old, self.wake = self.wake, threading.Event()
        old.set()

    def today(self) -> date:
        return self.as_of or date.today()  # noqa: DTZ011 - the registry's own calendar day

    # --- faults ------------------------------------------------------------------------------

    def set_fault(self, registry: str, fault: Fault) -> None:
        with self.lock:
            for name in REGISTRIES if registry == "both" else (registry,):
                self.faults[name] = fault

    def take_fault(self, registry: str) -> Fault:
        """The fault this request meets (mode "none" when it is spared); counts it down."""
        with self.lock:
            fault = self.faults[registry]
            if fault.mode == "none":
                return fault
            if fault.count is not None:
                if fault.count <= 0:
                    return replace(fault, mode="none")
                self.faults[registry] = replace(fault, count=fault.count - 1)
            if fault.rate < 1 and self.rng.random() >= fault.rate:
                return replace(fault, mode="none")
            return fault

    def sleep(self, millis: int) -> bool:
        """Wait ``millis``; False when woken early by a reset or a stop."""
        return not self.wake.wait(millis / 1000) if millis > 0 else True

    # --- records -----------------------------------------------------------------------------

    def plant(self, holder_hash: str, records: dict[str, Any]) -> None:
        with self.lock:
            mine = self.planted.setdefault(holder_hash, {})
            mine.update({k: UNKNOWN if v is None else v for k, v in records.items()})
            land = records.get("land")
            for certificate in land["certificates"] if land else ():
                self.issued[certificate["number"]] = holder_hash

    def land(self, holder_hash: str) -> Any:
        """The holder's land JSON (planted, else synthetic), or UNKNOWN."""
        with self.lock:
            planted = self.planted.get(holder_hash, {})
        if "land" in planted:
            return planted["land"]
        record = synthetic.land(self.seed, holder_hash, self.today())
        with self.lock:
            for certificate in record["certificates"]:
                self.issued.setdefault(certificate["number"], holder_hash)
        return record

    def insurance(self, holder_hash: str) -> Any:
        with self.lock:
            planted = self.planted.get(holder_hash, {})
        if "insurance" in planted:
            return planted["insurance"]
        land = self.land(holder_hash)
        land = land if land is not UNKNOWN else {"certificates": []}
        return synthetic.insurance(self.seed, holder_hash, self.today(), land)

    def add_claim(self, holder_hash: str, claim: dict[str, Any],
                  crop: str | None = None) -> dict[str, Any]:
        """Add ``claim`` to the holder's insurance record (planted, else synthetic, which
        becomes planted) and return the record. The claim is on its ``policy_number``; without
        one, on the holder's first policy of ``crop`` (any crop when None), and a policy of
        ``crop`` covering the event's day is added if there is none. ``LookupError`` for an
        unknown policy number, or no policy and no crop."""
        current = self.insurance(holder_hash)
        record: dict[str, Any] = {"holder_hash": holder_hash, "policies": [], "claims": []} \
            if current is UNKNOWN else copy.deepcopy(current)
        number = claim.get("policy_number")
        found = next((p for p in record["policies"] if p["number"] == number or (
            number is None and crop in (None, p["crop"]))), None)
        if found is None and (number is not None or crop is None):
            raise LookupError("no such policy" if number else "no policy: give a crop")
        if found is None:
            land = self.land(holder_hash)
            found = synthetic.policy(holder_hash, str(crop), date.fromisoformat(
                claim["event_date"]), land if land is not UNKNOWN else {})
            record["policies"].append(found)
        record["claims"].append({**claim, "policy_number": found["number"]})
        with self.lock:
            self.planted.setdefault(holder_hash, {})["insurance"] = record
        return record

    def certificate(self, number: str) -> dict[str, Any] | None:
        """A certificate this service issued (to a holder already asked about, or planted)."""
        with self.lock:
            holder = self.issued.get(number)
        record: Any = self.land(holder) if holder else UNKNOWN
        if record is UNKNOWN:
            return None
        return next((c for c in record["certificates"] if c["number"] == number), None)

    # --- the request log ---------------------------------------------------------------------

    def note(self, registry: str, endpoint: str, fault: str, connection: str) -> Seen:
        seen = Seen(registry=registry, endpoint=endpoint, started=time.monotonic(), fault=fault,
                    connection=connection)
        with self.lock:
            self.seen.append(seen)
        return seen

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [s.as_json() for s in self.seen]
