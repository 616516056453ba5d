"""Benchmark of offline sync (issue #12): 20 phones pushing field checks, a first full pull.

Measured in one run over HTTP (gunicorn, the production settings of ``bench/decision.py``:
2 workers, gthread, 4 threads each), each pass 3 times after a warm-up, the median reported
(``_min``/``_max`` beside):

- ``ops_per_s``: 20 coordinators' phones, one thread and one ``requests.Session`` each, push
  20,000 ``parcel_visit`` operations (1,000 each) in batches of 250, all at once; every answer
  must acknowledge its whole batch (``acked_seq``), durably (SQLite in WAL with
  ``synchronous=FULL``, the app's own settings, read back into ``durability``);
- ``replay_ratio``: the same batches sent again (every operation answered ``duplicate``):
  replay time / first push time (target <= 0.2);
- ``raw_rows_per_s``: the limit, in operations per second: the rows a push wrote for each
  operation (read from the database: op record, visit, change-log entry, audit event), written
  again with SQLAlchemy Core executemany in batches of 250, one durable commit per batch, on the
  same database file with the same settings; ``ratio = ops_per_s / raw_rows_per_s``
  (target >= 0.35);
- ``ceiling_ops_per_s``: a bare Flask view under the same gunicorn settings that takes the same
  push bodies and writes the same rows, one commit per batch; ``stack_ratio``;
  ``ceiling_per_s``: ``bench/ceiling_app.py``'s one row per request, same clients;
- ``initial_pull_kb``, ``initial_pull_ms``: one coordinator's first full pull of a village of
  2,000 farmers and 5,000 parcels, all pages, ``Accept-Encoding: gzip``, the bytes as sent
  (targets <= 400 KB and <= 1,500 ms);
- ``engine_*``: statements and commits per push batch, counted through the Flask test client
  (no HTTP), and with ``--pyinstrument`` a sampled profile of those pushes on stderr.

The world is seeded by ``bench/sync_seed.py``; the load is driven by ``bench/sync_load.py``;
the limit is ``bench/sync_limit.py``, the ceiling ``bench/sync_ceiling.py``. See
bench/README.md for every key.

    python bench/sync.py [--quick] [--workers 2] [--threads 4] [--pull-limit N] [--pyinstrument]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import sync_ceiling, sync_limit, sync_load  # noqa: E402
from bench import sync_seed as world  # noqa: E402
from bench.decision_load import group_cpu  # noqa: E402
from bench.farmers_seed import durability  # noqa: E402
from bench.sync_profile import profile  # noqa: E402
from core.db import utcnow  # noqa: E402
from tests import servers  # noqa: E402

ROUNDS = 3
T = TypeVar("T")
TARGETS: dict[str, float] = {"ratio": 0.35, "replay_ratio": 0.2, "initial_pull_kb": 400,
                             "initial_pull_ms": 1500}
CEILING_REQUESTS = 2_000  # one-row ceiling requests per round (20 clients)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations (a smoke run)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker")
    parser.add_argument("--pull-limit", type=int, default=None,
                        help="changes per pull page (default: the server's default)")
    parser.add_argument("--pyinstrument", action="store_true",
                        help="print a sampled profile of the in-process pushes (stderr)")
    return parser.parse_args()


def _gthread(app: str, port: int, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--workers", str(args.workers),
            "--threads", str(args.threads), "--worker-class", "gthread",
            "--bind", f"{servers.LOOPBACK}:{port}", app]


def _server(stack: ExitStack, app: str, env: dict[str, str],
            args: argparse.Namespace) -> servers.Server:
    port = servers.free_port()
    return stack.enter_context(servers.serve(_gthread(app, port, args), port, env=env))


def _spread(name: str, values: list[float], digits: int = 1) -> dict[str, float]:
    return {name: round(statistics.median(values), digits),
            f"{name}_min": round(min(values), digits), f"{name}_max": round(max(values), digits)}


def _one_row_ceiling(base: str, count: int, clients: int) -> float:
    """``bench/ceiling_app.py``'s ``POST /rows`` from ``clients`` threads: requests/s."""
    from bench.http_load import Batch, Clients, Progress, push  # noqa: PLC0415

    bodies = [{"n": n, "note": "ceiling"} for n in range(count)]
    clients_ = Clients(token="unused", threads=clients)  # noqa: S106 - the bare view reads none
    result = push(f"{base}/rows", Batch(bodies, [str(n) for n in range(count)]), clients_,
                  Progress("ceiling /rows", count))
    return result.rate


def _watch(up: dict[str, servers.Server], work: Callable[[], T]) -> T:
    """Run ``work``; if it fails, print what the servers said first (stderr)."""
    try:
        return work()
    except Exception:
        for name, server in up.items():
            print(f"--- {name} server output (tail) ---\n{server.output()[-3000:]}",
                  file=sys.stderr)
        raise


class Measure:
    """The passes of one run, against the servers it was given."""

    def __init__(self, url: str, nongdai: servers.Server, args: argparse.Namespace) -> None:
        self.url, self.nongdai, self.args = url, nongdai, args
        self.flags: list[str] = []

    def push(self, label: str, pushes: list[list[world.Batch]], expect: str,
             ) -> tuple[sync_load.PushPass, dict[str, int], float]:
        """A push pass, with the rows it wrote (counted before and after) and the server's
        CPU seconds."""
        before = sync_limit.count_rows(self.url)
        cpu = group_cpu(self.nongdai.proc.pid)
        result = sync_load.push(self.nongdai.base, pushes, label)
        cpu = group_cpu(self.nongdai.proc.pid) - cpu
        after = sync_limit.count_rows(self.url)
        grew = {name: after[name] - before.get(name, 0) for name in after
                if after[name] != before.get(name, 0)}
        if result.results.get(expect, 0) != result.operations or result.unacked:
            self.flags.append(f"{label}: expected {result.operations} {expect}, got "
                              f"{dict(result.results)} (HTTP {dict(result.http)}; "
                              f"{result.unacked} batches not fully acked; reasons "
                              f"{dict(result.reasons)}; {result.sample_error})")
        if result.retries:
            self.flags.append(f"{label}: {result.retries} batches sent again after the server "
                              "closed their connection")
        print(f"{label}: {result.operations} ops in {result.seconds:.2f} s = "
              f"{result.rate:,.0f} ops/s; {dict(result.results)}; rows written {grew}; "
              f"server CPU {cpu * 1000 / max(result.operations, 1):.3f} ms/op", flush=True)
        return result, grew, cpu

    def pull(self, label: str, phone: world.Phone) -> sync_load.PullPass:
        result = sync_load.pull(self.nongdai.base, phone, self.args.pull_limit)
        print(f"{label}: {result.pages} pages, {result.wire_bytes / 1024:,.1f} KB as sent "
              f"({result.json_bytes / 1024:,.1f} KB of JSON, {result.gzip_pages} gzip), "
              f"{result.seconds * 1000:,.0f} ms; {dict(result.kinds)}, {result.parcels} "
              f"parcels", flush=True)
        return result


def _run(url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    per_phone, warm = (250, 500) if args.quick else (1000, 500)
    load_before = os.getloadavg()[0]
    print(f"seeding: {world.DEVICES} phones, {world.FIELD_FARMERS} farmers to visit; the pull "
          f"village of {world.PULL_FARMERS} farmers and {world.PULL_PARCELS} parcels",
          file=sys.stderr, flush=True)
    seeded = world.seed(url, workdir)
    total = warm + ROUNDS * per_phone + world.BATCH  # the last batch: the in-process profile
    start = utcnow() - total * world.RECORDED_EVERY - timedelta(hours=1)
    ops = world.operations(seeded, total, start)

    def pushes(first: int, count: int) -> list[list[world.Batch]]:
        return world.batches(seeded, [mine[first:first + count] for mine in ops], first + 1)

    env = world.server_env(url, workdir)
    rounds: list[dict[str, Any]] = []
    with ExitStack() as stack:
        nongdai = _server(stack, "app:create_app()", env, args)
        measure = Measure(url, nongdai, args)
        # Two warm-ups: the first also makes what a device's first push makes once (its sync
        # state); the second is a steady push, and what it wrote is what a push writes.
        half = warm // 2
        warm_up, _grew, _cpu = measure.push("warm-up push 1", pushes(0, half), "applied")
        steady, grew, _cpu = measure.push("warm-up push 2", pushes(half, half), "applied")
        measure.push("warm-up replay", pushes(0, warm), "duplicate")
        measure.pull("warm-up pull", seeded.puller)
        what = sync_limit.Written(
            per_op={name: rows / steady.operations for name, rows in grew.items() if rows > 0},
            ops=steady.operations)
        templates = sync_limit.templates(url, what)
        print(f"a push operation writes {what.rows_per_op:g} rows: {what.per_op}", flush=True)
        saved = workdir / "templates.pickle"
        sync_ceiling.save(saved, templates, what)
        ceiling = _server(stack, "bench.sync_ceiling:create_app()",
                          {**env, sync_ceiling.TEMPLATES: str(saved)}, args)
        servers_up = {"nongdai": nongdai, "ceiling": ceiling}
        _watch(servers_up, lambda: sync_load.push(ceiling.base, pushes(0, warm),
                                                   "warm-up ceiling"))
        for n in range(1, ROUNDS + 1):
            first = warm + (n - 1) * per_phone
            batches = pushes(first, per_phone)
            label = f"round {n}/{ROUNDS}"
            ceiling_cpu = group_cpu(ceiling.proc.pid)
            ceil = _watch(servers_up, lambda b=batches, lb=label:  # type: ignore[misc]
                          sync_load.push(ceiling.base, b, f"{lb} ceiling"))
            ceiling_cpu = group_cpu(ceiling.proc.pid) - ceiling_cpu
            print(f"{label} ceiling: {ceil.operations / ceil.seconds:,.0f} ops/s (bare view, "
                  f"same rows, one commit per batch)", flush=True)
            first_push, grew, cpu = measure.push(f"{label} push", batches, "applied")
            replay, replay_grew, replay_cpu = measure.push(f"{label} replay", batches,
                                                           "duplicate")
            limit = sync_limit.limit(url, templates, what, operations=first_push.operations,
                                     batch=world.BATCH, start=-(n * 100_000_000))
            print(f"{label} limit: {limit.ops_rate:,.0f} ops/s ({limit.rows_rate:,.0f} rows/s, "
                  f"Core executemany, {limit.batches} commits)", flush=True)
            one_row = _one_row_ceiling(ceiling.base, CEILING_REQUESTS // (4 if args.quick
                                                                          else 1),
                                       world.DEVICES)
            pulled = measure.pull(f"{label} pull", seeded.puller)
            rounds.append(_round(first_push, replay, limit, ceiling=ceil, one_row=one_row,
                                 pulled=pulled, grew=grew, replay_grew=replay_grew, cpu=cpu,
                                 replay_cpu=replay_cpu, ceiling_cpu=ceiling_cpu))
    print("in-process profile of push batches (Flask test client)", file=sys.stderr, flush=True)
    last = warm + ROUNDS * per_phone
    engine = profile(url, workdir, pushes(last, world.BATCH), sampler=args.pyinstrument)
    context = {"flags": measure.flags, "devices": world.DEVICES, "ops_per_device": per_phone,
               "batch": world.BATCH, "workers": args.workers, "threads": args.threads,
               "worker_class": "gthread", "pull_limit": args.pull_limit,
               "written_per_op": what.per_op, "rows_per_op": what.rows_per_op,
               "durability": durability(url),
               "warm_up_ops": warm_up.operations + steady.operations,
               "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
               "quick": args.quick, "python": sys.version.split()[0], "db": "sqlite",
               "cpus": os.cpu_count()}
    return _report(rounds, engine, context)


def _round(first: sync_load.PushPass, replay: sync_load.PushPass, limit: sync_limit.LimitPass, *,
           ceiling: sync_load.PushPass, one_row: float, pulled: sync_load.PullPass,
           grew: dict[str, int], replay_grew: dict[str, int], cpu: float, replay_cpu: float,
           ceiling_cpu: float) -> dict[str, Any]:
    ms = sorted(first.batch_ms)
    return {
        "ops_per_s": round(first.rate, 1), "replay_ops_per_s": round(replay.rate, 1),
        "replay_ratio": round(replay.seconds / first.seconds, 3),
        "raw_rows_per_s": round(limit.ops_rate, 1),
        "raw_table_rows_per_s": round(limit.rows_rate, 1),
        "ratio": round(first.rate / limit.ops_rate, 3),
        "ceiling_ops_per_s": round(ceiling.rate, 1),
        "stack_ratio": round(first.rate / ceiling.rate, 3) if ceiling.rate else None,
        "ceiling_per_s": round(one_row, 1),
        "push_batch_ms_p50": round(ms[len(ms) // 2], 1),
        "push_batch_ms_max": round(ms[-1], 1),
        "app_cpu_ms_per_op": round(cpu * 1000 / first.operations, 3),
        "replay_app_cpu_ms_per_op": round(replay_cpu * 1000 / replay.operations, 3),
        "raw_cpu_ms_per_op": round(limit.cpu_seconds * 1000 / limit.operations, 3),
        "ceiling_cpu_ms_per_op": round(ceiling_cpu * 1000 / ceiling.operations, 3),
        "cpu_ratio": round(limit.cpu_seconds / limit.operations / (cpu / first.operations), 3)
        if cpu else None,
        "initial_pull_kb": round(pulled.wire_bytes / 1024, 1),
        "initial_pull_json_kb": round(pulled.json_bytes / 1024, 1),
        "initial_pull_ms": round(pulled.seconds * 1000, 1),
        "initial_pull_pages": pulled.pages, "initial_pull_gzip_pages": pulled.gzip_pages,
        "initial_pull_kinds": dict(pulled.kinds), "initial_pull_parcels": pulled.parcels,
        "push_results": dict(first.results), "replay_results": dict(replay.results),
        "push_reasons": dict(first.reasons), "push_result_flags": dict(first.result_flags),
        "push_rows_written": grew, "replay_rows_written": replay_grew,
        "push_http": dict(first.http), "replay_http": dict(replay.http),
    }


def _report(rounds: list[dict[str, Any]], engine: dict[str, Any],
            context: dict[str, Any]) -> dict[str, Any]:
    def values(name: str) -> list[float]:
        return [r[name] for r in rounds]

    figures: dict[str, Any] = {
        "bench": "sync",
        **_spread("ops_per_s", values("ops_per_s")),
        **_spread("raw_rows_per_s", values("raw_rows_per_s")),
        **_spread("ratio", values("ratio"), 3),
        **_spread("replay_ratio", values("replay_ratio"), 3),
        **_spread("initial_pull_kb", values("initial_pull_kb")),
        **_spread("initial_pull_ms", values("initial_pull_ms")),
        **_spread("replay_ops_per_s", values("replay_ops_per_s")),
        **_spread("raw_table_rows_per_s", values("raw_table_rows_per_s")),
        **_spread("ceiling_ops_per_s", values("ceiling_ops_per_s")),
        **_spread("ceiling_per_s", values("ceiling_per_s")),
        **_spread("app_cpu_ms_per_op", values("app_cpu_ms_per_op"), 3),
        **_spread("replay_app_cpu_ms_per_op", values("replay_app_cpu_ms_per_op"), 3),
        **_spread("raw_cpu_ms_per_op", values("raw_cpu_ms_per_op"), 3),
        **_spread("ceiling_cpu_ms_per_op", values("ceiling_cpu_ms_per_op"), 3),
    }
    figures["cpu_ratio"] = round(figures["raw_cpu_ms_per_op"] / figures["app_cpu_ms_per_op"], 3)
    figures["stack_ratio"] = round(figures["ops_per_s"] / figures["ceiling_ops_per_s"], 3)
    pull = rounds[-1]
    figures.update({
        "initial_pull_json_kb": pull["initial_pull_json_kb"],
        "initial_pull_pages": pull["initial_pull_pages"],
        "initial_pull_kinds": pull["initial_pull_kinds"],
        "initial_pull_parcels": pull["initial_pull_parcels"],
        "targets": TARGETS,
        "targets_met": {name: (figures[name] >= bound if name == "ratio" else
                               figures[name] <= bound) for name, bound in TARGETS.items()},
    })
    return {**figures, **engine, "rounds": rounds, **context}


def _summary(result: dict[str, Any]) -> None:
    met = result["targets_met"]
    print(f"push: {result['ops_per_s']:,} ops/s (rounds {result['ops_per_s_min']:,}.."
          f"{result['ops_per_s_max']:,}); limit (Core executemany, same rows, same commits) "
          f"{result['raw_rows_per_s']:,} ops/s -> ratio {result['ratio']} (target >= "
          f"{TARGETS['ratio']}: {'met' if met['ratio'] else 'MISSED'})")
    print(f"replay: {result['replay_ops_per_s']:,} ops/s -> replay_ratio "
          f"{result['replay_ratio']} (target <= {TARGETS['replay_ratio']}: "
          f"{'met' if met['replay_ratio'] else 'MISSED'})")
    print(f"ceiling: bare view writing the same rows {result['ceiling_ops_per_s']:,} ops/s -> "
          f"stack_ratio {result['stack_ratio']}; one row per request "
          f"{result['ceiling_per_s']:,}/s")
    print(f"first pull: {result['initial_pull_kb']} KB as sent (target <= "
          f"{TARGETS['initial_pull_kb']}: {'met' if met['initial_pull_kb'] else 'MISSED'}), "
          f"{result['initial_pull_ms']} ms (target <= {TARGETS['initial_pull_ms']}: "
          f"{'met' if met['initial_pull_ms'] else 'MISSED'}), {result['initial_pull_pages']} "
          f"pages, {result['initial_pull_kinds']}")
    print(f"CPU ms per op: push (gunicorn) {result['app_cpu_ms_per_op']}, replay "
          f"{result['replay_app_cpu_ms_per_op']}, ceiling (gunicorn) "
          f"{result['ceiling_cpu_ms_per_op']}, limit (in-process) {result['raw_cpu_ms_per_op']}"
          f" -> cpu_ratio {result['cpu_ratio']}; load {result['load_1m']}")
    print(f"durability: {result['durability']}")
    if "engine_statements_per_batch" in result:
        print(f"per push batch of {world.BATCH} (in-process): "
              f"{result['engine_statements_per_batch']} statements, "
              f"{result['engine_durable_commits_per_batch']} durable commits; "
              f"{result['engine_shapes']}")
    for flag in result["flags"]:
        print(f"FLAGGED: {flag}")


def main() -> None:
    args = _args()
    workdir = Path(tempfile.mkdtemp(prefix="nongdai-bench-sync-"))
    url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    started = time.monotonic()
    try:
        result = _run(url, workdir, args)
        result["seconds"] = round(time.monotonic() - started, 1)
        _summary(result)
        print(json.dumps(result, ensure_ascii=False))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
