"""Idempotency keys: a creating request sent twice has its effect once.

A client (a farmer's phone on a weak network, a coordinator's queued work) sends an
``Idempotency-Key`` header with a creating request. The first request claims the key in a
side transaction and runs the view; on success the stored response is written in the
request's own transaction, so it commits with the change it describes or not at all. A retry
with the same key and body gets the stored response (``Idempotent-Replayed: true``); the same
key with another body is refused (422); a retry while the first still runs gets 409. A failed
request releases its claim so that the client can retry with the same key. A claim whose
worker died is taken over once its lock expires; a fencing token keeps the late worker from
completing or releasing a claim it no longer holds.

Views: ``@blp.route`` → ``@access(...)`` → ``@idempotent`` → ``@blp.arguments`` → ...
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
import secrets
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from apispec import BasePlugin
from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from core import jobs
from core.db import Base, CreatedAt, IntPK, UTCDateTime, db, side_transaction, utcnow
from core.errors import Conflict, NongdaiError, ValidationFailed
from core.lifecycle import after_commit

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MARK = "_nongdai_idempotent"  # set on every wrapped view (tests walk the routes for it)
IN_PROGRESS, COMPLETED = "in_progress", "completed"
MIN_HOURS = 24
_KEY = re.compile(r"[\x20-\x7e]{1,200}")
_STORED_HEADERS = ("Content-Type", "Location")
_CLAIM_ATTEMPTS = 3
_DOC_MARK = "x-nongdai-idempotent"

F = TypeVar("F", bound=Callable[..., Any])


class IdempotencyRecord(Base):
    """One key of one caller: claimed while its request runs, then the stored response."""

    __tablename__ = "idempotency_records"
    __table_args__ = (sa.UniqueConstraint("scope", "key"),)

    id: Mapped[IntPK]
    scope: Mapped[str] = mapped_column(sa.String(80))  # principal ref, or "anon:<address>"
    key: Mapped[str] = mapped_column(sa.String(200))
    method: Mapped[str] = mapped_column(sa.String(10))
    path: Mapped[str] = mapped_column(sa.Text)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(12))
    claim_token: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    response_status: Mapped[int | None] = mapped_column(nullable=True)
    response_body: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(sa.JSON, nullable=True)
    created_at: Mapped[CreatedAt]
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


_records = cast(sa.Table, IdempotencyRecord.__table__)


class IdempotencyKeyInvalid(NongdaiError):
    status, code, title = 400, "idempotency-key-invalid", "Invalid Idempotency-Key"


class IdempotencyKeyReused(ValidationFailed):
    status, code, title = 422, "idempotency-key-reused", "Idempotency-Key used for another request"


class IdempotencyInProgress(Conflict):
    status, code = 409, "idempotency-in-progress"
    title = "The first request with this key is still running"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


@dataclass(frozen=True)
class Fingerprint:
    """What identifies the request: who sent which key, and a hash of what they sent."""

    scope: str
    key: str
    method: str
    path: str
    request_hash: str


@dataclass
class Claim:
    """This request holds the key; ``token`` fences it against a takeover."""

    record_id: int
    token: str
    committed: bool = False

    def mark_committed(self) -> None:
        self.committed = True


# --- the request's fingerprint ----------------------------------------------------------------

def _canonical_body(raw: bytes) -> bytes:
    """JSON re-dumped with sorted keys and no whitespace; any other body as sent."""
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return raw
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_hash(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode("utf-8", "replace"), _canonical_body(body)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _scope() -> str:
    principal = g.get("principal")
    return principal.ref if principal else f"anon:{request.remote_addr or 'unknown'}"


def _fingerprint(key: str) -> Fingerprint:
    if not _KEY.fullmatch(key):
        raise IdempotencyKeyInvalid(f"{HEADER} must be 1 to 200 printable ASCII characters")
    return Fingerprint(_scope(), key, request.method, request.path,
                       request_hash(request.method, request.path, request.get_data()))


# --- claiming ---------------------------------------------------------------------------------

def _lock_until(now: datetime) -> datetime:
    return now + timedelta(seconds=int(current_app.config["NONGDAI_IDEMPOTENCY_LOCK_SECONDS"]))


def _insert(fp: Fingerprint) -> Claim | None:
    now, token = utcnow(), secrets.token_hex(16)
    hours = max(MIN_HOURS, int(current_app.config["NONGDAI_IDEMPOTENCY_HOURS"]))
    try:
        with side_transaction() as conn:
            result = conn.execute(sa.insert(_records).values(
                scope=fp.scope, key=fp.key, method=fp.method, path=fp.path,
                request_hash=fp.request_hash, state=IN_PROGRESS, claim_token=token,
                locked_until=_lock_until(now), created_at=now,
                expires_at=now + timedelta(hours=hours)))
    except IntegrityError:
        return None
    return Claim(cast(int, result.inserted_primary_key[0]), token)


def _load(fp: Fingerprint) -> sa.Row[Any] | None:
    with side_transaction() as conn:
        return conn.execute(sa.select(_records).where(
            _records.c.scope == fp.scope, _records.c.key == fp.key)).first()


def _guarded(statement: Any) -> bool:
    """Run an UPDATE/DELETE whose WHERE only one concurrent caller can satisfy."""
    with side_transaction() as conn:
        return conn.execute(statement).rowcount == 1


def _take_over(row: sa.Row[Any], now: datetime) -> Claim | None:
    token = secrets.token_hex(16)
    won = _guarded(sa.update(_records)
                   .where(_records.c.id == row.id, _records.c.state == IN_PROGRESS,
                          _records.c.locked_until < now)
                   .values(claim_token=token, locked_until=_lock_until(now)))
    if won:
        log.warning("idempotency claim taken over after its lock expired",
                    extra={"idempotency_record": row.id})
    return Claim(row.id, token) if won else None


def _replay(row: sa.Row[Any]) -> Response:
    response = Response(row.response_body, status=row.response_status,
                        headers=row.response_headers or {})
    response.headers[REPLAYED_HEADER] = "true"
    g.no_audit_needed = g.idempotency_replayed = True  # a replay changes nothing
    return response


def _resolve(fp: Fingerprint, row: sa.Row[Any]) -> Claim | Response | None:
    """Decide on a key that is already claimed; ``None`` means: try to claim it again."""
    now = utcnow()
    if row.expires_at <= now:  # past its lifetime: forget it, the key is free
        _guarded(sa.delete(_records).where(_records.c.id == row.id,
                                           _records.c.expires_at <= now))
        return None
    if row.request_hash != fp.request_hash:
        raise IdempotencyKeyReused(f"This {HEADER} was sent with another method, path or body; "
                                   "use a new key for a new request")
    if row.state == COMPLETED:
        return _replay(row)
    if row.locked_until is not None and row.locked_until > now:
        wait = math.ceil((row.locked_until - now).total_seconds())
        raise IdempotencyInProgress("A request with this key is still being processed; retry "
                                    "later with the same key", retry_after=wait)
    return _take_over(row, now)


def _claim(fp: Fingerprint) -> Claim | Response:
    for _ in range(_CLAIM_ATTEMPTS):
        outcome = _insert(fp)
        if outcome is None:
            row = _load(fp)
            outcome = None if row is None else _resolve(fp, row)
        if outcome is not None:
            return outcome
    raise IdempotencyInProgress("This key is changing hands; retry shortly with the same key")


# --- completing and releasing -----------------------------------------------------------------

def _complete(claim: Claim, response: Response) -> None:
    """Store the response in the request's session: it commits with the change, or not at all."""
    stored = {name: response.headers[name] for name in _STORED_HEADERS if name in response.headers}
    result = db.session.execute(
        sa.update(_records)
        .where(_records.c.id == claim.record_id, _records.c.claim_token == claim.token,
               _records.c.state == IN_PROGRESS)
        .values(state=COMPLETED, locked_until=None, response_status=response.status_code,
                response_body=response.get_data(as_text=True), response_headers=stored))
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        raise IdempotencyInProgress("This request took too long and another one with the same "
                                    "key took over; retry with the same key")
    after_commit(claim.mark_committed)


def _release(claim: Claim) -> None:
    _guarded(sa.delete(_records).where(_records.c.id == claim.record_id,
                                       _records.c.claim_token == claim.token,
                                       _records.c.state == IN_PROGRESS))


def _teardown(_exc: BaseException | None) -> None:
    """Release the claim of a request that did not commit (error, exception, failed commit)."""
    if g.pop("idempotency_replayed", False):  # g outlives the request when the app context
        g.pop("no_audit_needed", None)        # is shared (tests, CLI): undo what we set
    claim: Claim | None = g.pop("idempotency_claim", None)
    if claim is None or claim.committed:
        return
    db.session.rollback()  # first: the failed request may still hold locks the DELETE needs
    try:
        _release(claim)
    except SQLAlchemyError:
        log.exception("could not release an idempotency claim; it is free once its lock expires")


# --- the decorator ----------------------------------------------------------------------------

def _run(view: Callable[..., Any], args: Any, kwargs: Any) -> Response:
    fp = _fingerprint(request.headers[HEADER])
    outcome = _claim(fp)
    if isinstance(outcome, Response):
        return outcome
    g.idempotency_claim = outcome
    response = current_app.make_response(current_app.ensure_sync(view)(*args, **kwargs))
    if 200 <= response.status_code < 300:
        _complete(outcome, response)
    return response


def idempotent(view: F) -> F:
    """Honour an ``Idempotency-Key`` header on a creating view (without one, just run it)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if HEADER not in request.headers:
            return current_app.ensure_sync(view)(*args, **kwargs)
        return _run(view, args, kwargs)

    setattr(wrapper, MARK, True)
    apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))
    apidoc.setdefault("manual_doc", {})[_DOC_MARK] = True
    wrapper._apidoc = apidoc  # type: ignore[attr-defined]
    return cast(F, wrapper)


def is_idempotent(view: Any) -> bool:
    return bool(getattr(view, MARK, False))


# --- housekeeping -----------------------------------------------------------------------------

def purge_expired() -> int:
    """Job: delete records past their lifetime (runs in the job's transaction)."""
    result = db.session.execute(sa.delete(_records).where(_records.c.expires_at < utcnow()))
    count = cast(sa.CursorResult[Any], result).rowcount
    log.info("idempotency records purged", extra={"purged": count})
    return count


class _HeaderDoc(BasePlugin):
    """Documents the optional ``Idempotency-Key`` header on every idempotent operation."""

    PARAMETER = {
        "name": HEADER, "in": "header", "required": False,
        "description": "A client-generated key (a UUID, say): a retry with the same key and "
                       "body replays the first response instead of acting twice.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                   "pattern": "^[\\x20-\\x7e]+$"},
    }

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        del path, kwargs
        for operation in (operations or {}).values():
            if isinstance(operation, dict) and operation.pop(_DOC_MARK, False):
                operation.setdefault("parameters", []).append(dict(self.PARAMETER))


def _document(app: Flask) -> None:
    api = app.extensions.get("nongdai_api")
    if api is not None:
        plugin = _HeaderDoc()
        plugin.init_spec(api.spec)
        api.spec.plugins.append(plugin)


def init_app(app: Flask) -> None:
    app.teardown_request(_teardown)
    jobs.register(app, jobs.Job("idempotency.purge", purge_expired, {"hours": 1}))
    _document(app)
