"""Benchmark: payment channels' signed repayment notifications over HTTP (gunicorn), against
the stack ceiling.

Seeds 2,000 active loans (seeded directly: a Loan row per approved application, its
disbursement posted straight through ``lending.ledger.posting.post`` and a bullet installment,
not the four-eyes disbursement flow, which is not what is measured), then sends 10,000 signed
``POST /api/v1/payments/notify`` from 20 client threads (each its own ``requests.Session``, a
channel's connection) to Nongdai under gunicorn: each booked in one transaction with its
accrual to the business date, its allocation, its journal entries, the installment and the
audit event. The 10,000 go in three measured rounds (plus a warm-up), each interleaved slice
by slice with the same number of requests to the stack ceiling (``bench/ceiling_app.py``:
one row, one durable commit), under the same gunicorn settings and clients.

- ``repayments_per_s``: notifications answered 200 per second (median of 3; ``_min``/``_max``)
- ``p99_ms``, ``p50_ms``: from sending a notification to its answer, over the rounds
- ``ceiling_per_s``, ``stack_ratio`` = ``repayments_per_s / ceiling_per_s`` (target >= 0.35),
  ``p99_ms`` target <= 200
- ``engine_statements_per_repayment`` (and transactions, durable commits): counted with
  SQLAlchemy engine events over 40 notifications through the Flask test client (no HTTP).
- ``limit_insert_per_s``: Core inserts of the rows one notification writes (journal
  transaction, its entries as one executemany, repayment, audit event), one transaction per
  notification, in-process, after the rounds (no HTTP, no application).

    python bench/repayments.py [--quick] [--pg postgresql+psycopg://postgres@127.0.0.1/NAME]
                               [--workers 2] [--clients 20]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
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

from bench.farmers_seed import reset_pg, server_env, settings  # noqa: E402
from bench.http_load import Progress  # noqa: E402
from bench.sqlcount import SqlCounter  # noqa: E402
from tests import servers  # noqa: E402

SEED = 20261130
TODAY = "2027-03-01"
CHANNEL, SECRET = "bench-pay", "bench-channel-secret"
ROUNDS, SLICES = 3, 5
TARGETS = {"stack_ratio": 0.35, "p99_ms": 200}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer loans and notifications")
    parser.add_argument("--pg", default="", help="PostgreSQL URL (its public schema is dropped)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=20, help="concurrent channel clients")
    return parser.parse_args()


def _config() -> dict[str, str]:
    return {"NONGDAI_BUSINESS_DATE": TODAY,
            "NONGDAI_PAYMENT_CHANNEL_SECRETS": json.dumps({CHANNEL: SECRET})}


# --- seeding ---------------------------------------------------------------------------------

def seed(url: str, instance: Path, loans: int) -> list[str]:
    """Migrate; a county with the demo policy and products; ``loans`` active loans (direct
    seeding, see the module docstring); ANALYZE on PostgreSQL. Returns the loans' ids."""
    from flask_migrate import upgrade  # noqa: PLC0415

    from app import create_app  # noqa: PLC0415
    from bench import ceiling_app  # noqa: PLC0415
    from core.db import db  # noqa: PLC0415
    from tests import factories as f  # noqa: PLC0415
    from tests.servicing import world as w  # noqa: PLC0415
    from tests.servicing.active import active_loan  # noqa: PLC0415

    ceiling_app.prepare(url)
    app = create_app({**settings(url, instance), **_config()})
    ids = []
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        world = w.build(db.session)
        progress = Progress("seeding loans", loans)
        for n in range(loans):
            born = date(1960, 1, 1) + timedelta(days=n // 500)  # ID numbers: 999 a day
            who = f.farmer(db.session, world.village, id_no=f.id_number(born))
            loan = active_loan(db.session, world, principal=2_000_000 + 1_000 * (n % 50),
                               who=who)
            ids.append(str(loan.public_id))
            progress.step()
            if n % 500 == 499:
                db.session.commit()
        db.session.commit()
        progress.close()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
        db.engine.dispose()
    return ids


def bodies(loan_ids: list[str], count: int, rng: random.Random, prefix: str) -> list[bytes]:
    """``count`` notifications spread over the loans (small amounts: no loan settles)."""
    out = []
    for n in range(count):
        out.append(json.dumps({
            "channel": CHANNEL, "reference": f"{prefix}-{n}", "loan_id": rng.choice(loan_ids),
            "amount_fen": rng.randint(1_000, 30_000),
            "paid_at": "2027-03-01T09:30:00+08:00"}).encode())
    return out


# --- the HTTP load -----------------------------------------------------------------------------

@dataclass
class Pass:
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    ms: list[float] = field(default_factory=list)

    def add(self, other: Pass) -> None:
        self.seconds += other.seconds
        self.statuses.update(other.statuses)
        self.ms.extend(other.ms)

    def rate(self, ok: int) -> float:
        return self.statuses[ok] / self.seconds if self.seconds else 0.0


def _sign(body: bytes) -> str:
    return hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def push(url: str, batch: list[bytes], clients: int, progress: Progress, *,
         signed: bool) -> Pass:
    local = threading.local()

    def send(body: bytes) -> tuple[int, float]:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["X-Nongdai-Signature"] = _sign(body)
        started = time.perf_counter()
        answer = local.http.post(url, data=body, headers=headers, timeout=60)
        return answer.status_code, (time.perf_counter() - started) * 1000

    result = Pass()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in as_completed([pool.submit(send, body) for body in batch]):
            status, ms = future.result()
            result.statuses[status] += 1
            result.ms.append(ms)
            progress.step()
    result.seconds = time.perf_counter() - started
    return result


def run_round(label: str, bases: tuple[str, str], batch: list[bytes],
              clients: int) -> tuple[Pass, Pass]:
    ceiling_base, nongdai_base = bases
    ceiling, nongdai = Pass(), Pass()
    progress = Progress(label, 2 * len(batch))
    size = -(-len(batch) // SLICES)
    for at in range(0, len(batch), size):
        part = batch[at:at + size]
        ceiling.add(push(f"{ceiling_base}/rows", part, clients, progress, signed=False))
        nongdai.add(push(f"{nongdai_base}/api/v1/payments/notify", part, clients, progress,
                         signed=True))
    progress.close()
    print(f"{label}: ceiling {ceiling.rate(201):7.1f}/s, repayments {nongdai.rate(200):7.1f}/s,"
          f" p99 {percentile(nongdai.ms, 99):6.1f} ms", flush=True)
    return ceiling, nongdai


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def measure_http(url: str, instance: Path, loan_ids: list[str], total: int,
                 args: argparse.Namespace) -> list[tuple[Pass, Pass]]:
    env = {**server_env(url, instance), **_config()}
    rng = random.Random(SEED)
    with ExitStack() as stack:
        nongdai = stack.enter_context(servers.gunicorn("app:create_app()", env=env,
                                                       workers=args.workers))
        ceiling = stack.enter_context(servers.gunicorn("bench.ceiling_app:create_app()",
                                                       env=env, workers=args.workers))
        bases = (ceiling.base, nongdai.base)
        run_round("warm-up", bases, bodies(loan_ids, 200, rng, "warm"), args.clients)
        sizes = [total // ROUNDS + (1 if n < total % ROUNDS else 0) for n in range(ROUNDS)]
        return [run_round(f"round {n}/{ROUNDS}", bases,
                          bodies(loan_ids, size, rng, f"r{n}"), args.clients)
                for n, size in enumerate(sizes, start=1)]


# --- the in-process statement count ----------------------------------------------------------

def engine_profile(url: str, instance: Path, loan_ids: list[str]) -> dict[str, Any]:
    """Statements per notification through the Flask test client (no HTTP: ``engine_``)."""
    from app import create_app  # noqa: PLC0415
    from core.db import db  # noqa: PLC0415

    app = create_app({**settings(url, instance), **_config()})
    client = app.test_client()
    batch = bodies(loan_ids, 40, random.Random(SEED + 1), "profile")
    with app.app_context():
        engine = db.engine
    counter = SqlCounter(engine)
    try:
        with counter.measure() as tally:
            for body in batch:
                client.post("/api/v1/payments/notify", data=body, headers={
                    "Content-Type": "application/json", "X-Nongdai-Signature": _sign(body)})
    finally:
        counter.close()
        engine.dispose()
    n = len(batch)
    return {"engine_statements_per_repayment": round(tally.statements / n, 2),
            "engine_transactions_per_repayment": round(tally.transactions / n, 2),
            "engine_durable_commits_per_repayment": round(tally.durable_commits / n, 2),
            "engine_repayment_shapes": dict(tally.shapes.most_common())}


# --- the write limit ---------------------------------------------------------------------------

def limit(url: str, instance: Path, count: int) -> float:
    """Core inserts of the rows one notification writes (its journal transaction, 4 entries,
    the repayment, the audit event), one transaction per notification, in-process: what the
    database and the driver allow with no application around them."""
    from app import create_app  # noqa: PLC0415
    from core.audit import AuditEvent  # noqa: PLC0415
    from core.db import db, table, utcnow, uuid7  # noqa: PLC0415
    from lending.ledger.models import JournalEntry, JournalTransaction  # noqa: PLC0415
    from lending.servicing.models import Repayment  # noqa: PLC0415

    journals, entries = table(JournalTransaction), table(JournalEntry)
    repayments, events = table(Repayment), table(AuditEvent)
    app = create_app({**settings(url, instance), **_config()})
    with app.app_context():
        engine = db.engine
        with engine.connect() as conn:
            loan_id = conn.scalar(sa.text("SELECT min(id) FROM loans"))
        today = date.fromisoformat(TODAY)
        started = time.perf_counter()
        for n in range(count):
            reference = f"limit-{n}"
            with engine.begin() as conn:
                journal_id = conn.execute(sa.insert(journals).returning(journals.c.id), {
                    "public_id": uuid7(), "created_at": utcnow(), "kind": "repayment",
                    "reference": f"{CHANNEL}:{reference}", "business_date": today,
                    "loan_id": loan_id, "actor": "system", "reverses_id": None,
                    "memo": {"channel": CHANNEL, "reference": reference}}).scalar_one()
                conn.execute(sa.insert(entries), [
                    {"journal_id": journal_id, "account": account, "loan_id": owner,
                     "amount_fen": amount}
                    for account, owner, amount in (("repayment_clearing", None, 10_000),
                                                   ("penalty_receivable", loan_id, -1_000),
                                                   ("interest_receivable", loan_id, -4_000),
                                                   ("loan_principal", loan_id, -5_000))])
                public_id = uuid7()
                conn.execute(sa.insert(repayments), {
                    "public_id": public_id, "created_at": utcnow(), "loan_id": loan_id,
                    "channel": CHANNEL, "reference": reference, "fingerprint": "0" * 64,
                    "amount_fen": 10_000, "received_at": utcnow(), "business_date": today,
                    "penalty_fen": 1_000, "interest_fen": 4_000, "principal_fen": 5_000,
                    "overpaid_fen": 0, "recorded_by_staff_id": None, "journal_id": journal_id})
                conn.execute(sa.insert(events), {
                    "occurred_at": utcnow(), "actor": "system", "action": "repayment.book",
                    "object_type": "loan_repayments", "object_id": str(public_id),
                    "request_id": None, "summary": {"amount_fen": 10_000}})
        elapsed = time.perf_counter() - started
        engine.dispose()
    return count / elapsed


# --- the report ------------------------------------------------------------------------------

def _spread(name: str, values: list[float], digits: int = 1) -> dict[str, float]:
    return {name: round(statistics.median(values), digits),
            f"{name}_min": round(min(values), digits), f"{name}_max": round(max(values), digits)}


def report(rounds: list[tuple[Pass, Pass]], context: dict[str, Any]) -> dict[str, Any]:
    ceilings = [c.rate(201) for c, _ in rounds]
    rates = [n.rate(200) for _, n in rounds]
    every_ms = [ms for _, n in rounds for ms in n.ms]
    stack_ratio = statistics.median(rates) / statistics.median(ceilings)
    p99 = percentile(every_ms, 99)
    return {
        "bench": "repayments",
        **_spread("repayments_per_s", rates),
        **_spread("ceiling_per_s", ceilings),
        "p50_ms": round(percentile(every_ms, 50), 1),
        "p99_ms_rounds": [round(percentile(n.ms, 99), 1) for _, n in rounds],
        "statuses": [dict(n.statuses) for _, n in rounds],
        "targets": TARGETS,
        "targets_met": {"stack_ratio": stack_ratio >= TARGETS["stack_ratio"],
                        "p99_ms": p99 <= TARGETS["p99_ms"]},
        **context,
        "stack_ratio_rounds": [round(r / c, 3) for r, c in zip(rates, ceilings, strict=True)],
        "p99_ms": round(p99, 1),
        "stack_ratio": round(stack_ratio, 3),
    }


def main() -> None:
    args = _args()
    loans, total = (300, 1_500) if args.quick else (2_000, 10_000)
    workdir = Path(tempfile.mkdtemp(prefix="nongdai-bench-repay-"))
    url = args.pg or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if args.pg:
        reset_pg(args.pg)
    try:
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        loan_ids = seed(url, workdir, loans)
        print(f"seeded {loans} active loans directly in {time.perf_counter() - started:.1f} s")
        rounds = measure_http(url, workdir, loan_ids, total, args)
        engine = engine_profile(url, workdir, loan_ids)
        limit_rate = limit(url, workdir, 500 if args.quick else 2_000)
        flags = [f"round {n}: {dict(p.statuses)}" for n, (_, p) in enumerate(rounds, 1)
                 if set(p.statuses) != {200}]
        result = report(rounds, {
            "loans": loans, "notifications": total, "clients": args.clients,
            "workers": args.workers, "seeding": "direct (Loan rows + ledger.post)",
            **engine, "limit_insert_per_s": round(limit_rate, 1), "flags": flags,
            "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "python": sys.version.split()[0], "db": "postgresql" if args.pg else "sqlite",
            "cpus": os.cpu_count()})
        print(f"repayments {result['repayments_per_s']}/s, ceiling {result['ceiling_per_s']}/s "
              f"-> stack_ratio {result['stack_ratio']} (target >= {TARGETS['stack_ratio']}); "
              f"p99 {result['p99_ms']} ms (target <= {TARGETS['p99_ms']}); "
              f"{result['engine_statements_per_repayment']} statements per repayment")
        print(json.dumps(result, ensure_ascii=False))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
