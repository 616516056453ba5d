"""What a push answers per operation, and the checks made before any handler runs: the
records already kept (duplicates), the payload's hash, type and schema (§3.1-§3.3)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import marshmallow as ma
import sqlalchemy as sa

from core.api.schemas import BAD_TEXT, bad_text_paths
from core.crypto import vault
from core.db import DbSession
from core.i18n import _, gettext
from sync.push import canonical, writer
from sync.registry import Op, Operation, Rejected

DUPLICATE, REJECTED, DEFERRED = "duplicate", "rejected", "deferred"
WAITING, SEQ_BEHIND, RETRY_LATER = "waiting-earlier-seq", "seq-behind", "retry-later"
HASH_MISMATCH, OP_ID_REUSED, UNKNOWN_TYPE = "hash-mismatch", "op-id-reused", "unknown-type"
INVALID_PAYLOAD, NOT_ALLOWED = "invalid-payload", "not-allowed"
NOT_FOUND = "not-found"
CLOCK_SKEW, SEQ_REGRESSION = "clock-skew", "seq-regression"

OPS = writer.OPS
_KNOWN = (sa.select(OPS.c.op_id, OPS.c.payload_key, OPS.c.status, OPS.c.reason,
                    OPS.c.detail, OPS.c.result)
          .where(OPS.c.device_id == sa.bindparam("device_id"),
                 OPS.c.op_id.in_(sa.bindparam("op_ids", expanding=True))))


def known(session: DbSession, device_id: int, ops: Sequence[Op]) -> dict[Any, Any]:
    rows = session.execute(_KNOWN, {"device_id": device_id,
                                    "op_ids": [op.op_id for op in ops]})
    return {row.op_id: row for row in rows}


def answer(results: list[dict[str, Any]], acked: int, flags: list[str]) -> dict[str, Any]:
    return {"acked_seq": acked, "expected_seq": acked + 1, "results": results, "flags": flags}


def item(op: Op, status: str, *, reason: str | None = None, detail: str | None = None,
          result: Any = None, errors: Any = None,
          original_status: str | None = None) -> dict[str, Any]:
    return {"op_id": str(op.op_id), "device_seq": op.device_seq, "status": status,
            "reason": reason, "detail": detail, "result": result, "errors": errors,
            "original_status": original_status}


def payload_key(sha256: str) -> str:
    """What the server keeps of a payload's SHA-256: a keyed hash of it. A bare SHA-256 of a
    ``register_farmer`` payload would let anyone who knows the name, phone and village guess
    the ID number inside it offline (ID numbers have little entropy); the key stops that, and
    equal payloads still give equal keys, which is all the duplicate check needs."""
    return vault().lookup_hash(sha256, "sync.payload")


def from_known(op: Op, record: Any) -> dict[str, Any]:
    """§3.3 rule 1: a recorded ``op_id`` is a duplicate (same hash) or ``op-id-reused``."""
    if record.payload_key == payload_key(op.payload_sha256):
        return item(op, DUPLICATE, result=record.result, original_status=record.status,
                     reason=record.reason, detail=record.detail)
    return item(op, REJECTED, reason=OP_ID_REUSED, detail=gettext(
        "This operation id was used before with another payload; the first one stands"))


def check(op: Op, operations: Mapping[str, Operation]) -> Op | Rejected:
    """Hash, type and payload schema: the loaded payload in ``op``, or why it is rejected
    (``operations``: the app's registered types)."""
    refused = _hash_refusal(op)
    if refused is not None:
        return refused
    operation = operations.get(op.type)
    if operation is None:
        return Rejected(UNKNOWN_TYPE, _("Unknown operation type"))
    if operation.schema is None:
        return op
    try:
        loaded = operation.schema.load(op.payload)
    except ma.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"payload": exc.messages}
        return Rejected(INVALID_PAYLOAD, _("Some fields of the payload are invalid"), messages)
    return dataclasses.replace(op, payload=loaded)


def _hash_refusal(op: Op) -> Rejected | None:
    """The payload's text and hash: lone surrogates and NUL are refused here, the same on
    every database (PostgreSQL cannot store a NUL in text); then the hash must match."""
    try:
        digest = canonical.sha256(op.payload)
    except (UnicodeEncodeError, RecursionError, ValueError, TypeError):
        digest = None
    if digest is None or bad_text_paths(op.payload):
        return Rejected(INVALID_PAYLOAD, _("The payload holds text that is not valid Unicode"),
                        {"payload": [gettext(BAD_TEXT)]})
    if digest != op.payload_sha256:
        return Rejected(HASH_MISMATCH, _("The payload does not match its SHA-256"))
    return None


_SCALARS = (str, int, bool, type(None))


def plain(value: Any) -> bool:
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, list):
        return all(plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    return False


def jsonable(value: Any) -> Any:
    """Handlers may return UUIDs, dates, decimals: the stored result is plain JSON (checked
    first: the usual result is already plain, and converting costs a dump and a load)."""
    return value if plain(value) else json.loads(json.dumps(value, default=str))
