"""The credit decision engine alone: decisions per second on prepared fact snapshots.

``engine_`` figures skip every layer but the engine: the facts are built beforehand (as a
decision's snapshot is), then ``lending.policy.engine.decide`` evaluates policy 2026.1 on them
in this process. Beside them, in the same run:

- ``zen_evaluate_per_s``: zen-engine evaluating the same model on the same snapshots, without
  our wrapper (the limit; ``engine_ratio`` = engine / zen);
- ``zen_floor_per_s``: a two-node graph (input to output) on the same snapshots: the price of
  one call into zen before any rule runs;
- ``engine_decisions_traced_per_s``: with zen's trace of every node (``replay(trace=True)``);
- ``engine_decisions_per_s_2threads``: two threads sharing the compiled policy, which shows
  whether ``evaluate`` lets go of the GIL;
- ``engine_decisions_per_cpu_s``: decisions per second of the measuring thread's CPU time,
  what one uncontended core does (on a shared machine the wall-clock rate also counts the
  time others' work took the core away).

``python bench/engine.py [--quick]``; the last line is one JSON object. The lead's
``bench/decision.py`` imports :func:`engine_rate`.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zen

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lending.policy import engine, samples
from lending.policy.services import demo_model

SEED = 20261129
SNAPSHOTS = 500
TARGET = 5_000
VERSION = "2026.1"


def prepared(count: int = SNAPSHOTS) -> list[dict[str, Any]]:
    """``count`` varied, realistic snapshots (a fixed seed: the same ones every run)."""
    rng = random.Random(SEED)
    return [samples.random_facts(rng) for _ in range(count)]


def _rate(work: Callable[[Any], Any], items: list[Any], seconds: float,
          cpu: list[float] | None = None) -> float:
    """Calls of ``work`` per second, cycling over ``items`` for about ``seconds``; when ``cpu``
    is given, the calls per second of this thread's CPU time are appended to it (what one
    uncontended core would do: others' load on the shared machine does not count)."""
    done, start, start_cpu = 0, time.perf_counter(), time.thread_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for item in items[:100]:
            work(item)
        done += min(len(items), 100)
        items = items[100:] + items[:100]
    if cpu is not None:
        cpu.append(done / max(time.thread_time() - start_cpu, 1e-9))
    return done / (time.perf_counter() - start)


def _threaded(work: Callable[[Any], Any], items: list[Any], seconds: float,
              threads: int) -> float:
    rates: list[float] = []
    lock = threading.Lock()

    def run(offset: int) -> None:
        rate = _rate(work, items[offset:] + items[:offset], seconds)
        with lock:
            rates.append(rate)

    pool = [threading.Thread(target=run, args=(n * 37,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(rates)


def _median(passes: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(passes)), "min": round(min(passes)),
            "max": round(max(passes))}


def engine_rate(seconds: float) -> dict[str, Any]:
    """The engine's figures, each the median of three passes of about ``seconds / 12``."""
    model = demo_model(VERSION)
    facts = prepared()
    zen_engine = zen.ZenEngine({"loader": {"type": "static", "content": {
        "policy": model, "floor": _floor_model()}}})

    def decide(item: dict[str, Any]) -> Any:
        return engine.decide(VERSION, model, item)

    def traced(item: dict[str, Any]) -> Any:
        return engine.decide(VERSION, model, item, trace=True)

    def raw(item: dict[str, Any]) -> Any:
        return zen_engine.evaluate("policy", item)

    def floor(item: dict[str, Any]) -> Any:
        return zen_engine.evaluate("floor", item)

    for item in facts[:50]:  # warm-up: compile once, touch every code path
        decide(item)
        traced(item)
    step = seconds / 12
    cpu: list[float] = []
    runs = {
        "engine_decisions_per_s": lambda: _rate(decide, facts, step, cpu),
        "engine_decisions_traced_per_s": lambda: _rate(traced, facts, step),
        "zen_evaluate_per_s": lambda: _rate(raw, facts, step),
        "zen_floor_per_s": lambda: _rate(floor, facts, step),
    }
    passes: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(3):  # interleaved, so that load from others hits every figure alike
        for name, run in runs.items():
            passes[name].append(run())
    two = [_threaded(decide, facts, step, 2) for _ in range(3)]
    figures = {name: _median(values) for name, values in passes.items()}
    one = figures["engine_decisions_per_s"]["median"]
    outcomes: dict[str, int] = {}
    for item in facts:
        result = decide(item).outcome
        outcomes[result] = outcomes.get(result, 0) + 1
    return {
        "engine_decisions_per_s": one,
        "engine_decisions_per_s_min": figures["engine_decisions_per_s"]["min"],
        "engine_decisions_per_s_max": figures["engine_decisions_per_s"]["max"],
        "engine_decisions_per_s_1thread": one,
        "engine_decisions_per_cpu_s": round(statistics.median(cpu)),
        "engine_decisions_per_s_2threads": round(statistics.median(two)),
        "engine_decisions_traced_per_s": figures["engine_decisions_traced_per_s"]["median"],
        "zen_evaluate_per_s": figures["zen_evaluate_per_s"]["median"],
        "zen_floor_per_s": figures["zen_floor_per_s"]["median"],
        "engine_ratio": round(one / figures["zen_evaluate_per_s"]["median"], 3),
        "engine_target": TARGET,
        "engine_target_met": one >= TARGET,
        "engine_target_met_cpu": statistics.median(cpu) >= TARGET,
        "engine_outcomes": dict(sorted(outcomes.items())),
        "snapshots": len(facts),
        "policy_version": VERSION,
    }


def _floor_model() -> dict[str, Any]:
    def node(node_id: str, kind: str) -> dict[str, Any]:
        return {"id": node_id, "type": kind, "name": node_id, "position": {"x": 0, "y": 0}}

    return {"contentType": "application/vnd.gorules.decision",
            "nodes": [node("in", "inputNode"), node("out", "outputNode")],
            "edges": [{"id": "e", "type": "edge", "sourceId": "in", "targetId": "out"}]}


def main() -> None:
    quick = "--quick" in sys.argv
    seconds = 1.2 if quick else 24.0
    print(f"engine: policy {VERSION}, {SNAPSHOTS} prepared snapshots, "
          f"{seconds:.0f} s of measuring", file=sys.stderr)
    figures = engine_rate(seconds)
    for name in ("engine_decisions_per_s", "engine_decisions_per_cpu_s",
                 "engine_decisions_per_s_2threads",
                 "engine_decisions_traced_per_s", "zen_evaluate_per_s", "zen_floor_per_s"):
        print(f"  {name:<34} {figures[name]:>8,}")
    met = "met" if figures["engine_target_met"] else "MISSED"
    met_cpu = "met" if figures["engine_target_met_cpu"] else "MISSED"
    print(f"  target {TARGET:,}/s: {met} (wall clock), {met_cpu} (per CPU second); "
          f"outcomes {figures['engine_outcomes']}")
    print(json.dumps({**figures, "python": platform.python_version(), "db": None,
                      "cpus": os.cpu_count(), "quick": quick}))


if __name__ == "__main__":
    main()
