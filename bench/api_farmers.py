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

The seeded database is ``bench/farmers_seed.py``, the HTTP load driver ``bench/http_load.py``,
the in-process limit and engine profile ``bench/farmers_inprocess.py``; this script runs them
and reports.

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
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.farmers_inprocess import limit, profile  # noqa: E402
from bench.farmers_seed import (  # noqa: E402
    PASSWORD,
    SEED,
    durability,
    farmers,
    keys,
    reset_pg,
    seed,
    server_env,
)
from bench.http_load import Batch, Clients, Round, flags, run_round  # noqa: E402
from tests import servers  # noqa: E402

ROUNDS = 3
TARGETS = {"stack_ratio": 0.4, "replay_cost": 0.25}  # on SQLite (issue 10)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--pg", default="", help="PostgreSQL URL (its public schema is dropped)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    return parser.parse_args()


# --- the HTTP rounds ---------------------------------------------------------------------------

def _token(base: str) -> str:
    answer = requests.post(f"{base}/api/v1/auth/login", timeout=30,
                           json={"username": "bench", "password": PASSWORD})
    answer.raise_for_status()
    return answer.json()["access_token"]


def _measure_http(url: str, instance: Path, villages: list[str], per_pass: int,
                  args: argparse.Namespace) -> list[Round]:
    """Both servers up under the same settings; a warm-up, then the measured rounds. The
    servers are stopped (their whole process groups) however this ends."""
    env = server_env(url, instance)
    rng = random.Random(SEED)
    with ExitStack() as stack:
        nongdai = stack.enter_context(servers.gunicorn("app:create_app()", env=env,
                                                       workers=args.workers))
        ceiling = stack.enter_context(servers.gunicorn("bench.ceiling_app:create_app()",
                                                       env=env, workers=args.workers))
        bases = (ceiling.base, nongdai.base)
        clients = Clients(_token(nongdai.base), args.clients)
        warm = Batch(farmers(rng, 30, villages, offset=0), keys(rng, 30))
        run_round("warm-up", bases, warm, clients)
        return [run_round(f"round {n}/{ROUNDS}", bases,
                          Batch(farmers(rng, per_pass, villages,
                                        offset=1000 + (n - 1) * per_pass),
                                keys(rng, per_pass)), clients)
                for n in range(1, ROUNDS + 1)]


# --- the report ------------------------------------------------------------------------------

def _spread(name: str, values: list[float], digits: int = 1) -> dict[str, float]:
    return {name: round(statistics.median(values), digits),
            f"{name}_min": round(min(values), digits), f"{name}_max": round(max(values), digits)}


def _statuses(rounds: list[Round]) -> dict[str, dict[str, dict[int, int]]]:
    return {f"round{n}": {name: dict(one.statuses) for name, one in r.passes().items()}
            for n, r in enumerate(rounds, start=1)}


def _engine_figures(engine: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The in-process profile's figures, per create then per replay, then their shapes."""
    figures = {f"engine_{name}_per_{phase}": engine[phase][name]
               for phase in ("create", "replay")
               for name in ("statements", "transactions", "durable_commits", "checkouts")}
    return {**figures, "engine_create_shapes": engine["create"]["shapes"],
            "engine_replay_shapes": engine["replay"]["shapes"]}


def _report(rounds: list[Round], limits: list[float], engine: dict[str, dict[str, Any]],
            context: dict[str, Any]) -> dict[str, Any]:
    create = [r.create.rate for r in rounds]
    ceiling = [r.ceiling.rate for r in rounds]
    reads = [r.ceiling_read.rate for r in rounds]
    costs = [r.replay.seconds_per_ok / r.create.seconds_per_ok for r in rounds]
    stack_ratio = statistics.median(create) / statistics.median(ceiling)
    replay_cost = statistics.median(costs)
    limit_rate = statistics.median(limits)
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
        "limit_insert_per_s": round(limit_rate, 1),
        "ratio": round(statistics.median(create) / limit_rate, 3),
        "targets": TARGETS,
        "targets_met": {"stack_ratio": stack_ratio >= TARGETS["stack_ratio"],
                        "replay_cost": replay_cost <= TARGETS["replay_cost"]},
        **_engine_figures(engine),
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
    villages = seed(url, workdir)
    rounds = _measure_http(url, workdir, villages, per_pass, args)
    limits = [limit(url, workdir, per_pass, n * per_pass) for n in range(ROUNDS)]
    engine = profile(url, workdir, villages)
    context = {"flags": flags(rounds, per_pass), "requests_per_pass": per_pass,
               "clients": args.clients, "workers": args.workers,
               "durability": durability(url),
               "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
               "python": sys.version.split()[0],
               "db": "postgresql" if args.pg else "sqlite", "cpus": os.cpu_count()}
    return _report(rounds, limits, engine, context)


def main() -> None:
    args = _args()
    workdir = Path(tempfile.mkdtemp(prefix="nongdai-bench-"))
    url = args.pg or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if args.pg:
        reset_pg(args.pg)
    try:
        result = _run(url, workdir, args)
        _print_summary(result)
        print(json.dumps(result, ensure_ascii=False))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
