"""Shared by the push tests: test-only operation types, a coordinator's device, op builders.

The operation types are registered on the ``app`` fixture before its first request, as a domain
registers its own in ``init_app``:

* ``test_note`` (buffered): creates an editable record ``note`` (one ``record_versions`` row,
  unique per entity id), an audit event and, with ``village_id``, a change entry; ``mode``
  steers it: ``reject`` (Rejected), ``boom`` (an exception while ``TEST_BOOM`` is set),
  ``photos`` waits for uploads (Deferred ``attachment-missing``), ``flag`` adds a flag.
* ``test_rename`` (immediate): renames a village of the coordinator's scope through
  ``records.merge`` (kind ``test_village``), with a resolver for staff; the name ``boom``
  fails after writing.
* ``test_prep``: its ``prepare`` fails.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from marshmallow import fields, validate

from core.api import Schema
from core.places.models import Village
from sync.push import canonical, records
from sync.push.context import Context
from sync.registry import (
    CONFLICT,
    Deferred,
    Op,
    Outcome,
    Rejected,
    register_operation,
    register_resolver,
)
from tests import factories as f


class NoteSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(max=100))
    village_id = fields.Integer()
    photos = fields.List(fields.String(), load_default=list)
    mode = fields.String(load_default="ok",
                         validate=validate.OneOf(["ok", "reject", "boom", "flag"]))


def apply_note(ctx: Context, op: Op) -> Outcome:
    payload = op.payload
    if payload["mode"] == "reject":
        raise Rejected("not-allowed", "refused by the test handler")
    if payload["mode"] == "boom" and ctx.config.get("TEST_BOOM", True):
        raise RuntimeError("boom")
    missing = set(payload["photos"]) - ctx.attachments_ready(payload["photos"])
    if missing:
        raise Deferred("attachment-missing", "a photo has not arrived")
    version = records.create(ctx, "note", op.entity_id, {"text": payload["text"]})
    ctx.audit("note.create", "note", str(op.entity_id), {"seq": op.device_seq})
    if "village_id" in payload:
        ctx.changed("note", op.entity_id, payload["village_id"])
    if payload["mode"] == "flag":
        ctx.flag("test-flag", {"why": "asked"})
    ctx.cache["applied"] = ctx.cache.get("applied", 0) + 1
    return Outcome({"version": version})


class RenameSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))


def _village(ctx_session: Any, entity_id: uuid.UUID) -> Village | None:
    return ctx_session.scalars(sa.select(Village).where(Village.public_id == entity_id)).first()


def apply_rename(ctx: Context, op: Op) -> Outcome:
    village = _village(ctx.session, op.entity_id)
    if village is None or village.id not in ctx.village_ids:
        raise Rejected("not-found", "no such village in scope")
    if op.base_version is None:
        raise Rejected("invalid-payload", "base_version", {"base_version": ["Required."]})
    merged = records.merge(ctx, "test_village", op.entity_id, op.base_version, op.payload,
                           {"name": village.name})
    if "name" in merged.applied:
        village.name = merged.applied["name"]
    ctx.audit("village.rename", "village", str(op.entity_id), {})
    if village.name == "boom":  # fails after writing: the savepoint must undo it all
        ctx.session.flush()
        raise RuntimeError("boom after writing")
    result = {"version": merged.version, "conflicts": merged.conflicts}
    return Outcome(result, CONFLICT if merged.conflicts else "applied")


def resolve_rename(session: Any, entity_id: uuid.UUID, field: str, value: Any) -> None:
    village = _village(session, entity_id)
    assert village is not None
    setattr(village, field, value)
    session.flush()


def failing_prepare(_ctx: Context, _ops: Any) -> None:
    raise RuntimeError("prepare failed")


def register(app: Any) -> None:
    register_operation(app, "test_note", apply_note, schema=NoteSchema())
    register_operation(app, "test_rename", apply_rename, schema=RenameSchema(), immediate=True)
    register_operation(app, "test_prep", apply_note, schema=NoteSchema(),
                       prepare=failing_prepare)
    register_resolver(app, "test_village", resolve_rename)


@pytest.fixture
def push_app(app: Any) -> Any:
    register(app)
    return app


@pytest.fixture
def pclient(push_app: Any) -> Any:
    return push_app.test_client()


@pytest.fixture
def world(push_app: Any, session: Any) -> dict[str, Any]:
    """Two stations, a coordinator with a device at each, and a staff admin."""
    v1, v2 = f.village(session), f.village(session)
    s1, s2 = f.station(session, [v1]), f.station(session, [v2])
    c1, c2 = f.coordinator(session, s1), f.coordinator(session, s2)
    admin = f.staff(session)
    h1, d1 = f.device_headers(session, c1)
    h2, d2 = f.device_headers(session, c2)
    return {"village": v1, "other_village": v2, "coordinator": c1, "other": c2,
            "headers": h1, "device": d1, "other_headers": h2, "other_device": d2,
            "staff": f.auth_headers(session, admin), "admin": admin}


NOW = datetime.now(UTC)


def op(seq: int, payload: dict[str, Any] | None = None, *, type_: str = "test_note",
       op_id: str | None = None, entity_id: str | None = None,
       recorded_at: datetime | None = None, base_version: int | None = None,
       sha: str | None = None) -> dict[str, Any]:
    payload = {"text": f"note {seq}"} if payload is None else payload
    return {"op_id": op_id or str(uuid.uuid4()), "device_seq": seq, "type": type_,
            "entity_id": entity_id or str(uuid.uuid4()), "base_version": base_version,
            "payload": payload, "payload_sha256": sha or canonical.sha256(payload),
            "recorded_at": (recorded_at or datetime.now(UTC) - timedelta(minutes=5)).isoformat()}


def batch(*ops: dict[str, Any], pending: int | None = None,
          sent_at: datetime | None = None) -> dict[str, Any]:
    return {"sent_at": (sent_at or datetime.now(UTC)).isoformat(),
            "pending": len(ops) if pending is None else pending, "ops": list(ops)}


def push(client: Any, headers: dict[str, str], *ops: dict[str, Any], **kwargs: Any) -> Any:
    response = client.post("/api/v1/sync/push", json=batch(*ops, **kwargs), headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def statuses(answer: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    return [(r["device_seq"], r["status"], r["reason"]) for r in answer["results"]]
