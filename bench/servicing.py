"""The daily servicing job at scale: ``python bench/servicing.py --loans N`` / ``--scaling``.

Seeds N active loans in a fresh SQLite database (migrated by the app's own migrations): a
farmer per ten loans, an application per loan, the schedule, and the disbursement's ledger
entries (one journal per 10,000 loans: a debit per loan, one credit), so ``ledger check``
holds. The mix, from a fixed seed: ~77 % current (bullet at harvest or monthly instalments),
~8 % overdue by 1-120 days, ~2 % overdue under relief (paused), ~5 % due in 1-3 days, ~3 %
with missed accrual days to catch up, ~5 % on 30/360 or ACT/365; then runs the job once for
the day before D (seed phase, not measured), so that D is a day in the steady state:
yesterday's reminders and visits exist and only today's are new.

Seed phase only (labelled): a raw ``sqlite3`` connection with ``synchronous=OFF`` and foreign
keys off, executemany in batches of 50,000. The measured job runs in a fresh process through
``core.jobs.run("servicing.daily")``, as the scheduler runs it, on the app's engine (WAL,
``synchronous=FULL``, ``BEGIN IMMEDIATE``, ``NONGDAI_DAILY_CHUNK``); its peak memory is that
process's ``VmHWM`` (the interpreter and the app included), beside the same figure taken just
before the job starts. The limit, in the same kind of process on a fresh copy of the same database:
one set-based statement per table the job writes over the same rows (``UPDATE loans`` of
every column the job sets, ``INSERT ... SELECT`` of the per-loan journal entries), one commit.
Each pass runs on its own copy of the seeded file; ``--repeat`` passes (default 3), median.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

D = date(2027, 6, 15)  # the business date of the measured day
BATCH = 50_000
VILLAGES = 200
NOW = "2027-01-01 00:00:00.000000"


def _app(path: Path, **extra: Any) -> Any:
    from app import create_app  # noqa: PLC0415

    return create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "TESTING": False,
                       "NONGDAI_SEED_DEMO": False, "NONGDAI_SMS_SENDER": "log",
                       "INSTANCE_PATH": str(path.parent), **extra})


def _hex() -> str:
    return uuid.uuid4().hex


# --- seeding ------------------------------------------------------------------------------------

def _places(path: Path) -> tuple[list[int], int]:
    """Migrate; a county, townships, villages, stations, the demo products (ORM)."""
    from flask_migrate import upgrade  # noqa: PLC0415

    from core.db import db  # noqa: PLC0415
    from core.places.models import County, Station, Township, Village  # noqa: PLC0415
    from lending.products import demo  # noqa: PLC0415

    app = _app(path)
    with app.app_context():
        upgrade()
        county = County(code="330521", name="德清县")
        db.session.add(county)
        villages = []
        for t in range(VILLAGES // 20):
            township = Township(code=f"330521{t + 1:03d}", name=f"镇{t}", county=county)
            db.session.add(township)
            row = [Village(code=f"330521{t + 1:03d}{v + 1:03d}", name=f"村{t}-{v}",
                           township=township) for v in range(20)]
            db.session.add_all(row)
            db.session.add(Station(name=f"站{t}", township=township, villages=row))
            villages.extend(row)
        db.session.flush()
        product = demo.seed_demo(db.session, ["330521"])[0]
        db.session.commit()
        ids, product_id = [v.id for v in villages], product.id
        db.engine.dispose()
    return ids, product_id


def _insert(conn: sqlite3.Connection, table: str, columns: list[str],
            rows: list[tuple[Any, ...]]) -> None:
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - our names
    conn.executemany(sql, rows)


FARMER_COLS = ["id", "public_id", "created_at", "name", "phone", "id_number_ciphertext",
               "id_number_hash", "id_number_masked", "village_id", "is_active",
               "identity_status", "language"]
APP_COLS = ["id", "public_id", "created_at", "farmer_id", "village_id", "product_id", "state",
            "state_changed_at", "amount_fen", "term_months", "purpose", "crop", "terms",
            "info_requested"]
LOAN_COLS = ["id", "public_id", "created_at", "application_id", "farmer_id", "village_id",
             "product_id", "kind", "repayment_type", "crop", "county_code", "terms",
             "principal_fen", "term_months", "annual_rate_bp", "penalty_rate_bp", "day_count",
             "grace_months", "status", "accepted_at", "disbursed_on", "maturity_date",
             "line_frozen", "principal_outstanding_fen", "interest_outstanding_fen",
             "penalty_outstanding_fen", "overpaid_fen", "interest_carry", "penalty_carry",
             "accrued_through", "dpd", "bucket", "relief_paused"]
INST_COLS = ["loan_id", "public_id", "created_at", "seq", "due_date", "principal_due_fen",
             "interest_due_fen", "principal_paid_fen", "interest_paid_fen", "paid_on"]


def _schedule(rnd: random.Random, kind: str, principal: int,
              disbursed: date) -> list[tuple[date, int, date | None]]:
    """[(due, principal due, paid on)] for the mix's kind of loan."""
    if kind == "overdue":
        return [(D - timedelta(days=rnd.randint(1, 120)), principal, None)]
    if kind == "soon":
        return [(D + timedelta(days=rnd.randint(1, 3)), principal, None)]
    if kind == "monthly":
        part = principal // 6
        dues = [disbursed + timedelta(days=30 * (n + 1)) for n in range(6)]
        return [(due, part if n < 5 else principal - 5 * part, due if due < D else None)
                for n, due in enumerate(dues)]
    return [(date(2027, 9, 30), principal, None)]


def _kind(rnd: random.Random) -> str:
    roll = rnd.random()
    return ("overdue" if roll < 0.10 else "soon" if roll < 0.15
            else "monthly" if roll < 0.35 else "bullet")


def _loan_rows(n: int, first: int, villages: list[int], product_id: int,
               rnd: random.Random) -> tuple[list[tuple[Any, ...]], ...]:
    apps, loans, insts, entries = [], [], [], []
    for i in range(first, first + n):
        farmer = (i - 1) // 10 + 1
        village = villages[farmer % len(villages)]
        principal = rnd.randint(20, 500) * 100_00
        disbursed = D - timedelta(days=rnd.randint(2, 160))
        kind = _kind(rnd)
        schedule = _schedule(rnd, kind, principal, disbursed)
        paused = kind == "overdue" and rnd.random() < 0.2
        day_count = rnd.choices(("ACT/360", "30/360", "ACT/365"), (95, 3, 2))[0]
        accrued = D - timedelta(days=2 if rnd.random() > 0.03 else rnd.randint(3, 6))
        apps.append((i, _hex(), NOW, farmer, village, product_id, "approved", NOW, principal,
                     8, "seed", "rice", "{}", 0))
        loans.append((i, _hex(), NOW, i, farmer, village, product_id, "term",
                      "equal_instalments" if kind == "monthly" else "bullet_at_harvest",
                      "rice", "330521", "{}", principal, 8, 720, 1080, day_count, 0, "active",
                      NOW, disbursed.isoformat(), schedule[-1][0].isoformat(), 0, principal, 0,
                      0, 0, 0, 0, accrued.isoformat(), 0, "current", int(paused)))
        for seq, (due, part, paid) in enumerate(schedule, start=1):
            insts.append((i, _hex(), NOW, seq, due.isoformat(), part, 0,
                          part if paid else 0, 0, paid.isoformat() if paid else None))
        entries.append((principal, i))
    return apps, loans, insts, entries


def seed(path: Path, loans: int, seed_value: int = 42) -> dict[str, float]:
    """The seeded database at ``path`` (see the module docstring); returns timings."""
    started = time.perf_counter()
    villages, product_id = _places(path)
    rnd = random.Random(seed_value)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # seed phase only
    conn.execute("PRAGMA foreign_keys = OFF")  # seed phase only
    conn.execute("PRAGMA cache_size = -200000")
    farmers = (loans + 9) // 10
    conn.execute("BEGIN")
    for start in range(0, farmers, BATCH):
        _insert(conn, "farmers", FARMER_COLS, [
            (f, _hex(), NOW, "农户", f"13{f:09d}", "x", f"h{f}", "3305**********0000",
             villages[f % len(villages)], 1, "verified", "en" if f % 10 == 0 else "zh_CN")
            for f in range(start + 1, min(farmers, start + BATCH) + 1)])
    conn.execute("COMMIT")
    journal = 0
    for start in range(1, loans + 1, BATCH):
        count = min(BATCH, loans - start + 1)
        apps, rows, insts, entries = _loan_rows(count, start, villages, product_id, rnd)
        conn.execute("BEGIN")
        _insert(conn, "loan_applications", APP_COLS, apps)
        _insert(conn, "loans", LOAN_COLS, rows)
        _insert(conn, "loan_installments", INST_COLS, insts)
        for part in range(0, len(entries), 10_000):
            journal += 1
            chunk = entries[part:part + 10_000]
            conn.execute("INSERT INTO journal_transactions (id, public_id, created_at, kind, "
                         "reference, business_date, actor, memo) VALUES (?, ?, ?, ?, ?, ?, ?, "
                         "'{}')", (journal, _hex(), NOW, "disbursement_batch",
                                   f"bench:{journal}", "2027-01-01", "bench"))
            conn.executemany("INSERT INTO journal_entries (journal_id, account, loan_id, "
                             "amount_fen) VALUES (?, 'loan_principal', ?, ?)",
                             [(journal, loan_id, amount) for amount, loan_id in chunk])
            conn.execute("INSERT INTO journal_entries (journal_id, account, loan_id, amount_fen)"
                         " VALUES (?, 'payout_clearing', NULL, ?)",
                         (journal, -sum(amount for amount, _ in chunk)))
        conn.execute("COMMIT")
        print(f"  seeded {start + count - 1:,} loans", file=sys.stderr, flush=True)
    conn.execute("ANALYZE")
    conn.close()
    warm = time.perf_counter()
    _child("warm", path, BATCH)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"seed_s": round(time.perf_counter() - started, 1),
            "warm_day_s": round(time.perf_counter() - warm, 1)}


def warm_pass(path: Path, chunk: int) -> dict[str, Any]:
    """Seed phase, not measured: the job for the day before D (the portfolio in its steady
    state: yesterday's reminders and visits exist, the loans accrued and aged to D - 1)."""
    from core import jobs  # noqa: PLC0415
    from core.db import db  # noqa: PLC0415

    app = _app(path, NONGDAI_DAILY_CHUNK=chunk)
    with app.app_context():
        status = jobs.run("servicing.daily", on=D - timedelta(days=1))
        db.engine.dispose()
    return {"status": status}


# --- the measured passes (each in a fresh process) -------------------------------------------

def _peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``; ``ru_maxrss`` would include the memory of
    the parent it was forked from, before ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def job_pass(path: Path, chunk: int) -> dict[str, Any]:
    """Run one business day of ``servicing.daily`` the way the scheduler does."""
    import sqlalchemy as sa  # noqa: PLC0415

    from core import jobs  # noqa: PLC0415
    from core.db import db  # noqa: PLC0415

    app = _app(path, NONGDAI_DAILY_CHUNK=chunk)
    counting = {
        "entries": "SELECT count(*) FROM journal_entries",
        "sms": "SELECT count(*) FROM outbox_messages",
        "assignments": "SELECT count(*) FROM field_assignments",
        "overdue": "SELECT count(*) FROM loans WHERE dpd > 0",
        "penalised": "SELECT count(*) FROM loans WHERE penalty_outstanding_fen > 0"}
    with app.app_context():
        before = {name: db.session.scalar(sa.text(sql)) or 0 for name, sql in counting.items()}
        db.session.rollback()
        rss_before = _peak_rss_mb()
        started, cpu = time.perf_counter(), time.process_time()
        status = jobs.run("servicing.daily", on=D)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = {name: db.session.scalar(sa.text(sql)) or 0 for name, sql in counting.items()}
        counts = {name: after[name] - (before[name] if name in ("entries", "sms", "assignments")
                                       else 0) for name in counting}
        db.session.remove()
        db.engine.dispose()
    return {"status": status, "daily_job_s": round(elapsed, 3), "peak_rss_mb": _peak_rss_mb(),
            "rss_before_job_mb": rss_before, "job_cpu_s": round(cpu, 3), **counts}


LIMIT_SQL = [
    ("UPDATE loans SET interest_outstanding_fen = interest_outstanding_fen + "
     "(principal_outstanding_fen * annual_rate_bp + interest_carry) / 3600000, "
     "interest_carry = (principal_outstanding_fen * annual_rate_bp + interest_carry) % 3600000,"
     " penalty_outstanding_fen = penalty_outstanding_fen + relief_paused, penalty_carry = "
     "penalty_carry + 1, accrued_through = '2027-06-15', oldest_due_date = maturity_date, "
     "dpd = dpd + 1, bucket = '1-30', aged_through = '2027-06-15' WHERE status = 'active'"),
    ("INSERT INTO journal_transactions (id, public_id, created_at, kind, reference, "
     "business_date, actor, memo) VALUES (1000000000, 'ffffffffffffffffffffffffffffffff', "
     "'2027-01-01 00:00:00', 'limit', 'limit', '2027-06-15', 'bench', '{}')"),
    ("INSERT INTO journal_entries (journal_id, account, loan_id, amount_fen) SELECT "
     "1000000000, 'interest_receivable', id, 1 + principal_outstanding_fen % 7 FROM loans "
     "WHERE status = 'active'"),
]


def limit_pass(path: Path) -> dict[str, Any]:
    """One set-based statement per table the job writes, over the same rows, one commit, on
    the app's engine (same settings)."""
    import sqlalchemy as sa  # noqa: PLC0415

    from core.db import db  # noqa: PLC0415

    app = _app(path)
    with app.app_context():
        started = time.perf_counter()
        with db.engine.begin() as conn:
            for sql in LIMIT_SQL:
                conn.execute(sa.text(sql))
        elapsed = time.perf_counter() - started
        db.engine.dispose()
    return {"limit_s": round(elapsed, 3), "peak_rss_mb": _peak_rss_mb()}


def _child(mode: str, path: Path, chunk: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, str(path), "--chunk", str(chunk)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(loans: int, repeat: int, chunk: int, work: Path) -> dict[str, Any]:
    base = work / f"seed-{loans}.sqlite3"
    if base.exists():  # --workdir: a seed kept from an earlier run
        seeded: dict[str, float] = {"seed_s": 0.0, "warm_day_s": 0.0}
        print(f"reusing the seeded {base}", file=sys.stderr, flush=True)
    else:
        print(f"seeding {loans:,} loans (seed phase: synchronous=OFF, foreign_keys=OFF) ...",
              file=sys.stderr, flush=True)
        seeded = seed(base, loans)
        print(f"  seeded in {seeded['seed_s']} s", file=sys.stderr, flush=True)
    jobs_, limits = [], []
    for n in range(repeat):
        run_db = work / "run.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{run_db}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(base, run_db)
        jobs_.append(_child("job", run_db, chunk))
        print(f"  pass {n + 1}: job {jobs_[-1]['daily_job_s']} s, "
              f"rss {jobs_[-1]['peak_rss_mb']} MB", file=sys.stderr, flush=True)
        shutil.copyfile(base, run_db)
        for suffix in ("-wal", "-shm"):
            Path(f"{run_db}{suffix}").unlink(missing_ok=True)
        limits.append(_child("limit", run_db, chunk))
        print(f"  pass {n + 1}: limit {limits[-1]['limit_s']} s", file=sys.stderr, flush=True)
    times = [j["daily_job_s"] for j in jobs_]
    limit_s = statistics.median(lim["limit_s"] for lim in limits)
    job_s = statistics.median(times)
    last = jobs_[-1]
    return {"loans": loans, "daily_job_s": round(job_s, 3), "daily_job_s_min": min(times),
            "daily_job_s_max": max(times), "loans_per_s": round(loans / job_s),
            "limit_s": round(limit_s, 3), "limit_loans_per_s": round(loans / limit_s),
            "ratio": round(limit_s / job_s, 3), "chunk": chunk,
            "peak_rss_mb": max(j["peak_rss_mb"] for j in jobs_),
            "rss_before_job_mb": last["rss_before_job_mb"],
            "job_cpu_s": statistics.median(j["job_cpu_s"] for j in jobs_),
            "accrual_entries": last["entries"], "sms_queued": last["sms"],
            "assignments": last["assignments"], "past_due_loans": last["overdue"],
            "penalised_loans": last["penalised"], **seeded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--scaling", action="store_true", help="100,000 and 1,000,000 loans")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=20_000, help="NONGDAI_DAILY_CHUNK")
    parser.add_argument("--quick", action="store_true", help="10,000 loans, one pass")
    parser.add_argument("--workdir", help="keep the seeded databases here and reuse them "
                        "(default: a temporary directory, removed at the end)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path = args.child
        if mode == "limit":
            print(json.dumps(limit_pass(Path(path))))
        else:
            fn = job_pass if mode == "job" else warm_pass
            print(json.dumps(fn(Path(path), args.chunk)))
        return
    sizes = [100_000, 1_000_000] if args.scaling else [10_000 if args.quick else args.loans]
    repeat = 1 if args.quick else args.repeat
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        results = [measure(n, repeat, args.chunk, Path(args.workdir)) for n in sizes]
    else:
        with tempfile.TemporaryDirectory(prefix="nongdai-bench-servicing-") as tmp:
            results = [measure(n, repeat, args.chunk, Path(tmp)) for n in sizes]
    for r in results:
        print(f"{r['loans']:>9,} loans: daily job {r['daily_job_s']} s "
              f"({r['loans_per_s']:,} loans/s), limit {r['limit_s']} s, ratio {r['ratio']}, "
              f"peak RSS {r['peak_rss_mb']} MB (before the job {r['rss_before_job_mb']} MB)")
    figures = dict(results[-1])
    if args.scaling:
        figures["scaling_ratio"] = round(results[1]["daily_job_s"] / results[0]["daily_job_s"], 2)
        figures["at_100k"] = results[0]
    figures.update(python=sys.version.split()[0], db="sqlite", cpus=os.cpu_count())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
