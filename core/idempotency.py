"""Idempotency keys: a creating request sent twice has its effect once.

A client (a farmer's phone on a weak network, a coordinator's queued work) sends an
``Idempotency-Key`` header with a creating request. The stored answer is written in the
request's own transaction, beside the change it describes, so both commit together or not at
all: no claim to release, no lock to expire, nothing to take over when a worker dies. A retry
with the same key and body gets the stored answer (``Idempotent-Replayed: true``) from one
SELECT in a read transaction, without writing; the same key with another method, path or body
is refused (422).

Two requests with one key at the same time: on PostgreSQL the look-up also takes a
transaction-scoped advisory lock on the key; the second request, unable to take it, answers
409 with Retry-After. On SQLite the look-up is a read that ends at once (so a replay never
waits for a writer, and a new request holds the write lock only from its view's first
statement to its commit). On both, a twin that commits in between makes the answer's INSERT
fail on the unique (scope, key) constraint, and the request, rolled back whole, replays the
twin's answer.

Views: ``@blp.route`` → ``@access(...)`` → ``@idempotent`` → ``@blp.arguments`` → ...
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from core import jobs
from core.api.openapi import IDEMPOTENCY_HEADER as HEADER
from core.api.openapi import IDEMPOTENT
from core.db import (
    Base,
    CreatedAt,
    DbSession,
    IntPK,
    UTCDateTime,
    begin_read,
    db,
    rowcount,
    table,
    utcnow,
)
from core.errors import Conflict, NongdaiError, ValidationFailed
from core.i18n import Text, _, content_language, current_locale, lazy_gettext
from core.lifecycle import rollback

log = logging.getLogger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
MARK = "_nongdai_idempotent"  # set on every wrapped view (tests walk the routes for it)
MIN_HOURS = 24
_KEY = re.compile(r"[\x20-\x7e]{1,200}")
_STORED_HEADERS = ("Content-Type", "Content-Language", "Location")  # a replay keeps its language

F = TypeVar("F", bound=Callable[..., Any])


class IdempotencyRecord(Base):
    """The answer given to one key of one caller, kept ``NONGDAI_IDEMPOTENCY_HOURS``."""

    __tablename__ = "idempotency_records"
    __table_args__ = (sa.UniqueConstraint("scope", "key"),)

    id: Mapped[IntPK]
    scope: Mapped[str] = mapped_column(sa.String(80))  # principal ref, or "anon:<address>"
    key: Mapped[str] = mapped_column(sa.String(200))
    method: Mapped[str] = mapped_column(sa.String(10))
    path: Mapped[str] = mapped_column(sa.Text)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response_status: Mapped[int]
    response_body: Mapped[str] = mapped_column(sa.Text)
    response_headers: Mapped[dict[str, str]] = mapped_column(sa.JSON)
    created_at: Mapped[CreatedAt]
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


_records = table(IdempotencyRecord)


class IdempotencyKeyInvalid(NongdaiError):
    status, code = 400, "idempotency-key-invalid"
    title = lazy_gettext("Invalid Idempotency-Key")


class IdempotencyKeyReused(ValidationFailed):
    status, code = 422, "idempotency-key-reused"
    title = lazy_gettext("Idempotency-Key used for another request")


class IdempotencyInProgress(Conflict):
    status, code = 409, "idempotency-in-progress"
    title = lazy_gettext("The first request with this key is still running")

    def __init__(self, detail: Text | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


@dataclass(frozen=True)
class Fingerprint:
    """What identifies the request: who sent which key, and a hash of what they sent."""

    scope: str
    key: str
    method: str
    path: str
    request_hash: str

    def lock_id(self) -> int:
        """A signed 64-bit number for PostgreSQL's advisory locks, from scope and key."""
        digest = hashlib.sha256(f"{self.scope}\x00{self.key}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


# --- the request's fingerprint ----------------------------------------------------------------

def _canonical_body(raw: bytes) -> bytes:
    """JSON re-dumped with sorted keys and no whitespace; any other body as sent.

    ``surrogatepass``: a lone surrogate (``"\\ud800"``) is valid JSON that UTF-8 cannot encode;
    the body is refused later by the schema, but hashing it must not fail first.
    """
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return raw
    text = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


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
        raise IdempotencyKeyInvalid(_("%(header)s must be 1 to 200 printable ASCII characters",
                                      header=HEADER))
    return Fingerprint(_scope(), key, request.method, request.path,
                       request_hash(request.method, request.path, request.get_data()))


# --- looking up, locking, storing -------------------------------------------------------------

_FIND = sa.select(_records).where(_records.c.scope == sa.bindparam("scope"),
                                  _records.c.key == sa.bindparam("key"))
_INSERT = sa.insert(_records)
_FORGET_EXPIRED = sa.delete(_records).where(_records.c.scope == sa.bindparam("scope"),
                                            _records.c.key == sa.bindparam("key"),
                                            _records.c.expires_at <= sa.bindparam("now"))


def _find_and_hold() -> sa.Select[Any]:
    """PostgreSQL: the key's record (all NULL when none) and a try for the key's advisory
    lock, in one round trip."""
    lock = sa.func.pg_try_advisory_xact_lock(sa.bindparam("lock_id", type_=sa.BigInteger))
    one = sa.select(sa.literal(1).label("one")).subquery()
    on = sa.and_(_records.c.scope == sa.bindparam("scope"), _records.c.key == sa.bindparam("key"))
    return sa.select(lock.label("held"), *_records.c).select_from(one.outerjoin(_records, on))


_FIND_AND_HOLD = _find_and_hold()


def _find(session: DbSession, fp: Fingerprint) -> tuple[sa.Row[Any] | None, bool]:
    """The key's record (or ``None``), and whether this request now holds the key.

    On PostgreSQL the look-up also tries the key's transaction-scoped advisory lock: a request
    that holds it may go on (a twin that committed meanwhile is caught by the answer's INSERT,
    see :func:`_store`), one that does not, while no answer is stored, gets 409. On SQLite
    the look-up is a read that takes no lock at all.
    """
    params = {"scope": fp.scope, "key": fp.key}
    if session.get_bind().dialect.name != "postgresql":
        return session.connection().execute(_FIND, params).first(), False
    row = session.connection().execute(_FIND_AND_HOLD, {**params, "lock_id": fp.lock_id()}).one()
    return (row if row.id is not None else None), bool(row.held)


def _hold(session: DbSession, held: bool) -> None:
    """Go on as the key's only request: 409 on PostgreSQL when another request holds it; on
    SQLite end the read, so the write lock is taken only by the view's first statement."""
    if session.get_bind().dialect.name != "postgresql":
        rollback(session)
    elif not held:
        raise IdempotencyInProgress(_("A request with this key is still being processed; retry "
                                      "shortly with the same key"))


def _replay(row: sa.Row[Any]) -> Response:
    response = Response(row.response_body, status=row.response_status,
                        headers=row.response_headers or {})
    response.headers[REPLAYED_HEADER] = "true"
    g.no_audit_needed = True  # a replay changes nothing
    return response


def _answer(row: sa.Row[Any] | None, fp: Fingerprint) -> Response | None:
    """The stored answer to replay; ``None`` when there is none (or it expired); 422 when the
    key was used for another request."""
    if row is None or row.expires_at <= utcnow():  # past its lifetime, the key is free again
        return None
    if row.request_hash != fp.request_hash:
        raise IdempotencyKeyReused(_("This %(header)s was sent with another method, path or "
                                     "body; use a new key for a new request", header=HEADER))
    return _replay(row)


def _stored(session: DbSession, fp: Fingerprint) -> Response | None:
    return _answer(_find(session, fp)[0], fp)


def _store(session: DbSession, fp: Fingerprint, response: Response, *, expired: bool) -> Response:
    """Keep the answer in the request's transaction: it commits with the change, or not at all.

    An ``expired`` record of the key is replaced. A twin request that committed the same key
    since this one looked (SQLite, see the module docstring) makes the INSERT fail: this
    request's work is rolled back whole and the twin's answer given instead.
    """
    now = utcnow()
    hours = max(MIN_HOURS, int(current_app.config["NONGDAI_IDEMPOTENCY_HOURS"]))
    stored = {name: response.headers[name] for name in _STORED_HEADERS if name in response.headers}
    stored.setdefault("Content-Language", content_language(current_locale()))
    if expired:
        session.connection().execute(_FORGET_EXPIRED,
                                     {"scope": fp.scope, "key": fp.key, "now": now})
    try:
        session.connection().execute(_INSERT, {
            "scope": fp.scope, "key": fp.key, "method": fp.method, "path": fp.path,
            "request_hash": fp.request_hash, "response_status": response.status_code,
            "response_body": response.get_data(as_text=True), "response_headers": stored,
            "created_at": now, "expires_at": now + timedelta(hours=hours)})
    except IntegrityError:
        rollback(session)
        begin_read(session)
        twin = _stored(session, fp)
        if twin is None:
            raise
        log.info("idempotency key answered by a concurrent twin", extra={"key_scope": fp.scope})
        return twin
    return response


# --- the decorator ----------------------------------------------------------------------------

def _run(view: Callable[..., Any], args: Any, kwargs: Any) -> Response:
    fp = _fingerprint(request.headers[HEADER])
    session = db.session
    begin_read(session)  # SQLite: the look-up takes no write lock (a no-op elsewhere)
    row, held = _find(session, fp)
    answer = _answer(row, fp)
    if answer is not None:
        return answer
    _hold(session, held)
    response = current_app.make_response(current_app.ensure_sync(view)(*args, **kwargs))
    if 200 <= response.status_code < 300:
        return _store(session, fp, response, expired=row is not None)
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
    apidoc.setdefault("manual_doc", {})[IDEMPOTENT] = True
    wrapper._apidoc = apidoc  # type: ignore[attr-defined]
    return cast(F, wrapper)


def is_idempotent(view: Any) -> bool:
    return bool(getattr(view, MARK, False))


# --- housekeeping -----------------------------------------------------------------------------

def purge_expired(_run: jobs.JobRun | None = None) -> int:
    """Job: delete records past their lifetime (runs in the job's transaction)."""
    result = db.session.execute(sa.delete(_records).where(_records.c.expires_at < utcnow()))
    count = rowcount(result)
    log.info("idempotency records purged", extra={"purged": count})
    return count


def init_app(app: Flask) -> None:
    jobs.register(app, jobs.Job("idempotency.purge", purge_expired, {"hours": 1}))
