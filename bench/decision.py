"""Benchmark "310": farmers' applications decided over HTTP (gunicorn), registries at 50 ms.

The "310" promise: an application submitted from a phone gets its decision at once (the "1"
of 3-1-0 is one second; the target here is half of it, with both registries answering after
50 ms). Measured in one run, each pass 3 times, the median reported (``_min``/``_max`` beside):

- ``p50_ms``, ``p99_ms``: from sending ``POST /api/v1/applications`` to the decided
  application arriving, for the cases decided with no person (approved or declined), over 20
  farmers' phones at once (target ``p99_ms`` <= 500). Each application is a new farmer's
  (seeded with consents, one earlier approved loan and a token), with no registry cache, so
  each one asks the land and insurance registries (the reference registry, a process of its
  own, answering after 50 ms);
- ``decisions_per_s``: every 201 per second of the pass; ``outcomes``: states per pass
  (referred ones are counted, not timed);
- ``ceiling_per_s``: the stack ceiling (``bench/ceiling_app.py``, one row and one durable
  commit per request) under the same gunicorn settings and clients, interleaved with the
  applications slice by slice; ``stack_ratio = decisions_per_s / ceiling_per_s``;
- ``*_cpu_ms_per_*``: CPU time of the servers, the registry and the clients per request (read
  from ``/proc``: the machine is shared, and CPU time is what neighbours do not inflate);
- ``sqlite_lock_*``: on SQLite, how long write transactions waited for and held the database's
  one write lock, logged by Nongdai's workers (``bench/decision_gunicorn.py``);
- ``engine_decisions_per_s``: the credit policy engine alone on prepared facts, in-process
  (``bench/engine.py``; target >= 5,000);
- ``service_*``: one in-process profile of further applications through the Flask test client
  (statements, commits and phase times per decision: ``bench/decision_profile.py``).

The world is seeded by ``bench/decision_seed.py``, the load driven by ``bench/decision_load.py``.
See bench/README.md for every key.

    python bench/decision.py [--quick] [--pg postgresql+psycopg://postgres@127.0.0.1/NAME]
                             [--workers 2] [--threads 4] [--clients 20] [--latency-ms 50]
                             [--pyinstrument]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import decision_seed as world  # noqa: E402
from bench.decision_gunicorn import LOG_DIR  # noqa: E402
from bench.decision_load import AUTO, Bases, LockLog, Round, percentile, run_round  # noqa: E402
from bench.decision_profile import profile  # noqa: E402
from bench.farmers_seed import durability, reset_pg  # noqa: E402
from core import serving  # noqa: E402
from tests import servers  # noqa: E402

ROUNDS = 3
TARGETS = {"p99_ms": 500, "engine_decisions_per_s": 5_000}
PROFILED = 40  # applications in the in-process profile


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--pg", default="", help="PostgreSQL URL (its public schema is dropped)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4,
                        help="gthread threads per worker (about (registry wait + CPU) / CPU "
                             "per request; more only fight for the GIL)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent farmers' phones")
    parser.add_argument("--latency-ms", type=int, default=50, help="each registry's latency")
    parser.add_argument("--pyinstrument", action="store_true",
                        help="print a sampled profile of the in-process requests (stderr)")
    return parser.parse_args()


def gthread(app: str, port: int, args: argparse.Namespace, config: str) -> list[str]:
    """The production command line (``core/serving.py``: threaded workers, one request per
    connection, a short queue per worker) with this run's workers; ``config`` is that module
    or a settings file that takes its settings from it."""
    return [sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--config",
            config, "--bind", f"{servers.LOOPBACK}:{port}", app]


def _server(stack: ExitStack, app: str, env: dict[str, str], args: argparse.Namespace,
            config: str = "python:core.serving") -> servers.Server:
    port = servers.free_port()
    env = {**env, serving.THREADS_ENV: str(args.threads)}
    return stack.enter_context(servers.serve(gthread(app, port, args, config), port, env=env))


def _measure_http(url: str, workdir: Path, registry: servers.Server,
                  passes: list[list[world.Submission]], args: argparse.Namespace) -> list[Round]:
    """Both servers up under the same settings; the warm-up (passes[0]), then the rounds.
    The servers are stopped (their whole process groups) however this ends."""
    env = world.server_env(url, workdir, registry.base)
    locks = workdir / "locks"
    locks.mkdir()
    with ExitStack() as stack:
        # The same settings for both; Nongdai's workers also log the SQLite write lock.
        nongdai = _server(stack, "app:create_app()", {**env, LOG_DIR: str(locks)}, args,
                          str(ROOT / "bench" / "decision_gunicorn.py"))
        ceiling = _server(stack, "bench.ceiling_app:create_app()", env, args)
        bases = Bases(ceiling=ceiling.base, nongdai=nongdai.base, registry=registry.base,
                      ceiling_group=ceiling.proc.pid, nongdai_group=nongdai.proc.pid,
                      registry_group=registry.proc.pid, locks=LockLog(locks))
        run_round("warm-up", bases, passes[0], args.clients)
        return [run_round(f"round {n}/{ROUNDS}", bases, passes[n], args.clients)
                for n in range(1, ROUNDS + 1)]


# --- the report ------------------------------------------------------------------------------

def _spread(name: str, values: list[float], digits: int = 1) -> dict[str, float]:
    return {name: round(statistics.median(values), digits),
            f"{name}_min": round(min(values), digits), f"{name}_max": round(max(values), digits)}


def _per(cpu_seconds: float, count: int) -> float:
    return round(cpu_seconds * 1000 / count, 2) if count else math.nan


def _per_round(rounds: list[Round]) -> list[dict[str, Any]]:
    out = []
    for r in rounds:
        auto = r.decision.latencies()
        every = r.decision.latencies(frozenset(r.decision.outcomes))
        out.append({
            "p50_ms": round(percentile(auto, 50), 1), "p99_ms": round(percentile(auto, 99), 1),
            "max_ms": round(auto[-1], 1) if auto else None,
            "all_p99_ms": round(percentile(every, 99), 1),
            "decisions_per_s": round(r.decision.rate, 1),
            "ceiling_per_s": round(r.ceiling.rate, 1),
            "auto_decided": len(auto), "outcomes": dict(sorted(r.decision.outcomes.items())),
            "app_cpu_ms_per_decision": _per(r.decision_cpu.server, r.decision.ok),
            "registry_cpu_ms_per_decision": _per(r.decision_cpu.registry, r.decision.ok),
            "client_cpu_ms_per_decision": _per(r.decision_cpu.client, r.decision.ok),
            "ceiling_cpu_ms_per_request": _per(r.ceiling_cpu.server, r.ceiling.ok),
            "ceiling_client_cpu_ms_per_request": _per(r.ceiling_cpu.client, r.ceiling.ok),
            "statuses": dict(sorted(r.decision.statuses.items())),
            "ceiling_statuses": dict(sorted(r.ceiling.statuses.items())),
            "registry": r.registry, "sqlite_write_lock": r.locks})
    return out


def _flags(rounds: list[Round], per_pass: int) -> list[str]:
    """Rounds whose answers were not all what they should be (figures count only 201s)."""
    found = []
    for n, r in enumerate(rounds, start=1):
        if r.decision.ok != per_pass:
            found.append(f"round {n}: {per_pass - r.decision.ok} of {per_pass} applications "
                         f"not 201 ({dict(r.decision.statuses)})")
        if r.ceiling.ok != per_pass:
            found.append(f"round {n} ceiling: {per_pass - r.ceiling.ok} not 201")
        asked = r.registry["calls"]
        if any(asked.get(name, 0) < r.decision.ok for name in ("land", "insurance")):
            found.append(f"round {n}: fewer registry lookups than decisions ({asked})")
    return found


def _report(rounds: list[Round], engine: dict[str, Any], service: dict[str, Any],
            context: dict[str, Any]) -> dict[str, Any]:
    per_round = _per_round(rounds)
    decided = [r["decisions_per_s"] for r in per_round]
    ceiling = [r["ceiling_per_s"] for r in per_round]
    outcomes: dict[str, int] = {}
    for r in per_round:
        for state, n in r["outcomes"].items():
            outcomes[state] = outcomes.get(state, 0) + n
    p99 = statistics.median(r["p99_ms"] for r in per_round)
    cpu = {name: round(statistics.median(r[name] for r in per_round), 2) for name in (
        "app_cpu_ms_per_decision", "registry_cpu_ms_per_decision", "client_cpu_ms_per_decision",
        "ceiling_cpu_ms_per_request", "ceiling_client_cpu_ms_per_request")}
    spent = sum(cpu[name] for name in ("app_cpu_ms_per_decision",
                                       "registry_cpu_ms_per_decision",
                                       "client_cpu_ms_per_decision"))
    engine_rate = engine.get("engine_decisions_per_s")
    locks = {name: statistics.median(r["sqlite_write_lock"][name] for r in per_round)
             for name in ("lock_wait_ms_p50", "lock_wait_ms_p99", "lock_wait_ms_max",
                          "lock_held_ms_p50", "lock_wait_ms_per_decision",
                          "lock_held_ms_per_decision")
             if all(r["sqlite_write_lock"] for r in per_round)}
    return {
        "bench": "decision",
        **_spread("p50_ms", [r["p50_ms"] for r in per_round]),
        **_spread("p99_ms", [r["p99_ms"] for r in per_round]),
        **_spread("all_p99_ms", [r["all_p99_ms"] for r in per_round]),
        **_spread("decisions_per_s", decided),
        "auto_decided": sum(r["auto_decided"] for r in per_round),
        "auto_decided_states": sorted(AUTO),
        "outcomes": dict(sorted(outcomes.items())),
        **_spread("ceiling_per_s", ceiling),
        "stack_ratio": round(statistics.median(decided) / statistics.median(ceiling), 3),
        "stack_ratio_rounds": [round(d / c, 3) for d, c in zip(decided, ceiling, strict=True)],
        **cpu,
        **{f"sqlite_{name}": value for name, value in locks.items()},
        "cpu_capacity_per_s": round((os.cpu_count() or 1) * 1000 / spent, 1) if spent else None,
        **engine,
        "targets": TARGETS,
        "targets_met": {"p99_ms": p99 <= TARGETS["p99_ms"],
                        "engine_decisions_per_s": (None if engine_rate is None else
                                                   engine_rate >= TARGETS[
                                                       "engine_decisions_per_s"])},
        **service,
        "rounds": per_round,
        **context,
    }


def _engine(seconds: float) -> dict[str, Any]:
    """``bench/engine.py``'s figures (the policy engine alone, in-process)."""
    try:
        from bench.engine import engine_rate  # noqa: PLC0415
    except ImportError as exc:
        return {"engine_decisions_per_s": None, "engine_missing": str(exc)}
    print(f"engine alone: {seconds:.0f} s of measuring", file=sys.stderr, flush=True)
    keep = ("engine_", "zen_")
    return {name: value for name, value in engine_rate(seconds).items()
            if name.startswith(keep) and name not in ("engine_target", "engine_target_met")}


def _print_summary(result: dict[str, Any]) -> None:
    print(f"auto-decided (approved, declined) submit to decision: p50 {result['p50_ms']} ms, "
          f"p99 {result['p99_ms']} ms (target <= {TARGETS['p99_ms']}; rounds "
          f"{result['p99_ms_min']}..{result['p99_ms_max']}); all 201s p99 "
          f"{result['all_p99_ms']} ms; outcomes {result['outcomes']}")
    print(f"decided {result['decisions_per_s']}/s; ceiling (bare Flask view, 1 row + 1 durable "
          f"commit, same gunicorn settings) {result['ceiling_per_s']}/s -> stack_ratio "
          f"{result['stack_ratio']}")
    print(f"CPU ms per decision: app {result['app_cpu_ms_per_decision']}, registry "
          f"{result['registry_cpu_ms_per_decision']}, clients "
          f"{result['client_cpu_ms_per_decision']} (ceiling: app "
          f"{result['ceiling_cpu_ms_per_request']}, clients "
          f"{result['ceiling_client_cpu_ms_per_request']}) -> at most "
          f"{result['cpu_capacity_per_s']} decisions/s on {result['cpus']} cores")
    if "sqlite_lock_wait_ms_p99" in result:
        print(f"SQLite write lock: a write transaction waited p50 "
              f"{result['sqlite_lock_wait_ms_p50']} ms, p99 {result['sqlite_lock_wait_ms_p99']}"
              f" ms for it; held {result['sqlite_lock_held_ms_per_decision']} ms per decision "
              f"(-> at most {1000 / result['sqlite_lock_held_ms_per_decision']:.0f} decisions/s"
              f" however many cores)")
    print(f"engine alone (in-process): {result['engine_decisions_per_s']}/s "
          f"(target >= {TARGETS['engine_decisions_per_s']:,})")
    print(f"in-process profile per decision: {result['service_statements_per_decision']} "
          f"statements, {result['service_transactions_per_decision']} transactions, "
          f"{result['service_durable_commits_per_decision']} durable commits; phase medians "
          f"(ms) {result['service_phase_ms']}")
    print(f"  statements: {result['service_shapes']}")
    for flag in result["flags"]:
        print(f"FLAGGED: {flag}")


def _run(url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    per_pass, warm = (100, 40) if args.quick else (600, 100)
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    with world.registry(args.latency_ms) as registry:
        print(f"seeding {warm + ROUNDS * per_pass + PROFILED} farmers", file=sys.stderr,
              flush=True)
        seeded = world.seed(url, workdir, registry.base, warm + ROUNDS * per_pass + PROFILED)
        submissions = world.applications(registry.base, seeded)
        passes = [submissions[:warm]] + [
            submissions[warm + n * per_pass: warm + (n + 1) * per_pass] for n in range(ROUNDS)]
        rounds = _measure_http(url, workdir, registry, passes, args)
        service = profile(url, workdir, registry.base, submissions[-PROFILED:],
                          sampler=args.pyinstrument)
    engine = _engine(2.4 if args.quick else 12.0)
    context = {"flags": _flags(rounds, per_pass), "requests_per_pass": per_pass,
               "clients": args.clients, "workers": args.workers, "threads": args.threads,
               "worker_class": serving.worker_class, "keepalive_s": serving.keepalive,
               "worker_connections": args.threads + serving.QUEUED_PER_WORKER,
               "registry_latency_ms": args.latency_ms,
               "registry_cache_seconds": 0, "durability": durability(url),
               "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
               "quick": args.quick, "python": sys.version.split()[0],
               "db": "postgresql" if args.pg else "sqlite", "cpus": os.cpu_count()}
    return _report(rounds, engine, service, context)


def main() -> None:
    args = _args()
    workdir = Path(tempfile.mkdtemp(prefix="nongdai-bench-decision-"))
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
