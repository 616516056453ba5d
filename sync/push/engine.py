"""The push engine: a device's batch applied in ``device_seq`` order, each operation once
(docs/sync-protocol.md §3).

The steps of a batch, and why:

1. A read (no write lock on SQLite): the device's state and which ``op_id`` of the batch the
   server already recorded. A batch made only of recorded operations (a replay after a lost
   answer) is answered from those records without writing anything.
2. Outside the write lock, per new operation: the payload hash, the type and the payload
   schema (CPU only).
3. The write: the device's row locked; handlers' ``prepare`` once per type; then each
   operation in sequence order. A buffered handler's rows wait in its unit; units are written
   together (one executemany per table, in one savepoint), before an immediate handler runs
   and at the end. When such a group fails, it is rolled back and written unit by unit, each
   in its own savepoint: the unit that fails is rejected alone.
4. ``acked_seq`` moves over every sequence that reached a final state; the device's row, one
   audit event for the batch; the request commits once.

An unexpected exception in a handler rolls back that operation alone and answers it
``deferred`` ``retry-later``: the device keeps it and sends it again, nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app, g
from sqlalchemy.exc import DataError, IntegrityError

from core.authz import Principal
from core.db import DbSession, begin_read, end_read, savepoint, utcnow
from core.errors import NongdaiError
from core.i18n import gettext
from core.lifecycle import note_audit_event
from sync import registry
from sync.push import devicestate, outcomes, writer
from sync.push.context import AUDIT, Context, Unit, Who
from sync.push.models import SyncOp
from sync.push.outcomes import (
    CLOCK_SKEW,
    DEFERRED,
    INVALID_PAYLOAD,
    NOT_ALLOWED,
    NOT_FOUND,
    REJECTED,
    RETRY_LATER,
    SEQ_BEHIND,
    SEQ_REGRESSION,
    WAITING,
)
from sync.registry import APPLIED, Deferred, Op, Operation, Outcome, Rejected

log = logging.getLogger(__name__)

SENT_AT_TOLERANCE = timedelta(days=1)


def push(session: DbSession, principal: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a checked envelope (``PushSchema``) from ``principal``'s device; the answer of
    §3.2. The caller's request commits."""
    device_id = int(principal.device_id or 0)
    ops = [Op(**raw) for raw in body["ops"]]
    begin_read(session)
    state = devicestate.read(session, device_id)
    known = outcomes.known(session, device_id, ops)
    if state is not None and all(op.op_id in known and op.device_seq <= state.acked_seq
                                 for op in ops):
        return _replay(ops, known, state.acked_seq)
    operations = registry.of().operations
    checks = {op.op_id: outcomes.check(op, operations) for op in ops if op.op_id not in known}
    end_read(session)
    return Batch(session, principal, body, ops, checks).run(state, known)


def _replay(ops: Sequence[Op], known: Mapping[Any, Any], acked: int) -> dict[str, Any]:
    g.no_audit_needed = True  # answered from the records: nothing changed
    return outcomes.answer([outcomes.from_known(op, known[op.op_id]) for op in ops], acked, [])


class Batch:
    """One push request's work under the device's lock (see the module docstring)."""

    def __init__(self, session: DbSession, principal: Principal, body: Mapping[str, Any],
                 ops: list[Op], checks: dict[Any, Op | Rejected]) -> None:
        self.session, self.principal, self.body = session, principal, body
        self.ops, self.checks = ops, checks
        self.device_id = int(principal.device_id or 0)
        self.received_at = utcnow()
        self.config = _config()
        self.operations = registry.of().operations
        self.ahead_tolerance = timedelta(
            minutes=int(self.config["NONGDAI_SYNC_CLOCK_TOLERANCE_MINUTES"]))
        self.oldest = timedelta(days=int(self.config["NONGDAI_SYNC_MAX_OFFLINE_DAYS"]))
        self.results: list[dict[str, Any] | None] = [None] * len(ops)
        self.pending: list[Unit] = []
        self.finals: set[int] = set()  # sequences of this batch that reached a final state
        self.ahead: set[int] = set()
        self.expected = 1
        self.behind: list[int] = []
        # A sequence already passed stops the queue like any deferral: the device renumbers
        # its operations, in order, and a later one must not overtake them (§3.3, §3.5).
        self.stopped = False
        self.failed_types: set[str] = set()
        self.ctx: Context

    # --- the batch ---------------------------------------------------------------------

    def run(self, read: Any, known: dict[Any, Any]) -> dict[str, Any]:
        """``read``: the device's row as the read saw it (None: no row yet), and ``known`` its
        records of the batch's ``op_id``; asked again only if another push came in between."""
        state = devicestate.lock(self.session, self.device_id, exists=read is not None)
        if read is None or dict(state._mapping) != dict(read._mapping):
            known = outcomes.known(self.session, self.device_id, self.ops)
        acked = int(state.acked_seq)
        self.ahead = {seq for seq in state.final_ahead or [] if seq > acked}
        self.expected = acked + 1
        self._advance()
        self.ctx = Context(self.session, Who(
            self.device_id, state.device_public_id, self.principal.id,
            self.principal.public_id, self.principal.village_ids), self.received_at,
            self.config)
        self._prepare(known)
        for index in sorted(range(len(self.ops)), key=lambda i: self.ops[i].device_seq):
            self._one(index, known.get(self.ops[index].op_id))
        self._flush()
        flags = self._save(state)
        results = [item for item in self.results if item is not None]
        self._audit(results)
        return outcomes.answer(results, self.expected - 1, flags)

    def _advance(self) -> None:
        while self.expected in self.finals or self.expected in self.ahead:
            self.expected += 1

    def _final(self, seq: int) -> None:
        self.finals.add(seq)
        self._advance()

    def _prepare(self, known: Mapping[Any, Any]) -> None:
        """Each type's ``prepare`` once, with the batch's new operations of that type."""
        by_type: dict[str, list[Op]] = {}
        for op in self.ops:
            checked = self.checks.get(op.op_id)
            if op.op_id not in known and isinstance(checked, Op) and op.device_seq >= self.expected:
                by_type.setdefault(op.type, []).append(checked)
        for type_, ops in by_type.items():
            operation = self.operations[type_]
            if operation.prepare is None:
                continue
            try:
                operation.prepare(self.ctx, ops)
            except Exception:
                log.exception("sync prepare failed for %s; its operations wait", type_)
                self.failed_types.add(type_)

    def _one(self, index: int, record: Any) -> None:
        op = self.ops[index]
        if record is not None:
            self.results[index] = outcomes.from_known(op, record)
            self._final(op.device_seq)
            return
        if op.device_seq < self.expected:
            self.behind.append(op.device_seq)
            self._defer(index, SEQ_BEHIND, gettext(
                "This sequence number was already used; renumber from expected_seq"))
            self.stopped = True
            return
        if op.device_seq > self.expected or self.stopped:
            self._wait(index)
            return
        checked = self.checks.get(op.op_id) or outcomes.check(op, self.operations)
        if isinstance(checked, Rejected):
            self._reject(index, op, checked)
            return
        operation = self.operations[op.type]
        if op.type in self.failed_types:
            self._defer(index, RETRY_LATER, gettext("The server could not apply it now"))
        elif operation.immediate:
            self._immediate(index, checked, operation)
        else:
            self._buffered(index, checked, operation)

    # --- outcomes --------------------------------------------------------------------------

    def _wait(self, index: int) -> None:
        self._defer(index, WAITING, gettext("An earlier operation has not been applied yet"))

    def _defer(self, index: int, reason: str, detail: str) -> None:
        self.results[index] = outcomes.item(self.ops[index], DEFERRED, reason=reason, detail=detail)

    def _reject(self, index: int, op: Op, exc: Rejected) -> None:
        errors = outcomes.jsonable(exc.errors) if exc.errors else None
        record = self._record(op, REJECTED, {"errors": errors} if errors else None, [],
                              reason=exc.reason, detail=str(exc.detail))
        self.pending.append(Unit(index, op, [], record))
        self.results[index] = outcomes.item(op, REJECTED, reason=exc.reason, detail=str(exc.detail),
                                    errors=errors)
        self._final(op.device_seq)

    def _applied(self, unit: Unit) -> None:
        record = unit.record
        self.results[unit.index] = outcomes.item(unit.op, record["status"], result=record["result"])
        self._final(unit.op.device_seq)

    def _failed(self, index: int, op: Op) -> None:
        log.exception("sync operation %s (seq %d) failed; deferred", op.type, op.device_seq)
        self._defer(index, RETRY_LATER, gettext("The server could not apply it now"))

    # --- applying --------------------------------------------------------------------------

    def _buffered(self, index: int, op: Op, operation: Operation) -> None:
        self.ctx.begin(op, immediate=False)
        try:
            outcome = operation.apply(self.ctx, op)
            unit = self._unit(index, op, outcome)
        except Exception as exc:  # sorted by _not_applied; never a 500
            self._not_applied(index, op, exc)
        else:
            self.pending.append(unit)
            self._applied(unit)

    def _immediate(self, index: int, op: Op, operation: Operation) -> None:
        self._flush()
        if op.device_seq != self.expected:  # an earlier unit failed to be written
            self._wait(index)
            return
        self.ctx.begin(op, immediate=True)
        try:
            with savepoint(self.session):
                outcome = operation.apply(self.ctx, op)
                unit = self._unit(index, op, outcome)
                self.session.flush()
                writer.write(self.session, [unit])
        except Exception as exc:  # sorted by _not_applied; never a 500
            self._not_applied(index, op, exc)
        else:
            self._applied(unit)

    def _not_applied(self, index: int, op: Op, exc: Exception) -> None:
        """An operation that raised: a refusal is final (``rejected``: the handler's own, the
        database's, or a domain service's 4xx problem), a ``Deferred`` waits, anything else is
        the server's fault and waits too (``retry-later``), logged."""
        self.ctx.take()
        if isinstance(exc, Deferred):
            self._defer(index, exc.reason, str(exc.detail))
            return
        refusal = exc if isinstance(exc, Rejected) else _refusal(exc)
        if refusal is None:
            self._failed(index, op)
        else:
            self._reject(index, op, refusal)

    def _unit(self, index: int, op: Op, outcome: Outcome) -> Unit:
        rows, flags = self.ctx.take()
        result = dict(outcome.result)
        result.setdefault("entity_id", str(op.entity_id))
        return Unit(index, op, rows, self._record(op, outcome.status or APPLIED, result, flags))

    def _record(self, op: Op, status: str, result: dict[str, Any] | None,
                flags: list[dict[str, Any]], *, reason: str | None = None,
                detail: str | None = None) -> dict[str, Any]:
        """The ``sync_ops`` row of an operation in a final state."""
        flags = [*flags, *self._clock_flags(op)]
        if result is not None:
            codes = list(result.get("flags") or [])
            codes += [flag["code"] for flag in flags if flag["code"] not in codes]
            result = outcomes.jsonable({**result, "flags": codes})
        return {"device_id": self.device_id, "op_id": op.op_id, "device_seq": op.device_seq,
                "type": op.type[:60], "entity_id": op.entity_id,
                "payload_key": outcomes.payload_key(op.payload_sha256), "status": status,
                "reason": reason, "detail": detail, "result": result,
                "flags": outcomes.jsonable(flags),
                "recorded_at": op.recorded_at, "received_at": self.received_at}

    def _clock_flags(self, op: Op) -> list[dict[str, Any]]:
        """§3.4: a recording time in the future or older than the longest offline spell."""
        off = op.recorded_at - self.received_at
        if off > self.ahead_tolerance or off < -self.oldest:
            return [{"code": CLOCK_SKEW, "detail": {
                "recorded_at": op.recorded_at.isoformat(),
                "offset_seconds": int(off.total_seconds())}}]
        return []

    # --- writing ---------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write the waiting units together; if that fails, one by one."""
        units, self.pending = self.pending, []
        if not units:
            return
        try:
            with savepoint(self.session):
                writer.write(self.session, units)
        except Exception as exc:
            log.warning("sync bulk write failed (%s); writing operation by operation",
                        type(exc).__name__)
            self._write_each(units)

    def _write_each(self, units: Iterable[Unit]) -> None:
        stopped = False
        for unit in units:
            if stopped:
                self.finals.discard(unit.op.device_seq)
                self._wait(unit.index)
            elif not self._write_one(unit):
                self.finals.discard(unit.op.device_seq)
                self.expected = unit.op.device_seq
                self._defer(unit.index, RETRY_LATER, gettext("The server could not apply it now"))
                stopped = True

    def _write_one(self, unit: Unit) -> bool:
        """Write one unit in its own savepoint. A row the database refuses (a unique key
        taken: ``not-allowed``; a value it cannot store: ``invalid-payload``) rejects the
        operation alone, its record kept; retrying would not help. False when even that record
        could not be written, or on any other error (the operation waits, ``retry-later``)."""
        try:
            with savepoint(self.session):
                writer.write(self.session, [unit])
            return True
        except (IntegrityError, DataError) as exc:
            if unit.record["status"] == REJECTED:
                return False
            refused = exc
        except Exception as exc:
            log.warning("sync operation %s could not be written (%s)", unit.op.type,
                        type(exc).__name__)
            return False
        rejection = _refusal(refused)
        reason, detail = (rejection.reason, rejection.detail) if rejection else (
            INVALID_PAYLOAD, gettext("A value of the operation cannot be stored"))
        rejected = Unit(unit.index, unit.op, [], self._record(
            unit.op, REJECTED, None, [], reason=reason, detail=detail))
        try:
            with savepoint(self.session):
                writer.write(self.session, [rejected])
        except Exception:
            return False
        self.results[unit.index] = outcomes.item(unit.op, REJECTED, reason=reason,
                                                 detail=detail)
        return True

    # --- the device and the trail ----------------------------------------------------------

    def _save(self, state: Any) -> list[str]:
        acked = self.expected - 1
        flags = dict(state.flags or {})
        raised: list[str] = []
        now = self.received_at.isoformat()
        if self.behind:
            seen = flags.get(SEQ_REGRESSION) or {}
            flags[SEQ_REGRESSION] = {"at": now, "acked_seq": int(state.acked_seq),
                                     "device_seqs": sorted(self.behind)[:20],
                                     "count": int(seen.get("count", 0)) + len(self.behind)}
            raised.append(SEQ_REGRESSION)
        sent_at: datetime = self.body["sent_at"]
        if abs(sent_at - self.received_at) > SENT_AT_TOLERANCE:
            flags[CLOCK_SKEW] = {"at": now, "sent_at": sent_at.isoformat(),
                                 "offset_seconds": int((sent_at - self.received_at)
                                                       .total_seconds())}
            raised.append(CLOCK_SKEW)
        ahead = sorted(seq for seq in self.ahead | self.finals if seq > acked)
        devicestate.save(self.session, self.device_id, {
            "acked_seq": acked, "final_ahead": ahead, "last_push_at": self.received_at,
            "last_sent_at": sent_at, "pending_reported": self.body["pending"], "flags": flags})
        return raised

    def _audit(self, results: Sequence[dict[str, Any]]) -> None:
        counts: dict[str, int] = {}
        for item in results:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        self.session.execute(sa.insert(AUDIT), {
            "occurred_at": self.received_at, "actor": self.ctx.actor, "action": "sync.push",
            "object_type": "devices", "object_id": str(self.ctx.device_public_id),
            "request_id": self.ctx._request_id,
            "summary": {"ops": len(results), "acked_seq": self.expected - 1, **counts}})
        note_audit_event(self.session)


def _config() -> Mapping[str, Any]:
    return current_app.config


__all__ = ["Context", "Deferred", "Outcome", "Rejected", "SyncOp", "push"]


def _refusal(exc: Exception) -> Rejected | None:
    """Why an operation is refused for good, or None for an error of the server's. The
    database: a unique key taken (``not-allowed``), a value it cannot store
    (``invalid-payload``). A domain service's 4xx problem (what the same input would get from
    the online API): 404 ``not-found``, 400/422 ``invalid-payload`` with its errors, any other
    (409…) ``not-allowed``; 429 is a wait, not a refusal. Retrying a refusal would not help, and
    a queue held by one would stop the device for good."""
    if isinstance(exc, IntegrityError):
        return Rejected(NOT_ALLOWED, gettext("The operation conflicts with a record the server "
                                             "already holds"))
    if isinstance(exc, DataError):
        return Rejected(INVALID_PAYLOAD, gettext("A value of the operation cannot be stored"))
    if not isinstance(exc, NongdaiError) or exc.status >= 500 or exc.status == 429:
        return None
    reason = {404: NOT_FOUND}.get(exc.status) or (
        INVALID_PAYLOAD if exc.status in {400, 422} else NOT_ALLOWED)
    return Rejected(reason, str(exc.detail), exc.errors)
