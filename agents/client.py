"""The reference device client: a coordinator's phone, in Python, following
``docs/sync-protocol.md`` (cited below as §n).

It is what the tests, the benchmark and the demo use, and what a mobile team reads as the
executable specification, so it says *why* at each rule. It speaks HTTP only (``requests``) and
keeps its state in one SQLite file (:mod:`agents.client_store`): it imports nothing of the
server and no Flask.

A session on the phone::

    client = DeviceClient("https://nongdai.example", "phone.sqlite3")
    client.sign_in("wang.wu", "…")                        # §1, once
    sha = client.add_photo(Path("parcel.jpg"))            # §5, kept locally
    client.record("parcel_visit", {..., "photos": [sha]}) # §2, offline: the outbox only
    client.sync()                                         # photos, push, pull (when online)

The parts: :mod:`agents.client_store` (durable local state, §2), :mod:`agents.client_http`
(retries, backoff and tokens, §1 and §8), :mod:`agents.client_uploads` (tus, §5).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from agents.client_http import (
    TIMEOUT,
    Backoff,
    ProtocolError,
    SignInRequired,
    SyncError,
    Transport,
    Unreachable,
)
from agents.client_store import LocalStore, OutboxOp
from agents.client_uploads import CHUNK, Uploader

__all__ = ["DeviceClient", "ProtocolError", "PullReport", "PushReport", "SignInRequired",
           "SyncError", "Unreachable", "canonical_json", "payload_sha256"]

BATCH = 250  # §3: the reference client sends 250 operations per push
FINAL = frozenset({"applied", "duplicate", "conflict", "rejected"})  # §3.2
# §3.3/§3.5: the server is waiting for a device_seq this device will never send again.
SEQ_STUCK = frozenset({"seq-behind", "waiting-earlier-seq"})
MAX_RESYNCS = 2  # a pull that is sent back to the start more often than this gives up


# -- §3.1 canonical JSON ----------------------------------------------------------------------

def canonical_json(payload: Any) -> str:
    """§3.1: keys sorted, no whitespace, UTF-8 as itself; floats are refused (coordinates are
    integers in 1e-7 degrees, areas decimal strings)."""
    _refuse_floats(payload)
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_sha256(payload: Any) -> str:
    """§3.1: lower-case hex SHA-256 of the canonical JSON's UTF-8 bytes."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("payloads hold no floating-point numbers (§3.1)")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("payload keys are strings")
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _cut_after_registration(batch: list[OutboxOp]) -> list[OutboxOp]:
    """End the batch after a ``register_farmer`` that later operations of the batch cite.

    §6: a registration may be *linked* to a farmer the bank already knows, and the device
    learns the server's id only from the answer. Operations citing the device's id must be
    re-keyed before the server sees them (the server knows no alias: they would be
    ``rejected`` ``not-found``), so they wait for the next batch.
    """
    for index, op in enumerate(batch):
        later = batch[index + 1:]
        if op.type == "register_farmer" and any(
                op.entity_id in (other.entity_id, _farmer_of(other)) for other in later):
            return batch[:index + 1]
    return batch


def _farmer_of(op: OutboxOp) -> str | None:
    value = json.loads(op.payload).get("farmer_id")
    return value if isinstance(value, str) else None


# -- reports ----------------------------------------------------------------------------------

@dataclass
class PushReport:
    """What one :meth:`DeviceClient.push` did: counts by final status, deferrals by reason."""

    batches: int = 0
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    deferred: Counter[str] = field(default_factory=Counter)
    renumbered: int = 0
    acked_seq: int | None = None
    expected_seq: int | None = None
    flags: list[Any] = field(default_factory=list)
    pending: int = 0  # operations still in the outbox afterwards

    @property
    def applied(self) -> int:
        return self.statuses["applied"] + self.statuses["conflict"]


@dataclass
class PullReport:
    pages: int = 0
    changes: int = 0
    resyncs: int = 0


@dataclass
class SyncReport:
    uploaded: list[str]
    push: PushReport
    pull: PullReport


# -- the client -------------------------------------------------------------------------------

class DeviceClient:
    """One coordinator's device: its local state (§2) and its conversation with the server."""

    def __init__(self, base_url: str, db_path: str | Path, device_id: uuid.UUID | str | None
                 = None, session: requests.Session | None = None, *,
                 backoff: Backoff | None = None, attempts: int = 8, chunk: int = CHUNK,
                 timeout: tuple[float, float] = TIMEOUT,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = LocalStore(db_path)
        self.device_id = self._own_id(device_id)
        self.transport = Transport(base_url, self.store, session, backoff=backoff,
                                   attempts=attempts, timeout=timeout)
        self.uploader = Uploader(self.transport, self.store, chunk)
        self.clock = clock

    def _own_id(self, wanted: uuid.UUID | str | None) -> str:
        """§1.1: the device generates its id once and keeps it for its lifetime."""
        kept = self.store.get("device_id")
        if kept is not None:
            if wanted is not None and str(uuid.UUID(str(wanted))) != kept:
                raise ValueError(f"this database belongs to device {kept}")
            return kept
        chosen = str(uuid.UUID(str(wanted))) if wanted is not None else str(uuid.uuid4())
        self.store.set(device_id=chosen)
        return chosen

    def close(self) -> None:
        self.store.close()

    # -- §1 signing in -----------------------------------------------------------------------

    def sign_in(self, username: str, password: str, label: str = "reference client") -> None:
        """§1.1: password sign-in, binding the session to this device's id."""
        response = self.transport.request(
            "POST", "auth/login", auth=False,
            json={"username": username, "password": password,
                  "device": {"id": self.device_id, "label": label}})
        self.transport.keep_tokens(response.json())

    def adopt_tokens(self, pair: dict[str, Any]) -> None:
        """Use a token pair obtained elsewhere (tests sign devices in directly)."""
        self.transport.keep_tokens(pair)

    # -- §2 recording, offline ---------------------------------------------------------------

    def record(self, type_: str, payload: dict[str, Any], entity_id: uuid.UUID | str | None
               = None, base_version: int | None = None) -> str:
        """Write one operation to the outbox and return its ``op_id``. Works offline: when
        this returns, the operation is durably on the device (§2) with the next ``device_seq``.
        ``entity_id`` defaults to a new UUID (the record the operation creates, §6)."""
        text = canonical_json(payload)
        op_id = str(uuid.uuid4())
        self.store.append({
            "op_id": op_id, "type": type_,
            "entity_id": str(uuid.UUID(str(entity_id))) if entity_id else str(uuid.uuid4()),
            "base_version": base_version, "payload": text,
            "payload_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "recorded_at": rfc3339(self.clock()),
        })
        return op_id

    def add_photo(self, photo: str | Path | bytes, content_type: str = "image/jpeg",
                  filename: str | None = None) -> str:
        """Keep a photo for upload (§5) and return its SHA-256, which operations cite."""
        content = photo if isinstance(photo, bytes) else Path(photo).read_bytes()
        name = filename or (Path(photo).name if not isinstance(photo, bytes) else "photo.jpg")
        sha = hashlib.sha256(content).hexdigest()
        self.store.add_photo(sha, content, content_type, name)
        return sha

    def pending(self) -> int:
        """Operations recorded and not yet acknowledged (§2 outbox)."""
        return self.store.pending()

    def outbox(self) -> list[OutboxOp]:
        return self.store.outbox()

    def set_aside(self) -> list[dict[str, Any]]:
        """Operations the server rejected for good (§3.2), for the coordinator to look at."""
        return self.store.finished("rejected")

    def replica(self, kind: str, *, provisional: bool = True) -> dict[str, dict[str, Any]]:
        """The entities of ``kind`` on the device (§2), by id; ``provisional=False`` leaves
        out the records this device created and the server has not confirmed yet."""
        return self.store.replica(kind, provisional=provisional)

    # -- §5 photos ---------------------------------------------------------------------------

    def upload_photos(self) -> list[str]:
        """Upload every unfinished photo (tus, resumable). Photos go before the operations
        that cite them; an operation pushed too early is only deferred (§5)."""
        return self.uploader.upload_all()

    # -- §3 push -----------------------------------------------------------------------------

    def push(self, batch_size: int = BATCH) -> PushReport:
        """Send the outbox in ``device_seq`` order, ``batch_size`` operations per request,
        until it is empty or the server defers its head (a photo missing, ``retry-later``)."""
        report = PushReport()
        while batch := _cut_after_registration(self.store.outbox(batch_size)):
            answer = self.push_batch(batch)
            report.batches += 1
            report.sent += len(batch)
            if not self._settle(batch, answer, report):
                break
        report.pending = self.pending()
        return report

    def push_batch(self, batch: list[OutboxOp]) -> dict[str, Any]:
        """One ``POST /sync/push`` of ``batch`` (retried as is on network errors and 5xx, §8).
        Public so that tests can send any slice of the outbox (reordered batches)."""
        self.store.mark_sent(batch)  # before sending: from now on the server may know them
        body = {"sent_at": rfc3339(self.clock()), "pending": self.pending(),
                "ops": [op.wire() for op in batch]}
        return dict(self.transport.request("POST", "sync/push", json=body).json())

    def settle(self, batch: list[OutboxOp], answer: dict[str, Any]) -> PushReport:
        """Apply a push answer to the local state (see :meth:`push_batch`)."""
        report = PushReport()
        self._settle(batch, answer, report)
        return report

    def _settle(self, batch: list[OutboxOp], answer: dict[str, Any], report: PushReport) -> bool:
        """§3.2: delete what reached a final state, keep the rest; renumber when the server
        waits for a sequence this device will never send (§3.5). True if pushing on can help:
        not when the head of the outbox was just deferred (a photo missing, ``retry-later``).

        Deliberately *not* done: deleting every operation whose ``device_seq`` ≤ ``acked_seq``
        (§2 allows it). On a phone restored from a backup those numbers belong to other,
        older operations: the new ones answered ``seq-behind`` would be deleted unsent. Only
        a final result for the operation's own ``op_id`` deletes it."""
        results = {r.get("op_id"): r for r in answer.get("results", [])}
        report.acked_seq, report.expected_seq = answer.get("acked_seq"), answer.get("expected_seq")
        report.flags.extend(answer.get("flags") or [])
        moved = False
        with self.store.transaction() as conn:
            for op in batch:
                result = results.get(op.op_id)
                if result is None:
                    continue  # no answer for it: keep it (§2)
                status = result.get("status")
                if status in FINAL:
                    self._finish(conn, op, result)
                    report.statuses[status] += 1
                    moved = True
                else:
                    report.deferred[str(result.get("reason"))] += 1
            renumbered = self._renumber_if_stuck(conn, results, report.expected_seq)
        report.renumbered += renumbered
        if renumbered:
            return True
        head = self.store.outbox(1)
        if head and head[0].op_id in results:  # the server holds the queue at its head
            return False
        return moved

    def _finish(self, conn: sqlite3.Connection, op: OutboxOp, result: dict[str, Any]) -> None:
        """A final answer: out of the outbox; a duplicate counts as what it was the first time
        (``original_status``), so a rejection stays set aside."""
        status = result["status"]
        if status == "duplicate" and result.get("original_status"):
            status = result["original_status"]
        self.store.finish(conn, op, {**result, "status": status})
        if op.type == "register_farmer":
            self._settle_registration(conn, op, status, result.get("result") or {})

    def _settle_registration(self, conn: sqlite3.Connection, op: OutboxOp, status: str,
                             result: dict[str, Any]) -> None:
        """§6: a farmer the bank already knew is *linked*: the device re-keys its local record
        (and the operations that cite it and the server has never seen) to the server's id."""
        if status == "rejected":
            self.store.drop_provisional(conn, "farmer", op.entity_id)
            return
        farmer_id = result.get("farmer_id")
        if not result.get("linked") or not farmer_id or farmer_id == op.entity_id:
            return
        self.store.rekey(conn, "farmer", op.entity_id, str(farmer_id))
        for later in self.store.outbox():
            self._rekey_op(conn, later, op.entity_id, str(farmer_id))

    def _rekey_op(self, conn: sqlite3.Connection, op: OutboxOp, old: str, new: str) -> None:
        if op.sent:  # the server may have it already: changing it would be op-id-reused
            return
        payload = json.loads(op.payload)
        entity_id = new if op.entity_id == old else op.entity_id
        if payload.get("farmer_id") == old:
            payload["farmer_id"] = new
        text = canonical_json(payload)
        if entity_id != op.entity_id or text != op.payload:
            self.store.rewrite(conn, op.op_id, entity_id, text,
                               hashlib.sha256(text.encode()).hexdigest())

    def _renumber_if_stuck(self, conn: sqlite3.Connection, results: dict[Any, dict[str, Any]],
                           expected: int | None) -> int:
        """§3.5: when the head of the outbox is deferred ``seq-behind`` (a restored backup, a
        clone) or ``waiting-earlier-seq`` while no earlier operation is left on the device (the
        earlier sequences came back ``duplicate`` under other numbers), the server waits for a
        sequence this device will never send: renumber the outbox from ``expected_seq``."""
        head = conn.execute("SELECT op_id, device_seq FROM outbox ORDER BY device_seq LIMIT 1"
                            ).fetchone()
        if head is None or expected is None or head[1] == expected:
            return 0
        answer = results.get(head[0])
        if answer is None or answer.get("status") != "deferred" \
                or answer.get("reason") not in SEQ_STUCK:
            return 0
        return self.store.renumber(conn, int(expected))

    # -- §4 pull -----------------------------------------------------------------------------

    def pull(self, limit: int | None = None) -> PullReport:
        """Page through the changes since the stored cursor while ``has_more``; store each
        page's changes and its cursor in one local transaction (§4). On 412 forget the
        replica and the cursor, then start over (the outbox is never touched)."""
        report = PullReport()
        while True:
            response = self._pull_page(limit)
            if response.status_code == 412:
                if report.resyncs >= MAX_RESYNCS:
                    raise ProtocolError(response)
                with self.store.transaction() as conn:
                    self.store.discard_replica(conn)
                report.resyncs += 1
                continue
            page = response.json()
            with self.store.transaction() as conn:
                report.changes += self.store.apply_changes(conn, page["changes"])
                self.store.put(conn, cursor=page["cursor"])
            report.pages += 1
            if not page.get("has_more"):
                return report

    def _pull_page(self, limit: int | None) -> requests.Response:
        params: dict[str, Any] = {}
        cursor = self.store.get("cursor")
        if cursor:
            params["cursor"] = cursor
        if limit:
            params["limit"] = limit
        return self.transport.request(
            "GET", "sync/pull", params=params, headers={"Accept-Encoding": "gzip"},
            ok=lambda r: r.status_code < 400 or r.status_code == 412)

    # -- everything --------------------------------------------------------------------------

    def sync(self, batch_size: int = BATCH) -> SyncReport:
        """What the phone does when a signal appears: photos first (§5), then push until the
        outbox is empty or only deferred operations remain (§3), then pull (§4)."""
        uploaded = self.upload_photos()
        pushed = self.push(batch_size)
        if pushed.deferred["attachment-missing"] and self.store.unfinished_photos():
            uploaded += self.upload_photos()
            pushed = self.push(batch_size)
        return SyncReport(uploaded, pushed, self.pull())
