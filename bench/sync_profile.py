"""What one push batch does at the database, counted in-process (see ``bench/sync.py``).

With the servers stopped, one more batch of 250 operations per phone goes through the Flask
test client on the same database (every layer but HTTP and gunicorn, hence ``engine_``):
statements, transactions, durable commits and pool checkouts per batch, counted with engine
events (``bench/sqlcount.py``), the statements by shape, and the wall and CPU time per batch;
then the same batches again (the replay). With ``sampler`` and ``pyinstrument`` importable, a
sampled profile of the first pushes is printed on stderr.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from app import create_app
from bench.sqlcount import SqlCounter, Tally
from bench.sync_load import PUSH
from bench.sync_seed import Batch, settings
from core.db import db


def _per_batch(tallies: list[Tally], wall: list[float], cpu: list[float]) -> dict[str, Any]:
    count = len(tallies)
    shapes: Counter[str] = Counter()
    for tally in tallies:
        shapes.update(tally.shapes)
    return {
        "statements_per_batch": round(sum(t.statements for t in tallies) / count, 1),
        "transactions_per_batch": round(sum(t.transactions for t in tallies) / count, 1),
        "durable_commits_per_batch": round(sum(t.durable_commits for t in tallies) / count, 2),
        "checkouts_per_batch": round(sum(t.checkouts for t in tallies) / count, 1),
        "shapes": {shape: round(n / count, 1) for shape, n in sorted(shapes.items())},
        "ms_per_batch": round(statistics.median(wall), 1),
        "cpu_ms_per_batch": round(statistics.median(cpu), 1),
    }


def _sampler(wanted: bool) -> Any:
    if not wanted:
        return None
    try:
        sampling = importlib.import_module("pyinstrument")
    except ImportError:
        print("pyinstrument is not installed: no sampled profile", file=sys.stderr)
        return None
    return sampling.Profiler(interval=0.0005)


def profile(url: str, instance: Path, pushes: list[list[Batch]],
            sampler: bool = False) -> dict[str, Any]:
    """``engine_*`` figures of the first push and the replay of ``pushes`` (one batch or more
    per phone), in-process."""
    app = create_app(settings(url, instance))
    client = app.test_client()
    with app.app_context():
        counter = SqlCounter(db.engine)
    batches = [b for mine in pushes for b in mine]
    out: dict[str, Any] = {}
    sampling = _sampler(sampler)
    try:
        for phase, expect in (("push", "applied"), ("replay", "duplicate")):
            tallies, wall, cpu = [], [], []
            if sampling is not None and phase == "push":
                sampling.start()
            for batch in batches:
                started, used = time.perf_counter(), time.process_time()
                with counter.measure() as tally:
                    answer = client.post(PUSH, data=batch.body, headers={
                        "Authorization": f"Bearer {batch.phone.token}",
                        "Content-Type": "application/json"})
                wall.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - used) * 1000)
                statuses = Counter(r["status"] for r in (answer.get_json() or {}).get(
                    "results", []))
                if answer.status_code != 200 or statuses[expect] != sum(statuses.values()):
                    out.setdefault("engine_flags", []).append(
                        f"{phase}: {answer.status_code} {dict(statuses)}")
                tallies.append(tally)
            if sampling is not None and phase == "push":
                sampling.stop()
                print(sampling.output_text(unicode=True, color=False, show_all=False),
                      file=sys.stderr)
            figures = _per_batch(tallies, wall, cpu)
            prefix = "engine_" if phase == "push" else "engine_replay_"
            out.update({f"{prefix}{name}": value for name, value in figures.items()})
    finally:
        counter.close()
        with app.app_context():
            db.engine.dispose()
    return out
