"""The push envelope and answer (docs/sync-protocol.md §3), and the staff views' shapes.

The envelope is checked whole (422 for the batch); an operation's ``payload`` is not looked at
here: a wrong payload is that one operation's ``rejected`` result (the type's own schema loads
it), so its text is not checked for NUL characters here either.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import current_app
from marshmallow import fields, validate

from core.api import BAD_TEXT, PageArgs, ResponseSchema, Schema, Text, page_schema
from core.api.schemas import bad_text_paths
from core.i18n import gettext
from sync.push.models import KEEP_SERVER, OPEN, RESOLVED, TAKE_DEVICE

SEQ_MAX = 2**53 - 1  # exact in every JSON reader


class UtcDateTime(fields.AwareDateTime):
    """An RFC 3339 time with an offset, turned to UTC (a time that has no UTC value, such as
    year 1 at +14:00, is refused, not a server error)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise ma.ValidationError(gettext("Not a valid datetime.")) from exc


class _BatchSize(validate.Length):
    """1 to ``NONGDAI_SYNC_BATCH_MAX`` operations, read when used (a ``Length``, so that the
    OpenAPI document gives ``minItems`` and ``maxItems``)."""

    def __init__(self) -> None:
        self.min, self.equal, self.error = 1, None, None

    @property
    def max(self) -> int:  # type: ignore[override] # read from the settings when used
        return int(current_app.config["NONGDAI_SYNC_BATCH_MAX"])

    def __call__(self, value: Any) -> Any:
        most = self.max
        if not 1 <= len(value) <= most:
            raise ma.ValidationError(gettext(
                "Send between %(min)d and %(max)d operations.", min=1, max=most))
        return value


def _check_text_but_payloads(data: Any) -> None:
    """NUL characters and unpaired surrogates anywhere in the envelope but in payloads."""
    if isinstance(data, dict) and isinstance(data.get("ops"), list):
        data = {**data, "ops": [{k: v for k, v in op.items() if k != "payload"}
                                if isinstance(op, dict) else op for op in data["ops"]]}
    elif isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "payload"}
    if [path for path in bad_text_paths(data) if path]:
        raise ma.ValidationError(gettext(BAD_TEXT))


_SHA = re.compile("[0-9a-f]{64}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_OP_KEYS = frozenset({"op_id", "device_seq", "type", "entity_id", "base_version", "payload",
                      "payload_sha256", "recorded_at"})
_REQUIRED = _OP_KEYS - {"base_version"}


def _int(value: Any, low: int) -> bool:
    return type(value) is int and low <= value <= SEQ_MAX


def _time(value: Any) -> datetime | None:
    if type(value) is not str or not _RFC3339.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _fast_op(raw: Any) -> dict[str, Any] | None:
    if type(raw) is not dict or not _REQUIRED <= raw.keys() <= _OP_KEYS:
        return None
    type_, base, sha = raw["type"], raw.get("base_version"), raw["payload_sha256"]
    recorded_at = _time(raw["recorded_at"])
    if (not _int(raw["device_seq"], 1) or type(type_) is not str or not 0 < len(type_) <= 60
            or bad_text_paths(type_) or not (base is None or _int(base, 0))
            or type(raw["payload"]) is not dict or type(sha) is not str
            or not _SHA.fullmatch(sha) or recorded_at is None):
        return None
    try:
        op_id, entity_id = uuid.UUID(raw["op_id"]), uuid.UUID(raw["entity_id"])
    except (TypeError, ValueError, AttributeError):
        return None
    return {"op_id": op_id, "device_seq": raw["device_seq"], "type": type_,
            "entity_id": entity_id, "base_version": base, "payload": raw["payload"],
            "payload_sha256": sha, "recorded_at": recorded_at}


def fast_envelope(data: Any, batch_max: int) -> dict[str, Any] | None:
    """The loaded envelope when ``data`` is plainly right, else None (the schema decides)."""
    if type(data) is not dict or data.keys() != {"sent_at", "pending", "ops"}:
        return None
    ops, sent_at = data["ops"], _time(data["sent_at"])
    if sent_at is None or not _int(data["pending"], 0) or type(ops) is not list:
        return None
    if not 0 < len(ops) <= batch_max:
        return None
    loaded = [_fast_op(raw) for raw in ops]
    if None in loaded:
        return None
    if (len({op["op_id"] for op in loaded}) < len(ops)  # type: ignore[index]
            or len({op["device_seq"] for op in loaded}) < len(ops)):  # type: ignore[index]
        return None
    return {"sent_at": sent_at, "pending": data["pending"], "ops": loaded}


class OpSchema(Schema):
    op_id = fields.UUID(required=True, metadata={"description": "Client-generated, unique "
                                                 "per device forever"})
    device_seq = fields.Integer(required=True, validate=validate.Range(min=1, max=SEQ_MAX),
                                metadata={"description": "Per-device gapless sequence, from 1"})
    type = fields.String(required=True, validate=validate.Length(min=1, max=60),
                         metadata={"description": "An operation type (§6)"})
    entity_id = fields.UUID(required=True)
    base_version = fields.Integer(load_default=None, allow_none=True,
                                  validate=validate.Range(min=0, max=SEQ_MAX))
    payload = fields.Dict(required=True, keys=fields.String(), metadata={
        "description": "The operation's content; checked per operation"})
    payload_sha256 = fields.String(required=True, validate=validate.Regexp("^[0-9a-f]{64}$"),
                                   metadata={"description": "Lower-case hex SHA-256 of the "
                                             "payload's canonical JSON (§3.1)"})
    recorded_at = UtcDateTime(required=True)

    @ma.pre_load
    def _check_input(self, data: Any, **_kwargs: Any) -> Any:
        _check_text_but_payloads(data)
        return self._integral_numbers(data)


class PushSchema(Schema):
    """The envelope. A well-formed one (the rule) is read by :func:`fast_envelope`, the same
    checks in plain Python, a tenth of marshmallow's time for 500 operations; anything it
    does not accept goes through the fields below, which give the errors."""

    sent_at = UtcDateTime(required=True, metadata={"description": "The device's clock"})
    pending = fields.Integer(required=True, validate=validate.Range(min=0, max=SEQ_MAX),
                             metadata={"description": "Operations the device still holds"})
    ops = fields.List(fields.Nested(OpSchema), required=True, validate=_BatchSize())

    @ma.pre_load
    def _check_input(self, data: Any, **_kwargs: Any) -> Any:
        _check_text_but_payloads(data)
        return self._integral_numbers(data)

    def load(self, data: Any, *, many: bool | None = None, partial: Any = None,
             unknown: Any = None) -> Any:
        fast = fast_envelope(data, int(current_app.config["NONGDAI_SYNC_BATCH_MAX"]))
        if fast is not None:
            return fast
        return super().load(data, many=many, partial=partial, unknown=unknown)

    @ma.validates_schema
    def _unique(self, data: dict[str, Any], **_kwargs: Any) -> None:
        ops = data.get("ops") or []
        if len({op["op_id"] for op in ops}) < len(ops):
            raise ma.ValidationError(gettext("Two operations have the same op_id."), "ops")
        if len({op["device_seq"] for op in ops}) < len(ops):
            raise ma.ValidationError(gettext("Two operations have the same device_seq."), "ops")


class OpResultSchema(ResponseSchema):
    op_id = fields.UUID()
    device_seq = fields.Integer()
    status = fields.String(validate=validate.OneOf(
        ["applied", "conflict", "duplicate", "rejected", "deferred"]))
    reason = fields.String(allow_none=True)
    detail = fields.String(allow_none=True)
    result = fields.Dict(allow_none=True)
    errors = fields.Dict(allow_none=True, metadata={"description": "invalid-payload: by field"})
    original_status = fields.String(allow_none=True, metadata={
        "description": "duplicate: the status stored the first time"})


class PushAnswerSchema(ResponseSchema):
    acked_seq = fields.Integer()
    expected_seq = fields.Integer()
    results = fields.List(fields.Nested(OpResultSchema))
    flags = fields.List(fields.String())


# --- staff views ---------------------------------------------------------------------------

class DeviceListArgs(PageArgs):
    coordinator_id = fields.UUID(metadata={"description": "Staff: one coordinator's devices"})


class SyncDeviceSchema(ResponseSchema):
    device_id = fields.UUID()
    label = fields.String()
    coordinator_id = fields.UUID()
    acked_seq = fields.Integer()
    last_push_at = fields.DateTime(allow_none=True)
    last_pull_at = fields.DateTime(allow_none=True)
    pending_reported = fields.Integer(allow_none=True)
    flags = fields.Dict()
    revoked_at = fields.DateTime(allow_none=True)
    last_seen_at = fields.DateTime(allow_none=True)


class SyncDeviceDetailSchema(SyncDeviceSchema):
    ops_by_status = fields.Dict(keys=fields.String(), values=fields.Integer())


SyncDevicePage = page_schema(SyncDeviceSchema, "SyncDevicePage")


class ConflictListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf([OPEN, RESOLVED]))
    kind = fields.String(validate=validate.Length(min=1, max=40))


class ConflictSchema(ResponseSchema):
    id = fields.UUID(attribute="public_id")
    kind = fields.String()
    entity_id = fields.UUID()
    field = fields.String()
    server_value = fields.Raw(allow_none=True)
    device_value = fields.Raw(allow_none=True)
    device_id = fields.UUID()
    op_id = fields.UUID()
    base_version = fields.Integer()
    status = fields.String()
    resolution = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


ConflictPage = page_schema(ConflictSchema, "SyncConflictPage")


class ResolveSchema(Schema):
    resolution = fields.String(required=True, validate=validate.OneOf([KEEP_SERVER, TAKE_DEVICE]))
    reason = Text(required=True, validate=validate.Length(min=1, max=500))

