"""A Hypothesis state machine of the protocol: one device, the real client, the real server.

Rules: record operations, push under a fault (request dropped, answer lost, request
duplicated, server crash before commit) with any batch size, push a reordered batch, pull,
back the phone up, restore the backup. After every step:

* nothing is lost: every recorded operation is still in the outbox or on the server;
* nothing is duplicated: the server holds at most one record per ``op_id``, never an op the
  device did not record, and one visit per recorded visit;
* the device's acknowledged state never runs ahead: what left the outbox is on the server.

At the end a quiet sync leaves the outbox empty and every operation applied exactly once.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from agents.client import SyncError
from tests.agents import faults
from tests.agents.faults import DROP, DUPLICATE, LOSE, CrashSwitch

FAULTS = st.sampled_from([None, DROP, LOSE, DUPLICATE, "crash"])


class Protocol(RuleBasedStateMachine):
    """One phone of a fresh coordinator; the environment comes from the test (class vars)."""

    base_url: ClassVar[str]
    session: ClassVar[Any]
    folder: ClassVar[Path]
    switch: ClassVar[CrashSwitch]

    def __init__(self) -> None:
        super().__init__()
        self.world = faults.field_world(self.session)
        self.client, self.adapter = faults.device(self.base_url, self.session,
                                                  self.world.coordinator, self.folder)
        self.recorded: dict[str, str] = {}  # op_id -> entity_id
        self.backup: Path | None = None

    # -- rules -------------------------------------------------------------------------------

    @rule(count=st.integers(1, 4), farmer=st.integers(0, 1))
    def record(self, count: int, farmer: int) -> None:
        for _ in range(count):
            op_id = self.client.record("parcel_visit", faults.parcel_visit(
                self.world.farmer_ids[farmer], len(self.recorded)))
            self.recorded[op_id] = self.client.outbox()[-1].entity_id

    @rule(fault=FAULTS, batch=st.integers(1, 5))
    def push(self, fault: str | None, batch: int) -> None:
        if fault == "crash":
            self.switch.arm()
        elif fault is not None:
            self.adapter.script.append(fault)
        with contextlib.suppress(SyncError):
            self.client.push(batch_size=batch)
        self.switch.armed = 0  # a crash not triggered (empty outbox) does not linger

    @rule(fault=st.sampled_from([LOSE, DUPLICATE]), seed=st.integers(0, 1000))
    def push_reordered(self, fault: str, seed: int) -> None:
        """A later batch overtakes an earlier one; one answer is lost or a request doubled."""
        rng = random.Random(seed)  # noqa: S311 - drawn by Hypothesis
        batches = list(faults.resplit(self.client.outbox(), rng))
        if not batches:
            return
        self.adapter.script.append(fault)
        for batch in batches:
            current = {op.op_id: op for op in self.client.outbox()}
            fresh = [current[op.op_id] for op in batch if op.op_id in current]
            if not fresh:
                continue
            with contextlib.suppress(SyncError):
                self.client.settle(fresh, self.client.push_batch(fresh))

    @rule(lose=st.booleans())
    def pull(self, lose: bool) -> None:
        if lose:
            self.adapter.script.append(LOSE)
        self.client.pull(limit=2)

    @precondition(lambda self: self.backup is None)
    @rule()
    def take_backup(self) -> None:
        self.backup = faults.backup(self.client, self.folder / f"{self.client.device_id}.bak")

    @precondition(lambda self: self.backup is not None)
    @rule()
    def restore_backup(self) -> None:
        """Only after everything reached the server: what a restore throws away locally
        (operations never sent) is lost by the phone, not by the protocol."""
        self._drain()
        assert self.backup is not None
        self.client = faults.restore(self.client, self.backup)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def nothing_lost_nothing_doubled(self) -> None:
        held = faults.server_ops(self.session, self.recorded)
        assert set(held.values()) <= {1}
        outbox = {op.op_id for op in self.client.outbox()}
        assert outbox <= set(self.recorded)
        # what left the outbox was acknowledged, so the server has it
        assert set(self.recorded) - outbox <= set(held)
        visits = faults.server_visits(self.session, self.recorded.values())
        assert set(visits.values()) <= {1}

    def _drain(self) -> None:
        for _ in range(10):
            self.client.sync(batch_size=3)
            if self.client.pending() == 0:
                return
        raise AssertionError("the outbox never drained")

    def teardown(self) -> None:
        self._drain()
        held = faults.server_ops(self.session, self.recorded)
        assert held == dict.fromkeys(self.recorded, 1)
        entities = list(self.recorded.values())
        assert faults.server_visits(self.session, entities) == dict.fromkeys(entities, 1)
        self.client.close()


def test_protocol_state_machine(app: Any, live_server: str, session: Any) -> None:
    Protocol.base_url, Protocol.session = live_server, session
    Protocol.switch = CrashSwitch.install(app)
    try:
        with faults.phone_storage() as folder:
            Protocol.folder = folder
            run_state_machine_as_test(Protocol, settings=settings(
                max_examples=25, stateful_step_count=12, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    finally:
        CrashSwitch.uninstall(app)
