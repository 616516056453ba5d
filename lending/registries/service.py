"""Registry lookups for one application: cache, concurrent fetch, and what the caller keeps.

Split in three so that the caller decides the transactions, and no database connection is
held while waiting on a registry:

1. :func:`cached` (database, read only): fresh answers from the ``registry_cache`` table, and
   the records of any registry whose URL is ``extract:`` (imported batch files live in the
   database, so they are read here, and ``fetch`` finds them already present);
2. :func:`fetch` (no database, no app context: safe in any thread): what is still missing,
   from the registries over HTTP; land and insurance run at the same time on a process-wide
   pool; a failure becomes an entry of ``Lookup.failures``, never an exception;
3. :func:`remember` (database, writes): the fresh answers into the cache, an upsert that two
   concurrent writers of the same key survive on SQLite and PostgreSQL.

:func:`lookup` composes them for callers that do not care. ``to_json``/``from_json`` turn the
records into the JSON a decision's snapshot stores and back (the registries' wire format).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from core.db import DbSession, db, table, utcnow
from core.i18n import _
from core.jobs import JobRun, business_date
from lending.registries import extracts, wire
from lending.registries.clients import (
    InsuranceRegistryClient,
    LandRegistryClient,
    wanted_numbers,
)
from lending.registries.config import INSURANCE, LAND, RegistryConfig, config_from
from lending.registries.models import RegistryCache
from lending.registries.types import InsuranceRecord, LandRecord, RegistryUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
CACHE, EXTRACT, HTTP = "cache", "extract", "http"  # where an answer came from


@dataclass(frozen=True)
class Cached:
    """What the database already holds for a request (:func:`cached`)."""

    land: LandRecord | None = None
    insurance: InsuranceRecord | None = None
    sources: dict[str, str] = field(default_factory=dict)  # registry -> "cache" | "extract"
    failures: dict[str, RegistryUnavailable] = field(default_factory=dict)  # extract problems


@dataclass(frozen=True)
class Lookup:
    """The outcome of a lookup: the records found and, per registry, why one is missing.

    A registry asked for is either in ``land``/``insurance`` or in ``failures`` (reason
    ``timeout``, ``error``, ``malformed`` or ``circuit-open``): the caller refers the
    application ("data source unavailable") and schedules a retry, never approves.
    """

    land: LandRecord | None
    insurance: InsuranceRecord | None
    failures: dict[str, RegistryUnavailable]
    from_cache: set[str]
    sources: dict[str, str] = field(default_factory=dict)  # registry -> cache|extract|http
    holder_hash: str = ""
    certificate_numbers: tuple[str, ...] = ()
    cache_seconds: int = 0
    fetched_at: datetime = field(default_factory=utcnow)

    @property
    def complete(self) -> bool:
        return not self.failures


# --- 1. what the database holds --------------------------------------------------------------

def request_key(registry: str, holder_hash: str, certificate_numbers: Iterable[str] = ()) -> str:
    """The cache key: land answers depend on the numbers asked for, insurance ones do not."""
    parts = [registry, holder_hash]
    if registry == LAND:
        parts.extend(wanted_numbers(certificate_numbers))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def cached(session: DbSession, holder_hash: str, certificate_numbers: Iterable[str], *,
           land: bool, insurance: bool, config: RegistryConfig | None = None,
           as_of: date | None = None) -> Cached:
    """Fresh cache rows and extract records for the registries asked for (reads only).

    Needs an app context for the defaults: ``config`` from ``current_app.config``, ``as_of``
    (the day that decides whether an extract's pledge is active) the bank's business date.
    """
    config = config or config_from(current_app.config)
    numbers = wanted_numbers(certificate_numbers)
    found: dict[str, Any] = {}
    sources: dict[str, str] = {}
    failures: dict[str, RegistryUnavailable] = {}
    for registry in _asked(land, insurance):
        try:
            record, source = _local(session, config, registry, holder_hash=holder_hash,
                                    numbers=numbers, as_of=as_of)
        except RegistryUnavailable as exc:
            failures[registry] = exc
            continue
        if record is not None:
            found[registry], sources[registry] = record, source
    return Cached(land=found.get(LAND), insurance=found.get(INSURANCE), sources=sources,
                  failures=failures)


def _asked(land: bool, insurance: bool) -> list[str]:
    return [name for name, wanted in ((LAND, land), (INSURANCE, insurance)) if wanted]


def _local(session: DbSession, config: RegistryConfig, registry: str, *, holder_hash: str,
           numbers: tuple[str, ...], as_of: date | None) -> tuple[Any, str]:
    if config.is_extract(registry):
        day = as_of or business_date()
        if registry == LAND:
            return extracts.land_records(session, config, holder_hash, numbers, day), EXTRACT
        return extracts.insurance_records(session, config, holder_hash), EXTRACT
    if config.cache_seconds <= 0:
        return None, CACHE
    body = session.scalar(sa.select(RegistryCache.body).where(
        RegistryCache.registry_name == registry,
        RegistryCache.request_key == request_key(registry, holder_hash, numbers),
        RegistryCache.expires_at > utcnow()))
    if body is None:
        return None, CACHE
    try:
        return from_json(registry, body), CACHE
    except wire.MalformedAnswer:  # written by an older release: ask the registry again
        return None, CACHE


# --- 2. what the registries say (no database) ------------------------------------------------

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor(workers: int) -> ThreadPoolExecutor:
    """The process's pool for lookups; created on first use (after a gunicorn fork)."""
    global _pool  # noqa: PLW0603 - one pool per process, like the sessions
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registry")
        return _pool


def fetch(config: RegistryConfig, holder_hash: str, certificate_numbers: Iterable[str], *,
          land: bool, insurance: bool, have: Cached | None = None) -> Lookup:
    """Ask the registries for what ``have`` lacks; both at once when both are missing.

    Touches no database and needs no app context. One of the two runs on the pool, the other
    in the calling thread. A registry whose URL is ``extract:`` is never asked over HTTP:
    its records (or failure) come in ``have`` from :func:`cached`.
    """
    have = have or Cached()
    numbers = wanted_numbers(certificate_numbers)
    results: dict[str, Any] = {LAND: have.land, INSURANCE: have.insurance}
    sources = dict(have.sources)
    failures = {name: have.failures[name] for name in _asked(land, insurance)
                if name in have.failures}
    calls: dict[str, Callable[[], Any]] = {}
    for name in _asked(land, insurance):
        if results[name] is not None or name in failures:
            continue
        if config.is_extract(name):
            failures[name] = RegistryUnavailable(  # a caller that skipped cached(): a bug
                name, "error", _("The %(registry)s extract was not read", registry=name))
            continue
        calls[name] = _call_for(config, name, holder_hash, numbers)
    for name, outcome in _run_all(config, calls).items():
        if isinstance(outcome, RegistryUnavailable):
            failures[name] = outcome
        else:
            results[name], sources[name] = outcome, HTTP
    return Lookup(land=results[LAND] if land else None,
                  insurance=results[INSURANCE] if insurance else None,
                  failures=failures,
                  from_cache={n for n, s in sources.items() if s == CACHE},
                  sources={n: s for n, s in sources.items() if n in _asked(land, insurance)},
                  holder_hash=holder_hash, certificate_numbers=numbers,
                  cache_seconds=config.cache_seconds)


def _call_for(config: RegistryConfig, registry: str, holder_hash: str,
              numbers: tuple[str, ...]) -> Callable[[], Any]:
    if registry == LAND:
        return lambda: LandRegistryClient(config).records(holder_hash, numbers)
    return lambda: InsuranceRegistryClient(config).records(holder_hash)


def _run_all(config: RegistryConfig, calls: dict[str, Callable[[], T]]
             ) -> dict[str, T | RegistryUnavailable]:
    """Run the calls, all but the last on the pool, and collect each result or failure."""
    names = list(calls)
    futures: dict[str, Future[T]] = {
        name: _executor(config.workers).submit(calls[name]) for name in names[:-1]}
    outcomes: dict[str, T | RegistryUnavailable] = {}
    if names:
        outcomes[names[-1]] = _guarded(names[-1], calls[names[-1]])
    for name, future in futures.items():
        outcomes[name] = _guarded(name, future.result)
    return outcomes


def _guarded(registry: str, call: Callable[[], T]) -> T | RegistryUnavailable:
    """The call's result, or its failure; a bug in a client is logged and still a failure
    (the application is referred, not answered with a 500)."""
    try:
        return call()
    except RegistryUnavailable as exc:
        return exc
    except Exception:
        log.exception("registry lookup failed unexpectedly", extra={"registry": registry})
        return RegistryUnavailable(registry, "error")


# --- 3. what the caller keeps ----------------------------------------------------------------

def remember(session: DbSession, lookup: Lookup) -> int:
    """Upsert the answers fetched over HTTP into the cache (flush only); returns rows written.

    ``INSERT ... ON CONFLICT DO UPDATE`` on the (registry, request_key) constraint: a second
    writer of the same key (two requests for one farmer at once) updates instead of failing.
    """
    if lookup.cache_seconds <= 0:
        return 0
    expires = lookup.fetched_at + timedelta(seconds=lookup.cache_seconds)
    rows = [{"registry_name": name, "request_key": request_key(name, lookup.holder_hash,
                                                          lookup.certificate_numbers),
             "body": to_json(record), "fetched_at": lookup.fetched_at, "expires_at": expires}
            for name, record in ((LAND, lookup.land), (INSURANCE, lookup.insurance))
            if record is not None and lookup.sources.get(name) == HTTP]
    for row in rows:
        session.execute(_upsert(session, row))
    return len(rows)


def _upsert(session: DbSession, row: dict[str, Any]) -> Any:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table(RegistryCache)).values(**row)
    return stmt.on_conflict_do_update(
        index_elements=["registry_name", "request_key"],
        set_={"body": stmt.excluded.body, "fetched_at": stmt.excluded.fetched_at,
              "expires_at": stmt.excluded.expires_at})


def lookup(session: DbSession, holder_hash: str, certificate_numbers: Iterable[str], *,
           land: bool = True, insurance: bool = True,
           config: RegistryConfig | None = None) -> Lookup:
    """:func:`cached`, :func:`fetch` and :func:`remember` in one go, in the caller's
    transaction (which stays open while the registries answer: fine for a CLI or a job)."""
    config = config or config_from(current_app.config)
    have = cached(session, holder_hash, certificate_numbers, land=land, insurance=insurance,
                  config=config)
    result = fetch(config, holder_hash, certificate_numbers, land=land, insurance=insurance,
                   have=have)
    remember(session, result)
    return result


def purge_cache(_run: JobRun) -> None:
    """Job ``registries.purge_cache``: delete expired cache rows in one statement (idempotent
    for any business date: expiry goes by the clock)."""
    db.session.execute(sa.delete(RegistryCache).where(RegistryCache.expires_at <= utcnow()))


# --- JSON for snapshots ----------------------------------------------------------------------

def to_json(record: LandRecord | InsuranceRecord) -> dict[str, Any]:
    """A record as the registries' JSON (what a decision's snapshot stores)."""
    if isinstance(record, LandRecord):
        return wire.land_to_json(record)
    return wire.insurance_to_json(record)


def from_json(registry: str, data: Any) -> Any:
    """Read back what :func:`to_json` wrote; raises ``wire.MalformedAnswer`` if it is not."""
    if registry == LAND:
        return wire.land_from_json(data)
    return wire.insurance_from_json(data)


def land_from_json(data: Any) -> LandRecord:
    return wire.land_from_json(data)


def insurance_from_json(data: Any) -> InsuranceRecord:
    return wire.insurance_from_json(data)
