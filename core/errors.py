"""One error shape for the whole API: RFC 9457 ``application/problem+json``.

Domains raise subclasses of :class:`NongdaiError`; the handlers here turn those, werkzeug's
HTTP exceptions, webargs validation failures and database errors into problems with a stable
``code``. Views never build error responses by hand.

Each ``code`` has exactly one ``title``, kept in one registry: every :class:`NongdaiError`
subclass registers its own when it is defined (a second class with the same code and another
title is refused at import), then every HTTP status werkzeug can raise gets a code and title
unless a class already gave one. :func:`problem` takes the title from the registry, so a
client that switches on ``code`` sees one title for it, whichever path raised it.

Titles and details are written in English and rendered in the request's language
(``core.i18n``): the registry keeps the English title of each code as its identity (the
OpenAPI document lists it), a problem shows its translation. The ``code`` is never translated.

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

from core.i18n import N_, Text, _, gettext, lazy_gettext, msgid

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
TYPE_PREFIX = "urn:nongdai:problem:"

_titles: dict[str, str] = {}  # code -> English title (the message id)


def register_code(code: str, title: Text) -> None:
    """Give ``code`` its title; refuse another title for a code that already has one."""
    english = msgid(title)
    known = _titles.setdefault(code, english)
    if known != english:
        raise TypeError(f"problem code {code!r} already has the title {known!r}, "
                        f"not {english!r}: give the new error its own code")


def title_for(code: str) -> str:
    """The English title of ``code``: its identity, as the OpenAPI document lists it."""
    return _titles[code]


def translated_title(code: str) -> str:
    """The title of ``code`` in the current language, as a problem document shows it."""
    return gettext(_titles[code])


def problem_titles() -> dict[str, str]:
    """Every code the app can answer, with its one (English) title."""
    return dict(_titles)


class NongdaiError(Exception):
    """Base of every domain error; ``status`` and ``code`` decide the problem document."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad-request"
    title: ClassVar[Text] = lazy_gettext("Bad request")

    def __init__(self, detail: Text | None = None, *, errors: dict[str, Any] | None = None,
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
    status, code = 422, "validation-failed"
    title = lazy_gettext("The request has invalid fields")


class MalformedJson(NongdaiError):
    status, code = 400, "malformed-json"
    title = lazy_gettext("Malformed JSON")


class Unauthorized(NongdaiError):
    status, code = 401, "unauthorized"
    title = lazy_gettext("Authentication required")

    def __init__(self, detail: Text | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="nongdai"'})
        super().__init__(detail, **kwargs)


class Forbidden(NongdaiError):
    status, code = 403, "forbidden"
    title = lazy_gettext("Not allowed for your role")


class NotFound(NongdaiError):
    status, code = 404, "not-found"
    title = lazy_gettext("Not found")


class Conflict(NongdaiError):
    status, code = 409, "conflict"
    title = lazy_gettext("Conflicts with the current state")


class InvalidData(NongdaiError):
    """The database refused a value that validation let through (a backstop, not a plan)."""

    status, code = 422, "invalid-data"
    title = lazy_gettext("A value cannot be stored")


class InvalidText(NongdaiError):
    """Text that cannot be encoded (an unpaired surrogate, say) reached code that encodes it."""

    status, code = 400, "invalid-text"
    title = lazy_gettext("The request holds text that is not valid Unicode")


class RateLimited(NongdaiError):
    status, code = 429, "rate-limited"
    title = lazy_gettext("Too many requests")

    def __init__(self, detail: Text | None = None, *, retry_after: int = 60) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class InternalError(NongdaiError):
    status, code = 500, "internal-error"
    title = lazy_gettext("Internal error")


class ServiceUnavailable(NongdaiError):
    status, code = 503, "unavailable"
    title = lazy_gettext("Temporarily unavailable")


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

# werkzeug's phrases, marked for the catalog (its HTTP_STATUS_CODES cannot be extracted); the
# tests check that the list covers every status werkzeug knows, with werkzeug's very text.
HTTP_PHRASES = {
    400: N_("Bad Request"),
    401: N_("Unauthorized"),
    402: N_("Payment Required"),
    403: N_("Forbidden"),
    404: N_("Not Found"),
    405: N_("Method Not Allowed"),
    406: N_("Not Acceptable"),
    407: N_("Proxy Authentication Required"),
    408: N_("Request Timeout"),
    409: N_("Conflict"),
    410: N_("Gone"),
    411: N_("Length Required"),
    412: N_("Precondition Failed"),
    413: N_("Request Entity Too Large"),
    414: N_("Request URI Too Long"),
    415: N_("Unsupported Media Type"),
    416: N_("Requested Range Not Satisfiable"),
    417: N_("Expectation Failed"),
    418: N_("I'm a teapot"),
    421: N_("Misdirected Request"),
    422: N_("Unprocessable Entity"),
    423: N_("Locked"),
    424: N_("Failed Dependency"),
    425: N_("Too Early"),
    426: N_("Upgrade Required"),
    428: N_("Precondition Required"),
    429: N_("Too Many Requests"),
    431: N_("Request Header Fields Too Large"),
    449: N_("Retry With"),
    451: N_("Unavailable For Legal Reasons"),
    500: N_("Internal Server Error"),
    501: N_("Not Implemented"),
    502: N_("Bad Gateway"),
    503: N_("Service Unavailable"),
    504: N_("Gateway Timeout"),
    505: N_("HTTP Version Not Supported"),
    506: N_("Variant Also Negotiates"),
    507: N_("Insufficient Storage"),
    508: N_("Loop Detected"),
    510: N_("Not Extended"),
    511: N_("Network Authentication Failed"),
}
UNKNOWN_STATUS = N_("HTTP error")

# Our detail for werkzeug's own errors (its descriptions are English prose for browsers);
# any other status shows its translated title as the detail.
_HTTP_DETAILS = {
    400: N_("The server could not understand the request"),
    404: N_("Nothing was found at this address; check the spelling of the URL"),
    405: N_("This address does not accept this method; the Allow header lists those it does"),
    406: N_("The server cannot answer in a type the Accept header allows"),
    413: N_("The request body is larger than the server accepts"),
    414: N_("The address is longer than the server accepts"),
    415: N_("Send the body as application/json"),
    431: N_("The request headers are larger than the server accepts"),
}


def http_code(status: int) -> str:
    """The stable code of an HTTP status werkzeug may raise (``405`` -> ``method-not-allowed``)."""
    phrase = HTTP_STATUS_CODES.get(status, "http error")
    return _HTTP_CODES.get(status) or re.sub(r"[^a-z0-9]+", "-", phrase.lower()).strip("-")


for _status, _phrase in HTTP_STATUS_CODES.items():
    if _status >= 400:  # a class's title wins over the phrase
        _titles.setdefault(http_code(_status), HTTP_PHRASES.get(_status, _phrase))
_titles.setdefault(http_code(599), UNKNOWN_STATUS)  # a status werkzeug has no phrase for


def problem(status: int, code: str, detail: Text, *,
            errors: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    """The problem document for ``code``: its title from the registry and ``detail``, both in
    the request's language."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": translated_title(code),
        "status": status,
        "detail": str(detail),
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
        return MalformedJson.code, _("The body is not valid JSON"), None
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return ValidationFailed.code, _("Some fields are invalid; see errors"), flat or None


def _http_detail(exc: HTTPException, status: int) -> str:
    """The exception's own description when our code gave one (already translated), else our
    translated detail for the status: werkzeug's default descriptions are English prose."""
    if exc.description and exc.description != type(exc).description:
        return exc.description
    default = _HTTP_DETAILS.get(status)
    return gettext(default) if default else translated_title(http_code(status))


def _from_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = http_code(status)
    data = getattr(exc, "data", None) or {}
    errors = None
    detail = _http_detail(exc, status)
    if data:
        code, detail, errors = _validation_errors(data)
        status = MalformedJson.status if code == MalformedJson.code else status
    headers = dict(data.get("headers") or {})
    if status == 405 and exc.get_headers():
        headers.update({k: v for k, v in exc.get_headers() if k == "Allow"})
    return problem(status, code, detail, errors=errors, headers=headers)


def _from_integrity(exc: IntegrityError) -> Response:
    log.warning("integrity error: %s", type(exc.orig).__name__)
    return problem(409, Conflict.code, _("The change conflicts with an existing record"))


def _from_data_error(exc: DataError) -> Response:
    log.warning("database refused a value: %s", type(exc.orig).__name__)
    return problem(InvalidData.status, InvalidData.code,
                   _("A value in the request cannot be stored; check the text and numbers sent"))


def _from_unicode_error(exc: UnicodeError) -> Response:
    log.warning("text could not be encoded or decoded: %s", type(exc).__name__)
    return problem(InvalidText.status, InvalidText.code,
                   _("Send text as valid UTF-8, without unpaired surrogates"))


def _from_operational(exc: OperationalError) -> Response:
    log.error("database unavailable: %s", type(exc.orig).__name__)
    return problem(503, ServiceUnavailable.code,
                   _("The database is busy or unreachable; retry shortly"),
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
                   _("Something went wrong on our side; the change was not saved"))


def init_app(app: Flask) -> None:
    app.register_error_handler(NongdaiError, _from_domain)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(IntegrityError, _from_integrity)
    app.register_error_handler(DataError, _from_data_error)
    app.register_error_handler(UnicodeError, _from_unicode_error)
    app.register_error_handler(OperationalError, _from_operational)
    app.register_error_handler(Exception, _from_unexpected)
