"""One error shape for the whole API: RFC 9457 ``application/problem+json``.

Domains raise subclasses of :class:`NongdaiError`; the handlers here turn those, werkzeug's
HTTP exceptions, webargs validation failures and database errors into problems with a stable
``code``. Views never build error responses by hand.

Each ``code`` has exactly one ``title``, kept in one registry: every :class:`NongdaiError`
subclass registers its own when it is defined (a second class with the same code and another
title is refused at import), then every HTTP status werkzeug can raise gets a code and title
unless a class already gave one. :func:`problem` takes the title from the registry, so a
client that switches on ``code`` sees one title for it, whichever path raised it.

Error logs carry exception class names, never messages of database errors: those hold the
statement's parameters (phone numbers, password hashes).
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any, ClassVar

from flask import Flask, Response, g, json
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
TYPE_PREFIX = "urn:nongdai:problem:"

_titles: dict[str, str] = {}


def register_code(code: str, title: str) -> None:
    """Give ``code`` its title; refuse another title for a code that already has one."""
    known = _titles.setdefault(code, title)
    if known != title:
        raise TypeError(f"problem code {code!r} already has the title {known!r}, "
                        f"not {title!r}: give the new error its own code")


def title_for(code: str) -> str:
    return _titles[code]


def problem_titles() -> dict[str, str]:
    """Every code the app can answer, with its one title."""
    return dict(_titles)


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_code(cls.code, cls.title)


register_code(NongdaiError.code, NongdaiError.title)


class ValidationFailed(NongdaiError):
    status, code, title = 422, "validation-failed", "The request has invalid fields"


class MalformedJson(NongdaiError):
    status, code, title = 400, "malformed-json", "Malformed JSON"


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


class InvalidData(NongdaiError):
    """The database refused a value that validation let through (a backstop, not a plan)."""

    status, code, title = 422, "invalid-data", "A value cannot be stored"


class InvalidText(NongdaiError):
    """Text that cannot be encoded (an unpaired surrogate, say) reached code that encodes it."""

    status, code, title = 400, "invalid-text", "The request holds text that is not valid Unicode"


class RateLimited(NongdaiError):
    status, code, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class InternalError(NongdaiError):
    status, code, title = 500, "internal-error", "Internal error"


class ServiceUnavailable(NongdaiError):
    status, code, title = 503, "unavailable", "Temporarily unavailable"


# Codes of werkzeug's statuses that read better than their phrase; the others are slugs of it.
_HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    413: "payload-too-large",
    414: "uri-too-long",
    422: "validation-failed",
    429: "rate-limited",
    431: "headers-too-large",
    500: "internal-error",
    503: "unavailable",
}


def http_code(status: int) -> str:
    """The stable code of an HTTP status werkzeug may raise (``405`` -> ``method-not-allowed``)."""
    phrase = HTTP_STATUS_CODES.get(status, "http error")
    return _HTTP_CODES.get(status) or re.sub(r"[^a-z0-9]+", "-", phrase.lower()).strip("-")


for _status, _phrase in HTTP_STATUS_CODES.items():
    if _status >= 400:
        _titles.setdefault(http_code(_status), _phrase)  # a class's title wins over the phrase
_titles.setdefault(http_code(599), "HTTP error")  # a status werkzeug has no phrase for


def problem(status: int, code: str, detail: str, *,
            errors: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    """The problem document for ``code`` (its title from the registry)."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title_for(code),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    # backslashreplace: text that cannot be encoded (an unpaired surrogate echoed in a field
    # name) becomes a JSON escape instead of failing the error response itself.
    payload = json.dumps(body).encode("utf-8", "backslashreplace")
    response = Response(payload, status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _from_domain(exc: NongdaiError) -> Response:
    return problem(exc.status, exc.code, exc.detail, errors=exc.errors, headers=exc.headers)


def _validation_errors(data: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
    """Flatten webargs' ``{"json": {...}, "query": {...}}`` into field errors."""
    messages = data.get("messages") or data.get("errors") or {}
    if "json" in messages and messages["json"] == ["Invalid JSON body."]:
        return MalformedJson.code, "The body is not valid JSON", None
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return ValidationFailed.code, "Some fields are invalid; see errors", flat or None


def _from_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = http_code(status)
    data = getattr(exc, "data", None) or {}
    errors = None
    detail = exc.description or exc.name
    if data:
        code, detail, errors = _validation_errors(data)
        status = MalformedJson.status if code == MalformedJson.code else status
    headers = dict(data.get("headers") or {})
    if status == 405 and exc.get_headers():
        headers.update({k: v for k, v in exc.get_headers() if k == "Allow"})
    return problem(status, code, detail, errors=errors, headers=headers)


def _from_integrity(exc: IntegrityError) -> Response:
    log.warning("integrity error: %s", type(exc.orig).__name__)
    return problem(409, Conflict.code, "The change conflicts with an existing record")


def _from_data_error(exc: DataError) -> Response:
    log.warning("database refused a value: %s", type(exc.orig).__name__)
    return problem(InvalidData.status, InvalidData.code,
                   "A value in the request cannot be stored; check the text and numbers sent")


def _from_unicode_error(exc: UnicodeError) -> Response:
    log.warning("text could not be encoded or decoded: %s", type(exc).__name__)
    return problem(InvalidText.status, InvalidText.code,
                   "Send text as valid UTF-8, without unpaired surrogates")


def _from_operational(exc: OperationalError) -> Response:
    log.error("database unavailable: %s", type(exc.orig).__name__)
    return problem(503, ServiceUnavailable.code,
                   "The database is busy or unreachable; retry shortly",
                   headers={"Retry-After": "2"})


def _log_unexpected(exc: Exception) -> None:
    """The traceback, but never a database error's message: it holds the statement's values."""
    if isinstance(exc, StatementError):
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("unhandled database error: %s (%s)\n%s", type(exc).__name__,
                  type(exc.orig).__name__, frames)
    else:
        log.exception("unhandled error")


def _from_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _from_http(exc)
    _log_unexpected(exc)
    return problem(500, InternalError.code,
                   "Something went wrong on our side; the change was not saved")


def init_app(app: Flask) -> None:
    app.register_error_handler(NongdaiError, _from_domain)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(IntegrityError, _from_integrity)
    app.register_error_handler(DataError, _from_data_error)
    app.register_error_handler(UnicodeError, _from_unicode_error)
    app.register_error_handler(OperationalError, _from_operational)
    app.register_error_handler(Exception, _from_unexpected)
