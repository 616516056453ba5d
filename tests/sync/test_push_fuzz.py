"""The push part's routes through the route-wide fuzzer (tests/test_api_fuzz.py), with a
device and a conflict to reach the handlers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from schemathesis import GenerationMode

from sync.push.models import SyncConflict
from tests import factories
from tests import test_api_fuzz as fuzzing
from tests.test_api_fuzz import fuzz, operations

sign_in = fuzzing.sign_in  # the fuzzer's admin, a fixture

ROUTES = ("/api/v1/sync/push", "/api/v1/sync/devices", "/api/v1/sync/conflicts")


@pytest.fixture
def rows(session: Any) -> dict[str, str]:
    village = factories.village(session)
    coordinator = factories.coordinator(session, factories.station(session, [village]))
    _, device = factories.device_tokens(session, coordinator)
    conflict = SyncConflict(kind="nothing", entity_id=village.public_id, field="name",
                            server_value="a", device_value="b", device_id=device.id,
                            op_id=village.public_id, base_version=1)
    session.add(conflict)
    session.flush()
    ids = {"device_id": str(device.public_id), "conflict_id": str(conflict.public_id),
           "coordinator_id": str(coordinator.public_id)}
    session.commit()
    return ids


def test_the_push_routes_pass_every_check(app: Any, sign_in: Callable[[], dict[str, str]],
                                          rows: dict[str, str]) -> None:
    mine = [op for op in operations(app) if op.path.startswith(ROUTES)]
    assert len(mine) == 5
    failures = [failure for operation in mine
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                for failure in fuzz(operation, mode, sign_in, rows)]
    assert failures == [], "\n\n".join(failures)


def _same(value: Any) -> Any:
    """1 and 1.0 are the same JSON number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return repr(value)


def _unique_in_batch(case: Any) -> None:
    """Operations of a batch with distinct ``op_id`` and ``device_seq`` (a rule JSON Schema
    cannot state, like an ID number's check digit): repeated ones are renumbered."""
    ops = case.body.get("ops") if isinstance(case.body, dict) else None
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        return
    for key, fresh in (("device_seq", lambda i: i + 1), ("op_id", lambda _i: str(uuid.uuid4()))):
        values = [op.get(key) for op in ops]
        if None not in values and len({_same(v) for v in values}) < len(values):
            for index, op in enumerate(ops):
                op[key] = fresh(index)


def test_push_from_a_device_passes_every_check(app: Any, session: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_key = fuzzing._fresh_key
    monkeypatch.setattr(fuzzing, "_fresh_key",
                        lambda case: (_unique_in_batch(case), fresh_key(case)))
    village = factories.village(session)
    coordinator = factories.coordinator(session, factories.station(session, [village]))
    session.commit()

    def on_a_device() -> dict[str, str]:
        return factories.device_headers(session, coordinator)[0]

    (push,) = [op for op in operations(app) if op.path == "/api/v1/sync/push"]
    failures = [failure for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                for failure in fuzz(push, mode, on_a_device)]
    assert failures == [], "\n\n".join(failures)
