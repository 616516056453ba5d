"""Benchmark: coordinators registering farmers over HTTP (gunicorn), against the stack ceiling.

The foundation's write path end to end: Bearer authentication, access rule, strict schema,
Idempotency-Key, ID-number validation and encryption, keyed-hash dedupe, scoping, the audit
event, durable commits (SQLite WAL + synchronous=FULL, or PostgreSQL). See bench/README.md.

Measured in one run, each pass 3 times, the median reported (``_min``/``_max`` beside it):

- ``http_create_per_s``: farmers created per second (only 201s count), 8 clients, 2 workers;
- ``ceiling_per_s``: the stack ceiling, a bare Flask view (``bench/ceiling_app.py``) under the
  same gunicorn settings and clients, one row and one durable commit per request, measured in
  the same rounds, interleaved with the creates slice by slice;
  ``stack_ratio = http_create_per_s / ceiling_per_s`` (target >= 0.4 on SQLite);
- ``http_replay_per_s`` and ``replay_cost``: every request sent again with its key, seconds per
  replayed request / seconds per created one (target <= 0.25); ``ceiling_read_per_s``, the bare
  view that reads one stored row and answers it, bounds replays: ``replay_cost_floor`` =
  ``http_create_per_s / ceiling_read_per_s`` is the least a replay can cost at this create rate;
- ``limit_insert_per_s``: a Core insert of the same rows the path writes (farmer, idempotency
  record, audit event), one request's rows per transaction, in-process; ``ratio`` = create/limit;
- ``engine_*``: an in-process profile through the Flask test client (no HTTP, hence the
  prefix): SQL statements, transactions and durable commits per create and per replay.

    python bench/api_farmers.py [--quick] [--pg postgresql+psycopg://postgres@127.0.0.1/NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from bench import ceiling_app  # noqa: E402
from bench.sqlcount import SqlCounter, Tally  # noqa: E402
from core.audit import AuditEvent  # noqa: E402
from core.db import db, utcnow, uuid7  # noqa: E402
from core.idempotency import REPLAYED_HEADER, IdempotencyRecord  # noqa: E402
from core.people import idnumber  # noqa: E402
from core.people import services as people  # noqa: E402
from core.people.models import Farmer  # noqa: E402
from core.places import services as places  # noqa: E402
from tests import servers  # noqa: E402

PASSWORD = "bench-password-1"  # noqa: S105
SEED = 20261129
ROUNDS = 3
SLICES = 5  # per round: the four passes over one fifth of the bodies at a time, five times over
TARGETS = {"stack_ratio": 0.4, "replay_cost": 0.25}  # on SQLite (issue 10)
PROFILED = 40  # requests in the in-process profile
# Sign-in and lookup limits guard people, not a benchmark that signs in twice and creates
# thousands of farmers as one coordinator.
LIMITS = {"NONGDAI_LOGIN_PER_USER_PER_HOUR": 1000, "NONGDAI_LOOKUP_PER_USER_PER_HOUR": 1_000_000}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--pg", default="", help="PostgreSQL URL (its public schema is dropped)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    return parser.parse_args()


# --- the database: fresh, seeded, deterministic -----------------------------------------------

def _settings(url: str, instance: Path) -> dict[str, Any]:
    return {"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": str(instance),
            "NONGDAI_SEED_DEMO": False, "NONGDAI_LOG_LEVEL": "WARNING", **LIMITS}


def _server_env(url: str, instance: Path) -> dict[str, str]:
    return {**os.environ, "NONGDAI_DATABASE_URL": url, "NONGDAI_INSTANCE_PATH": str(instance),
            "NONGDAI_SEED_DEMO": "0", "NONGDAI_LOG_LEVEL": "WARNING",
            **{name: str(value) for name, value in LIMITS.items()}}


def _reset_pg(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def _seed(url: str, instance: Path) -> list[str]:
    """Migrate, then one county, township, station over 4 villages, and a coordinator;
    the ceiling's table; ANALYZE on PostgreSQL (it runs without autovacuum here)."""
    from flask_migrate import upgrade  # noqa: PLC0415

    ceiling_app.prepare(url)
    app = create_app(_settings(url, instance))
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        places.create_county(db.session, code="330521", name="德清县")
        township = places.create_township(db.session, code="330521101", name="新市镇")
        villages = [places.create_village(db.session, code=f"330521101{200 + n}", name=f"村{n}")
                    for n in range(4)]
        station = places.create_station(db.session, name="服务站", township=township,
                                        villages=villages)
        people.create_coordinator(db.session, username="bench", name="协贷员",
                                  phone="13900000000", password=PASSWORD, station=station)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
        village_ids = [str(v.public_id) for v in villages]
        db.engine.dispose()
    return village_ids


def _farmers(rng: random.Random, count: int, villages: list[str], offset: int) -> list[dict]:
    out = []
    for n in range(count):
        born = date(1955, 1, 1) + timedelta(days=rng.randrange(0, 40 * 365))
        seq = offset + n
        region = f"3305{21 + seq // 1000 % 70:02d}"
        out.append({"name": f"农户{seq}", "phone": f"13{seq:09d}",
                    "id_number": idnumber.make(region, born, seq),
                    "village_id": villages[seq % len(villages)]})
    return out


def _keys(rng: random.Random, count: int) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(count)]


def _durability(url: str) -> str:
    """What an acknowledged commit means on this database, read back from it."""
    engine = ceiling_app.make_engine(url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
                conn.exec_driver_sql("PRAGMA synchronous").scalar(), "?")
            text = f"journal_mode={mode}, synchronous={sync}"
        else:
            sync = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            fsync = conn.exec_driver_sql("SHOW fsync").scalar()
            version = conn.exec_driver_sql("SHOW server_version").scalar()
            text = f"PostgreSQL {version}, synchronous_commit={sync}, fsync={fsync}"
    engine.dispose()
    return text


# --- HTTP passes ------------------------------------------------------------------------------

class Progress:
    """A bar on a terminal, redrawn at most 10 times a second; elsewhere (a log file) a line
    every few seconds, so a short pass prints nothing. On stderr: stdout keeps the figures."""

    QUIET_SECONDS = 3.0

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.tty = sys.stderr.isatty()
        self._last = time.monotonic()

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self._last < (0.1 if self.tty else self.QUIET_SECONDS):
            return
        self._last = now
        if self.tty:
            bar = "#" * (self.done * 40 // self.total)
            print(f"\r  {self.label:<24} [{bar:.<40}] {self.done}/{self.total}", end="",
                  file=sys.stderr, flush=True)
        else:
            print(f"  {self.label}: {self.done}/{self.total}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print("\r" + " " * 80 + "\r", end="", file=sys.stderr, flush=True)


@dataclass
class Pass:
    """One pass of requests (or the sum of its slices): time taken and what came back."""

    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    replayed: int = 0  # answers marked Idempotent-Replayed

    def add(self, other: Pass) -> None:
        self.seconds += other.seconds
        self.statuses.update(other.statuses)
        self.replayed += other.replayed

    @property
    def ok(self) -> int:
        return self.statuses[201]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    @property
    def seconds_per_ok(self) -> float:
        return self.seconds / self.ok if self.ok else float("inf")


@dataclass(frozen=True)
class Batch:
    """The bodies of one pass and the Idempotency-Key of each."""

    bodies: list[dict]
    keys: list[str]

    def slices(self, count: int) -> list[Batch]:
        size = -(-len(self.bodies) // count)
        return [Batch(self.bodies[at:at + size], self.keys[at:at + size])
                for at in range(0, len(self.bodies), size)]


@dataclass(frozen=True)
class Clients:
    """The client side, the same for every server: one token, ``threads`` phones."""

    token: str
    threads: int


def push(url: str, batch: Batch, clients: Clients, progress: Progress) -> Pass:
    """POST every body with its key from ``clients.threads`` threads, each with its own
    ``requests.Session`` (as a phone would), reporting progress as answers arrive."""
    local = threading.local()

    def send(body: dict, key: str) -> tuple[int, bool]:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        answer = local.http.post(url, json=body, timeout=60, headers={
            "Authorization": f"Bearer {clients.token}", "Idempotency-Key": key})
        return answer.status_code, answer.headers.get(REPLAYED_HEADER) == "true"

    statuses: Counter[int] = Counter()
    replayed = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients.threads) as pool:
        futures = [pool.submit(send, body, key)
                   for body, key in zip(batch.bodies, batch.keys, strict=True)]
        for future in as_completed(futures):
            status, was_replayed = future.result()
            statuses[status] += 1
            replayed += was_replayed
            progress.step()
    return Pass(time.perf_counter() - started, statuses, replayed)


def _token(base: str) -> str:
    answer = requests.post(f"{base}/api/v1/auth/login", timeout=30,
                           json={"username": "bench", "password": PASSWORD})
    answer.raise_for_status()
    return answer.json()["access_token"]


@dataclass
class Round:
    ceiling: Pass = field(default_factory=Pass)
    ceiling_read: Pass = field(default_factory=Pass)
    create: Pass = field(default_factory=Pass)
    replay: Pass = field(default_factory=Pass)

    def passes(self) -> dict[str, Pass]:
        return {"ceiling": self.ceiling, "ceiling_read": self.ceiling_read,
                "create": self.create, "replay": self.replay}


def _round(label: str, bases: tuple[str, str], batch: Batch, clients: Clients) -> Round:
    """The ceilings, the creates and their replays, interleaved slice by slice: the machine is
    shared, and a neighbour's burst of work then lands on all four alike, not on one pass."""
    ceiling, nongdai = bases
    farmers = f"{nongdai}/api/v1/farmers"
    result = Round()
    progress = Progress(label, 4 * len(batch.bodies))
    for part in batch.slices(SLICES):
        result.ceiling.add(push(f"{ceiling}/rows", part, clients, progress))
        result.ceiling_read.add(push(f"{ceiling}/rows/stored", part, clients, progress))
        result.create.add(push(farmers, part, clients, progress))
        result.replay.add(push(farmers, part, clients, progress))
    progress.close()
    cost = result.replay.seconds_per_ok / result.create.seconds_per_ok
    print(f"{label}: ceiling {result.ceiling.rate:7.1f}/s (read {result.ceiling_read.rate:7.1f}/s)"
          f", created {result.create.rate:7.1f}/s, replayed {result.replay.rate:7.1f}/s "
          f"({cost:.2f} of a create)", flush=True)
    return result


def _flags(rounds: list[Round], per_pass: int) -> list[str]:
    """Passes whose answers were not all what they should be (the figures count only 201s)."""
    flags = []
    for n, r in enumerate(rounds, start=1):
        for name, one in r.passes().items():
            if one.ok != per_pass:
                flags.append(f"round {n} {name}: {per_pass - one.ok} of {per_pass} not 201 "
                             f"({dict(one.statuses)})")
        if r.create.replayed:
            flags.append(f"round {n} create: {r.create.replayed} answered as replays")
        if r.replay.replayed != r.replay.ok:
            flags.append(f"round {n} replay: {r.replay.ok - r.replay.replayed} 201s "
                         "not marked as replays")
    return flags


def _measure_http(url: str, instance: Path, villages: list[str], per_pass: int,
                  args: argparse.Namespace) -> list[Round]:
    """Both servers up under the same settings; a warm-up, then the measured rounds. The
    servers are stopped (their whole process groups) however this ends."""
    env = _server_env(url, instance)
    rng = random.Random(SEED)
    with ExitStack() as stack:
        nongdai = stack.enter_context(servers.gunicorn("app:create_app()", env=env,
                                                       workers=args.workers))
        ceiling = stack.enter_context(servers.gunicorn("bench.ceiling_app:create_app()",
                                                       env=env, workers=args.workers))
        bases = (ceiling.base, nongdai.base)
        clients = Clients(_token(nongdai.base), args.clients)
        warm = Batch(_farmers(rng, 30, villages, offset=0), _keys(rng, 30))
        _round("warm-up", bases, warm, clients)
        return [_round(f"round {n}/{ROUNDS}", bases,
                       Batch(_farmers(rng, per_pass, villages, offset=1000 + (n - 1) * per_pass),
                             _keys(rng, per_pass)), clients)
                for n in range(1, ROUNDS + 1)]


# --- the limit: the same rows, written directly ----------------------------------------------

def _columns_of(table: Any, row: Mapping[str, Any]) -> dict[str, Any]:
    """The row as far as the table has those columns (the idempotency record is changing)."""
    names = set(table.__table__.columns.keys())
    return {name: value for name, value in row.items() if name in names}


def _limit_rows(village_id: int, n: int, offset: int) -> list[tuple[Any, dict[str, Any]]]:
    now = utcnow()
    return [
        (Farmer, {"public_id": uuid7(), "created_at": now, "name": f"农户{offset + n}",
                  "phone": f"15{offset + n:09d}", "id_number_ciphertext": "v1." + "x" * 60,
                  "id_number_hash": uuid.uuid4().hex * 2, "id_number_masked": "3305**********",
                  "birth_date": date(1980, 1, 1), "village_id": village_id,
                  "is_active": True}),
        (IdempotencyRecord, {
            "scope": "coordinator:bench", "key": uuid.uuid4().hex, "method": "POST",
            "path": "/api/v1/farmers", "request_hash": "0" * 64, "state": "completed",
            "response_status": 201, "response_body": "{}" * 150, "response_headers": {},
            "created_at": now, "expires_at": now + timedelta(hours=48)}),
        (AuditEvent, {"occurred_at": now, "actor": "coordinator:bench",
                      "action": "farmer.create", "object_type": "farmers",
                      "object_id": str(uuid7()), "request_id": "r" * 32,
                      "summary": {"village_id": "v"}}),
    ]


def _limit(url: str, instance: Path, count: int, offset: int) -> float:
    """Core inserts of the same rows (farmer + idempotency record + audit event) per txn."""
    app = create_app(_settings(url, instance))
    with app.app_context():
        with db.engine.connect() as conn:
            village_id = conn.scalar(sa.text("SELECT min(id) FROM villages"))
        started = time.perf_counter()
        for n in range(count):
            with db.engine.begin() as conn:
                for model, row in _limit_rows(village_id, n, offset):
                    conn.execute(sa.insert(model), [_columns_of(model, row)])
        elapsed = time.perf_counter() - started
        db.engine.dispose()
    return count / elapsed


# --- the in-process profile ------------------------------------------------------------------

def _per_request(tallies: list[Tally]) -> dict[str, Any]:
    count = len(tallies)
    shapes: Counter[str] = Counter()
    for tally in tallies:
        shapes.update(tally.shapes)
    return {
        "statements": round(sum(t.statements for t in tallies) / count, 2),
        "transactions": round(sum(t.transactions for t in tallies) / count, 2),
        "durable_commits": round(sum(t.durable_commits for t in tallies) / count, 2),
        "checkouts": round(sum(t.checkouts for t in tallies) / count, 2),
        "shapes": {shape: round(n / count, 2) for shape, n in sorted(shapes.items())},
    }


def _profile(url: str, instance: Path, villages: list[str]) -> dict[str, dict[str, Any]]:
    """Statements, transactions and durable commits per create and per replay, through the
    Flask test client on the same seeded database (every layer but HTTP and gunicorn)."""
    app = create_app(_settings(url, instance))
    client = app.test_client()
    login = client.post("/api/v1/auth/login", json={"username": "bench", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
    rng = random.Random(SEED + 7)
    bodies, keys = _farmers(rng, PROFILED, villages, offset=500_000), _keys(rng, PROFILED)
    with app.app_context():
        counter = SqlCounter(db.engine)
    tallies: dict[str, list[Tally]] = {"create": [], "replay": []}
    try:
        for phase, status in (("create", 201), ("replay", 201)):
            for body, key in zip(bodies, keys, strict=True):
                with counter.measure() as tally:
                    answer = client.post("/api/v1/farmers", json=body, buffered=True,
                                         headers={**headers, "Idempotency-Key": key})
                if answer.status_code != status:
                    raise SystemExit(f"profile {phase}: {answer.status_code} {answer.text}")
                tallies[phase].append(tally)
    finally:
        counter.close()
        with app.app_context():
            db.engine.dispose()
    return {phase: _per_request(found) for phase, found in tallies.items()}


# --- the report ------------------------------------------------------------------------------

def _spread(name: str, values: list[float], digits: int = 1) -> dict[str, float]:
    return {name: round(statistics.median(values), digits),
            f"{name}_min": round(min(values), digits), f"{name}_max": round(max(values), digits)}


def _statuses(rounds: list[Round]) -> dict[str, dict[str, dict[int, int]]]:
    return {f"round{n}": {name: dict(one.statuses) for name, one in r.passes().items()}
            for n, r in enumerate(rounds, start=1)}


def _report(rounds: list[Round], limits: list[float], profile: dict[str, dict[str, Any]],
            context: dict[str, Any]) -> dict[str, Any]:
    create = [r.create.rate for r in rounds]
    ceiling = [r.ceiling.rate for r in rounds]
    reads = [r.ceiling_read.rate for r in rounds]
    costs = [r.replay.seconds_per_ok / r.create.seconds_per_ok for r in rounds]
    stack_ratio = statistics.median(create) / statistics.median(ceiling)
    replay_cost = statistics.median(costs)
    limit = statistics.median(limits)
    return {
        "bench": "api_farmers",
        **_spread("http_create_per_s", create),
        **_spread("ceiling_per_s", ceiling),
        "stack_ratio": round(stack_ratio, 3),
        "stack_ratio_rounds": [round(c / n, 3) for c, n in zip(create, ceiling, strict=True)],
        **_spread("http_replay_per_s", [r.replay.rate for r in rounds]),
        **_spread("replay_cost", costs, 3),
        **_spread("ceiling_read_per_s", reads),
        "replay_cost_floor": round(statistics.median(create) / statistics.median(reads), 3),
        "limit_insert_per_s": round(limit, 1),
        "ratio": round(statistics.median(create) / limit, 3),
        "targets": TARGETS,
        "targets_met": {"stack_ratio": stack_ratio >= TARGETS["stack_ratio"],
                        "replay_cost": replay_cost <= TARGETS["replay_cost"]},
        "engine_statements_per_create": profile["create"]["statements"],
        "engine_transactions_per_create": profile["create"]["transactions"],
        "engine_durable_commits_per_create": profile["create"]["durable_commits"],
        "engine_checkouts_per_create": profile["create"]["checkouts"],
        "engine_statements_per_replay": profile["replay"]["statements"],
        "engine_transactions_per_replay": profile["replay"]["transactions"],
        "engine_durable_commits_per_replay": profile["replay"]["durable_commits"],
        "engine_checkouts_per_replay": profile["replay"]["checkouts"],
        "engine_create_shapes": profile["create"]["shapes"],
        "engine_replay_shapes": profile["replay"]["shapes"],
        "statuses": _statuses(rounds),
        **context,
    }


def _print_summary(result: dict[str, Any]) -> None:
    print(f"ceiling (bare Flask view, 1 row + 1 durable commit): {result['ceiling_per_s']}/s; "
          f"reading 1 stored row: {result['ceiling_read_per_s']}/s")
    print(f"created {result['http_create_per_s']}/s -> stack_ratio {result['stack_ratio']} "
          f"(target >= {TARGETS['stack_ratio']}); replay_cost {result['replay_cost']} "
          f"(target <= {TARGETS['replay_cost']}; no replay over this stack can cost less than "
          f"{result['replay_cost_floor']} of a create at this create rate)")
    print(f"limit (Core insert of the same rows, 1 request's rows per txn): "
          f"{result['limit_insert_per_s']}/s -> ratio {result['ratio']}")
    for phase in ("create", "replay"):
        print(f"engine profile per {phase}: {result[f'engine_statements_per_{phase}']} "
              f"statements, {result[f'engine_transactions_per_{phase}']} transactions, "
              f"{result[f'engine_durable_commits_per_{phase}']} durable commits, "
              f"{result[f'engine_checkouts_per_{phase}']} pool checkouts: "
              f"{result[f'engine_{phase}_shapes']}")
    for flag in result["flags"]:
        print(f"FLAGGED: {flag}")


def _run(url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    per_pass = 150 if args.quick else 1000
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    villages = _seed(url, workdir)
    rounds = _measure_http(url, workdir, villages, per_pass, args)
    limits = [_limit(url, workdir, per_pass, n * per_pass) for n in range(ROUNDS)]
    profile = _profile(url, workdir, villages)
    context = {"flags": _flags(rounds, per_pass), "requests_per_pass": per_pass,
               "clients": args.clients, "workers": args.workers,
               "durability": _durability(url),
               "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
               "python": sys.version.split()[0],
               "db": "postgresql" if args.pg else "sqlite", "cpus": os.cpu_count()}
    return _report(rounds, limits, profile, context)


def main() -> None:
    args = _args()
    workdir = Path(tempfile.mkdtemp(prefix="nongdai-bench-"))
    url = args.pg or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if args.pg:
        _reset_pg(args.pg)
    try:
        result = _run(url, workdir, args)
        _print_summary(result)
        print(json.dumps(result, ensure_ascii=False))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
