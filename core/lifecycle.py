"""The life of a request: an id, a JSON-only body, one transaction committed once at the end.

:class:`NongdaiFlask` commits the request's session after the view returns a success, so a
failure anywhere (the view, the audit check, the commit itself) reaches the central error
handler and nothing is half-written. Work that must wait for the commit (sending an SMS,
say) registers with :func:`after_commit` or :func:`after_response`.

What a request notes about its transaction (audit events written, callbacks waiting for the
commit) lives in the session's ``info``, not in ``g``: a unit rolled back by
:func:`core.db.savepoint` takes its notes with it, and each request has its own session.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql import Executable
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from core.db import DbSession, db, in_write, side_transaction
from core.i18n import _

log = logging.getLogger("nongdai.access")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDITED = "nongdai.audit_events"  # session.info keys
_AFTER_COMMIT = "nongdai.after_commit"
_AFTER_RESPONSE = "nongdai.after_response"
_RIDE_ALONG = "nongdai_ride_along"  # g key: statements joining the request's transaction
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class AuditMissing(RuntimeError):
    """A state-changing request succeeded without writing an audit event."""


class _JSON(DefaultJSONProvider):
    ensure_ascii = False  # Chinese names stay readable on the wire


class NongdaiFlask(Flask):
    json_provider_class = _JSON

    def dispatch_request(self) -> Any:
        try:
            rv = super().dispatch_request()
            response = self.make_response(rv)
            finish_transaction(response)
        except BaseException:
            # A raising view or a failed commit: roll back now, not at app-context teardown,
            # so error handlers and hooks see a clean session (and SQLite's write lock is free).
            rollback(db.session)
            _ride_alone()
            raise
        return response


def rollback(session: DbSession) -> None:
    """Roll the transaction back and forget what it noted."""
    session.rollback()
    for key in (AUDITED, _AFTER_COMMIT, _AFTER_RESPONSE):
        session.info.pop(key, None)


def note_audit_event(session: DbSession) -> None:
    """Count an audit event written in this transaction (see :class:`AuditMissing`)."""
    session.info[AUDITED] = session.info.get(AUDITED, 0) + 1


def after_commit(callback: Callable[[], object]) -> None:
    """Run ``callback`` once the request's transaction has committed (never on rollback)."""
    db.session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def after_response(callback: Callable[[], object]) -> None:
    """Run ``callback`` after the response has gone out, only if the request committed.

    For slow side effects (an SMS gateway call): the caller does not wait for them and their
    duration tells nothing (whether a phone is registered, say). The callback gets a fresh app
    context; a failure is logged and left to the domain's retry job.
    """
    db.session.info.setdefault(_AFTER_RESPONSE, []).append(callback)


def _run_detached(app: Flask, callbacks: list[Callable[[], object]]) -> None:
    for callback in callbacks:
        with app.app_context():
            try:
                callback()
            except Exception:
                log.exception("after-response callback failed")


def ride_along(statement: Executable, params: dict[str, Any] | None = None) -> None:
    """A small best-effort write (a session's last-used time) that joins the request's own
    transaction when the request changes state, so that it costs no durable commit of its
    own; after a read or a failure it commits alone, once the request's work is over.
    ``params`` bind a statement built once."""
    g.setdefault(_RIDE_ALONG, []).append((statement, params))


def _ride_alone() -> None:
    statements = g.pop(_RIDE_ALONG, [])
    if not statements:
        return
    try:
        with side_transaction() as conn:
            for statement, params in statements:
                conn.execute(statement, params)
    except OperationalError:  # best effort: a busy database must not fail the request
        log.info("ride-along write skipped (database busy)")


def finish_transaction(response: Response) -> None:
    session = db.session
    if response.status_code >= 400:
        rollback(session)
        _ride_alone()
        return
    if request.method in STATE_CHANGING and in_write(session):
        for statement, params in g.pop(_RIDE_ALONG, []):
            session.execute(statement, params)
    if (request.method in STATE_CHANGING and not session.info.get(AUDITED)
            and not g.get("no_audit_needed")):
        raise AuditMissing(f"{request.method} {request.path} changed state without an audit event")
    session.commit()
    session.info.pop(AUDITED, None)
    _ride_alone()
    for callback in session.info.pop(_AFTER_COMMIT, []):
        try:
            callback()
        except Exception:  # the commit stands; the callback's own retry path (a job) takes over
            log.exception("after-commit callback failed")
    detached = session.info.pop(_AFTER_RESPONSE, [])
    if detached:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        response.call_on_close(lambda: _run_detached(app, detached))


def _start() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    raw = _raw_body_of_view()
    if raw is not None:
        request.max_content_length = int(current_app.config[raw[1]])
    if (request.method in STATE_CHANGING and request.path.startswith("/api/")
            and (request.content_length or request.headers.get("Transfer-Encoding"))
            and not (request.mimetype == raw[0] if raw and raw[0] else request.is_json)):
        if raw and raw[0]:
            raise UnsupportedMediaType(_("Send the body as %(type)s", type=raw[0]))
        raise UnsupportedMediaType(_("Send the body as application/json"))
    _refuse_cut_body()


RAW_BODY = "_nongdai_raw_body"  # view attribute set by raw_body(): (media type, limit setting)
F = TypeVar("F", bound=Callable[..., Any])


def raw_body(mimetype: str, limit_setting: str) -> Callable[[F], F]:
    """Let a view take a body of ``mimetype`` instead of JSON (a tus chunk of a photo), of up
    to ``config[limit_setting]`` bytes instead of MAX_CONTENT_LENGTH: the limit is raised
    before anything reads the body, for that view only."""

    def decorate(view: F) -> F:
        setattr(view, RAW_BODY, (mimetype, limit_setting))
        return view

    return decorate


def body_limit(limit_setting: str) -> Callable[[F], F]:
    """Let a view take a JSON body of up to ``config[limit_setting]`` bytes instead of
    MAX_CONTENT_LENGTH (a sync push of a few hundred operations)."""

    def decorate(view: F) -> F:
        setattr(view, RAW_BODY, (None, limit_setting))
        return view

    return decorate


def _raw_body_of_view() -> tuple[str | None, str] | None:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, RAW_BODY, None)


def _refuse_cut_body() -> None:
    """werkzeug stops reading a body without Content-Length (chunked transfer) at
    MAX_CONTENT_LENGTH and passes on the truncated bytes; refuse it as too large instead."""
    limit = request.max_content_length
    if (limit is not None and request.content_length is None
            and request.headers.get("Transfer-Encoding")
            and len(request.get_data()) >= limit):
        raise RequestEntityTooLarge()


def _finish(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "")
    elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    principal = g.get("principal")
    log.info("request", extra={
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": round(elapsed_ms, 1),
        "actor": principal.ref if principal else None,
    })
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
