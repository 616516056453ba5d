"""Outbound HTTP to the registries: one session and one circuit breaker per registry and process.

Every call (:func:`get_json`):

- goes through a ``requests.Session`` kept per base URL, whose adapter retries GETs (reads are
  idempotent) on connection errors and on 502/503/504 with exponential backoff (urllib3's
  ``Retry``); a read that timed out is not retried, since the registry may just be slow and a
  second wait would double the applicant's;
- has (connect, read) timeouts of ``timeout_ms`` on every socket wait, and the body must be
  complete ``timeout_ms`` after the headers arrived: a registry that trickles its answer a few
  bytes at a time never trips a per-read timeout, so the body is read in pieces against that
  deadline (overshoot: at most one read timeout);
- runs inside a circuit breaker per registry (:class:`~lending.registries.breaker.Breaker`, a
  ``pybreaker`` breaker that lets calls run at once): after ``breaker_failures`` failed calls
  in a row it fails fast without any HTTP for ``breaker_reset_seconds``, then lets one trial
  call through. Its state lives in this process's memory on purpose: it only protects the
  registry and our threads, and a fresh process that tries again is harmless;
- turns every failure into :class:`RegistryUnavailable` with reason ``timeout``, ``error``,
  ``malformed`` or ``circuit-open``. A 404 is an answer ("unknown"), not a failure.

Logs name the registry, the endpoint template, the status and a short prefix of a bad body,
never a URL (it holds the holder hash) nor an exception's text (urllib3 puts the URL there).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pybreaker
import requests
import urllib3
from requests.adapters import HTTPAdapter

from lending.registries.breaker import Breaker
from lending.registries.config import RegistryConfig
from lending.registries.types import RegistryUnavailable
from lending.registries.wire import MalformedAnswer

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BODY_BYTES = 1024 * 1024  # a holder's records are a few kilobytes
READ_PIECE = 64 * 1024
BODY_PREFIX = 60  # characters of a malformed body that may reach the log
POOL_SIZE = 32  # kept-alive connections per registry: the lookups a process runs at once
RETRY_STATUSES = (502, 503, 504)

_lock = threading.Lock()
_sessions: dict[tuple[str, int, int], requests.Session] = {}
_breakers: dict[tuple[str, str, int, int], Breaker] = {}


# --- per-process state -----------------------------------------------------------------------

def session_for(base_url: str, retries: int, backoff_ms: int) -> requests.Session:
    """The process's one session for ``base_url`` (thread-safe: the pool is urllib3's)."""
    key = (base_url, retries, backoff_ms)
    with _lock:
        if key not in _sessions:
            _sessions[key] = _new_session(retries, backoff_ms)
        return _sessions[key]


def _new_session(retries: int, backoff_ms: int) -> requests.Session:
    retry = urllib3.Retry(
        total=retries, connect=retries, status=retries, read=0, other=0, redirect=0,
        backoff_factor=backoff_ms / 1000, status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}), raise_on_status=False, raise_on_redirect=False,
        respect_retry_after_header=False)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=POOL_SIZE)
    session = requests.Session()
    session.trust_env = False  # no proxy or .netrc from the environment for a bank's registry
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"Accept": "application/json", "User-Agent": "nongdai-registry"})
    return session


def breaker_for(registry: str, config: RegistryConfig) -> Breaker:
    """The process's breaker for ``registry`` at its URL (a new one when its settings change)."""
    key = (registry, config.url(registry), config.breaker_failures, config.breaker_reset_seconds)
    with _lock:
        if key not in _breakers:
            _breakers[key] = Breaker(f"registry-{registry}", config.breaker_failures,
                                     config.breaker_reset_seconds)
        return _breakers[key]


def reset() -> None:
    """Forget every breaker and session of this process (tests; a settings reload)."""
    with _lock:
        for session in _sessions.values():
            session.close()
        _sessions.clear()
        _breakers.clear()


# --- one call --------------------------------------------------------------------------------

def get_json(config: RegistryConfig, registry: str, path: str, endpoint: str,
             parse: Callable[[Any], T]) -> T | None:
    """GET ``path`` of ``registry`` and ``parse`` its JSON; ``None`` when the registry says 404.

    ``endpoint`` is the path's template (``/holders/{hash}/certificates``), for the logs.
    ``parse`` raises :class:`MalformedAnswer`; it runs inside the breaker, so a registry that
    answers garbage trips it like one that is down.
    """
    breaker = breaker_for(registry, config)
    try:
        return breaker.run(lambda: _call(config, registry, path, endpoint, parse))
    except pybreaker.CircuitBreakerError:
        log.warning("registry call refused: circuit open",
                    extra={"registry": registry, "endpoint": endpoint})
        raise RegistryUnavailable(registry, "circuit-open") from None


def _call(config: RegistryConfig, registry: str, path: str, endpoint: str,
          parse: Callable[[Any], T]) -> T | None:
    started = time.monotonic()
    context = {"registry": registry, "endpoint": endpoint}
    try:
        body, status = _fetch(config, registry, path)
        if status == 404 and _is_registry_404(body):
            return None
        if status != 200:
            raise _failure(registry, "error", context, started, status=status, body=body)
        data = _decode(body, registry, context, started)
        return parse(data)
    except MalformedAnswer as exc:  # the shape: the path and rule only, never the values
        raise _failure(registry, "malformed", context, started, problem=str(exc)) from None
    except _Timeout:
        raise _failure(registry, "timeout", context, started) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        reason = "timeout" if _is_timeout(exc) else "error"
        raise _failure(registry, reason, context, started, problem=type(exc).__name__) from None


def _fetch(config: RegistryConfig, registry: str, path: str) -> tuple[bytes, int]:
    """The status and the whole body, read against the deadline."""
    session = session_for(config.url(registry), config.retries, config.backoff_ms)
    timeout = config.timeout_s
    with session.get(f"{config.url(registry)}{path}", timeout=(timeout, timeout), stream=True,
                     allow_redirects=False) as response:
        return _read_body(response, time.monotonic() + timeout), response.status_code


class _Timeout(Exception):
    """The body did not arrive by the deadline."""


def _read_body(response: requests.Response, deadline: float) -> bytes:
    """Read in pieces as they come (``read1``), checking the deadline between pieces."""
    pieces: list[bytes] = []
    size = 0
    while piece := response.raw.read1(READ_PIECE, decode_content=True):
        size += len(piece)
        if size > MAX_BODY_BYTES:
            raise MalformedAnswer(f"body larger than {MAX_BODY_BYTES} bytes")
        pieces.append(piece)
        if time.monotonic() > deadline:
            raise _Timeout
    return b"".join(pieces)


def _is_registry_404(body: bytes) -> bool:
    """A 404 means "unknown" only when the registry says it (a JSON object): a web server's
    HTML 404 means a wrong base URL, which must not read as "the holder holds nothing"."""
    try:
        return isinstance(json.loads(body.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError):
        return False


def _decode(body: bytes, registry: str, context: dict[str, Any], started: float) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _failure(registry, "malformed", context, started, problem="not JSON",
                       body=body) from None


def _is_timeout(exc: BaseException) -> bool:
    """Whether a timeout is behind ``exc``: requests wraps a read timeout met while reading a
    body (and a timeout urllib3 gave up retrying) in a plain ``ConnectionError``."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.NewConnectionError):
            continue  # refused or unresolvable; urllib3 derives it from ConnectTimeoutError
        if isinstance(current, requests.Timeout | urllib3.exceptions.TimeoutError
                      | TimeoutError):
            return True
        if isinstance(current, BaseException):
            stack.extend([current.__cause__, current.__context__,
                          getattr(current, "reason", None), *current.args])
    return False


def _failure(registry: str, reason: str, context: dict[str, Any], started: float, *,
             status: int | None = None, problem: str | None = None,
             body: bytes | None = None) -> RegistryUnavailable:
    extra: dict[str, Any] = {**context, "reason": reason, "status": status,
                             "elapsed_ms": round((time.monotonic() - started) * 1000)}
    if problem:
        extra["problem"] = problem
    if body:  # an error page or a proxy's text; hex runs (a holder hash) cut short
        prefix = body[:BODY_PREFIX].decode("utf-8", "replace")
        extra["body_prefix"] = _HEX_RUN.sub(r"\1…", prefix)
    log.warning("registry unavailable", extra=extra)
    return RegistryUnavailable(registry, reason)


# urllib3 logs requests and retries with their URL, which holds the holder hash (and so does
# waitress, serving the in-process reference registry): keep a prefix of any long hex run.
_HEX_RUN = re.compile(r"([0-9a-fA-F]{8})[0-9a-fA-F]{8,}")
URL_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "waitress")


class _HashFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _HEX_RUN.sub(r"\1…", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install_log_filter(names: tuple[str, ...] = URL_LOGGERS) -> None:
    """Shorten holder hashes in these libraries' own log lines (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HashFilter) for f in logger.filters):
            logger.addFilter(_HashFilter())
