"""One error shape for the whole API: RFC 9457 ``application/problem+json``.

Domains raise subclasses of :class:`NongdaiError`; the handlers here turn those, werkzeug's
HTTP exceptions, webargs validation failures and database conflicts into problems with a
stable ``code``. Views never build error responses by hand.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from flask import Flask, Response, g, json
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
TYPE_PREFIX = "urn:nongdai:problem:"


class NongdaiError(Exception):
    """Base of every domain error; ``status`` and ``code`` decide the problem document."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, *, errors: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}


class ValidationFailed(NongdaiError):
    status, code, title = 422, "validation-failed", "The request has invalid fields"


class Unauthorized(NongdaiError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="nongdai"'})
        super().__init__(detail, **kwargs)


class Forbidden(NongdaiError):
    status, code, title = 403, "forbidden", "Not allowed for your role"


class NotFound(NongdaiError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(NongdaiError):
    status, code, title = 409, "conflict", "Conflicts with the current state"


class RateLimited(NongdaiError):
    status, code, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(NongdaiError):
    status, code, title = 503, "unavailable", "Temporarily unavailable"


# werkzeug exceptions by status -> stable codes
_HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    411: "length-required",
    413: "payload-too-large",
    414: "uri-too-long",
    415: "unsupported-media-type",
    422: "validation-failed",
    429: "rate-limited",
    431: "headers-too-large",
    500: "internal-error",
    501: "not-implemented",
    503: "unavailable",
}


def problem(status: int, code: str, title: str, detail: str, *,
            errors: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _from_domain(exc: NongdaiError) -> Response:
    return problem(exc.status, exc.code, exc.title, exc.detail,
                   errors=exc.errors, headers=exc.headers)


def _validation_errors(data: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
    """Flatten webargs' ``{"json": {...}, "query": {...}}`` into field errors."""
    messages = data.get("messages") or data.get("errors") or {}
    if "json" in messages and messages["json"] == ["Invalid JSON body."]:
        return "malformed-json", "The body is not valid JSON", None
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return "validation-failed", "Some fields are invalid; see errors", flat or None


def _from_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = _HTTP_CODES.get(status, "http-error")
    data = getattr(exc, "data", None) or {}
    errors = None
    detail = exc.description or exc.name
    if data:
        code, detail, errors = _validation_errors(data)
        if code == "malformed-json":
            status = 400
    headers = dict(data.get("headers") or {})
    if status == 405 and exc.get_headers():
        headers.update({k: v for k, v in exc.get_headers() if k == "Allow"})
    return problem(status, code, exc.name if status == exc.code else "Malformed JSON",
                   detail, errors=errors, headers=headers)


def _from_integrity(exc: IntegrityError) -> Response:
    log.warning("integrity error: %s", type(exc.orig).__name__)
    return problem(409, "conflict", "Conflicts with the current state",
                   "The change conflicts with an existing record")


def _from_operational(exc: OperationalError) -> Response:
    log.error("database unavailable: %s", type(exc.orig).__name__)
    return problem(503, "unavailable", "Temporarily unavailable",
                   "The database is busy or unreachable; retry shortly",
                   headers={"Retry-After": "2"})


def _from_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _from_http(exc)
    log.exception("unhandled error")
    return problem(500, "internal-error", "Internal error",
                   "Something went wrong on our side; the change was not saved")


def init_app(app: Flask) -> None:
    app.register_error_handler(NongdaiError, _from_domain)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(IntegrityError, _from_integrity)
    app.register_error_handler(OperationalError, _from_operational)
    app.register_error_handler(Exception, _from_unexpected)
