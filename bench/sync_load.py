"""The sync benchmark's HTTP driver (see ``bench/sync.py``): phones pushing, a phone pulling.

- :func:`push` sends every phone's batches, one thread per phone (each with its own
  ``requests.Session``, as a phone has its own connection), a phone's batches one after the
  other as the reference client sends them, all phones at once; it records the time, every
  operation's status and whether each answer acknowledged its whole batch (``acked_seq``).
  The same call with the same batches is the replay.
- :func:`pull` is a coordinator's first full pull, page by page, with ``Accept-Encoding:
  gzip``: the bytes as they came over the wire (compressed), the time of all pages, and what
  they held.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.http_load import Progress
from bench.sync_seed import Batch, Phone

PUSH = "/api/v1/sync/push"
PULL = "/api/v1/sync/pull"
RETRIES = 3


@dataclass
class PushPass:
    """One pass of pushes: its wall time and what came back."""

    seconds: float = 0.0
    operations: int = 0
    http: Counter[int] = field(default_factory=Counter)  # HTTP statuses, per batch
    results: Counter[str] = field(default_factory=Counter)  # per-operation statuses
    reasons: Counter[str] = field(default_factory=Counter)  # rejected/deferred reasons
    result_flags: Counter[str] = field(default_factory=Counter)  # plausibility flags
    unacked: int = 0  # batches whose acked_seq fell short of their last device_seq
    retries: int = 0  # batches sent again after a connection closed under them
    batch_ms: list[float] = field(default_factory=list)
    sample_error: str = ""

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0


def _send(http: requests.Session, base: str, batch: Batch, out: PushPass,
          lock: threading.Lock) -> None:
    started = time.perf_counter()
    for attempt in range(RETRIES + 1):
        try:
            answer = http.post(f"{base}{PUSH}", data=batch.body, timeout=300, headers={
                "Authorization": f"Bearer {batch.phone.token}",
                "Content-Type": "application/json"})
            break
        except requests.ConnectionError:
            # gunicorn's gthread worker closes a keep-alive connection it did not get to within
            # its keep-alive time (2 s) when its threads starve its main loop; a phone sends the
            # same batch again (always safe, docs/sync-protocol.md §2), and so does this.
            if attempt == RETRIES:
                raise
            with lock:
                out.retries += 1
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    acked = -1
    if answer.status_code == 200:
        body = answer.json()
        acked = body.get("acked_seq", -1)
        for result in body["results"]:
            statuses[result["status"]] += 1
            if result.get("reason"):
                reasons[f"{result['status']}:{result['reason']}"] += 1
            for flag in (result.get("result") or {}).get("flags", []) or []:
                flags[flag if isinstance(flag, str) else json.dumps(flag, sort_keys=True)] += 1
    elapsed = (time.perf_counter() - started) * 1000
    with lock:
        out.http[answer.status_code] += 1
        out.results.update(statuses)
        out.reasons.update(reasons)
        out.result_flags.update(flags)
        out.batch_ms.append(elapsed)
        if acked < batch.last_seq:
            out.unacked += 1
        if answer.status_code != 200 and not out.sample_error:
            out.sample_error = f"{answer.status_code} {answer.text[:500]}"


def push(base: str, pushes: list[list[Batch]], label: str) -> PushPass:
    """Every phone sends its batches in order, all phones at once; the pass's wall time runs
    from the first request sent to the last answer read."""
    out = PushPass(operations=sum(b.last_seq - b.first_seq + 1 for p in pushes for b in p))
    lock = threading.Lock()
    progress = Progress(label, sum(len(p) for p in pushes))
    progress_lock = threading.Lock()
    sessions = [requests.Session() for _ in pushes]

    def phone(n: int) -> None:
        for batch in pushes[n]:
            _send(sessions[n], base, batch, out, lock)
            with progress_lock:
                progress.step()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(pushes)) as pool:
        for future in [pool.submit(phone, n) for n in range(len(pushes))]:
            future.result()
    out.seconds = time.perf_counter() - started
    progress.close()
    for http in sessions:
        http.close()
    return out


@dataclass
class PullPass:
    """A first full pull: pages, bytes as sent, time, and what arrived."""

    seconds: float = 0.0
    wire_bytes: int = 0  # the bodies as sent (gzip), all pages
    json_bytes: int = 0  # the same, decompressed
    pages: int = 0
    gzip_pages: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    parcels: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    sample: dict[str, Any] = field(default_factory=dict)


def pull(base: str, phone: Phone, limit: int | None) -> PullPass:
    """Pull from no cursor while ``has_more``; count the compressed bytes of every body as it
    came off the socket (``raw.read(decode_content=False)``), then decompress and parse each
    page (a phone must, and that is part of the time)."""
    out = PullPass()
    http = requests.Session()
    http.get(f"{base}/healthz", timeout=30)
    headers = {"Authorization": f"Bearer {phone.token}", "Accept-Encoding": "gzip"}
    cursor: str | None = None
    started = time.perf_counter()
    while True:
        params: dict[str, Any] = {} if limit is None else {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        answer = http.get(f"{base}{PULL}", params=params, headers=headers, stream=True,
                          timeout=120)
        raw = answer.raw.read(decode_content=False)
        out.statuses[answer.status_code] += 1
        out.pages += 1
        out.wire_bytes += len(raw)
        if answer.headers.get("Content-Encoding") == "gzip":
            out.gzip_pages += 1
            raw = gzip.decompress(raw)
        out.json_bytes += len(raw)
        if answer.status_code != 200:
            out.sample = {"status": answer.status_code, "body": raw[:500].decode(errors="replace")}
            break
        page = json.loads(raw)
        for change in page["changes"]:
            out.kinds[change["kind"]] += 1
            if change["kind"] == "farmer" and change.get("data"):
                out.parcels += len(change["data"].get("parcels", []))
                if not out.sample:
                    out.sample = change
        cursor = page.get("cursor")
        if not page.get("has_more"):
            break
    out.seconds = time.perf_counter() - started
    http.close()
    return out
