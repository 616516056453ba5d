"""Benchmark: coordinators registering farmers over HTTP (gunicorn), first push and replay.

The foundation's write path end to end: Bearer authentication, access rule, strict schema,
Idempotency-Key claim, ID-number validation and encryption, keyed-hash dedupe, scoping, the
audit event, one durable commit per request (SQLite WAL + synchronous=FULL, or PostgreSQL).

Figures (per BENCH.md): ``http_create_per_s`` (median of 3 passes, each on fresh farmers),
``http_replay_per_s`` and ``replay_cost`` (replaying every request with its key, time ÷ first
push), and ``limit_insert_per_s``: a SQLAlchemy Core insert of the same rows the path writes
(farmer, idempotency record, audit event), one request's rows per transaction, in-process on
the same kind of database with the same settings. ``ratio = http_create_per_s / limit``.

    python bench/api_farmers.py [--quick] [--pg postgresql+psycopg://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from core.audit import AuditEvent  # noqa: E402
from core.db import db, utcnow, uuid7  # noqa: E402
from core.idempotency import IdempotencyRecord  # noqa: E402
from core.people import idnumber  # noqa: E402
from core.people import services as people  # noqa: E402
from core.people.models import Farmer  # noqa: E402
from core.places import services as places  # noqa: E402

PASSWORD = "bench-password-1"  # noqa: S105
SEED = 20261129


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--pg", default="", help="PostgreSQL URL (the schema is recreated)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    return parser.parse_args()


def _settings(url: str, instance: Path) -> dict[str, Any]:
    return {"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": str(instance),
            "NONGDAI_SEED_DEMO": False}


def _reset_pg(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def _seed(url: str, instance: Path) -> list[str]:
    """Migrate, then one county, township, station over 4 villages, and a coordinator."""
    from flask_migrate import upgrade  # noqa: PLC0415

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(url: str, instance: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "NONGDAI_DATABASE_URL": url, "NONGDAI_INSTANCE_PATH": str(instance),
           "NONGDAI_LOG_LEVEL": "WARNING", "NONGDAI_LOGIN_PER_USER_PER_HOUR": "1000"}
    proc = subprocess.Popen(  # noqa: S603 - our own app, fixed argv
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind",
         f"127.0.0.1:{port}", "app:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if requests.get(f"{base}/healthz", timeout=1).ok:
                return proc, base
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def _token(base: str) -> str:
    answer = requests.post(f"{base}/api/v1/auth/login", timeout=10,
                           json={"username": "bench", "password": PASSWORD})
    answer.raise_for_status()
    return answer.json()["access_token"]


def _push(base: str, token: str, bodies: list[dict], keys: list[str],
          clients: int) -> tuple[float, dict[int, int]]:
    """POST every body with its key from ``clients`` threads; seconds and status counts."""
    local = threading.local()

    def send(item: tuple[dict, str]) -> int:
        if not hasattr(local, "http"):
            local.http = requests.Session()  # keep-alive per client, as a phone would
        body, key = item
        answer = local.http.post(f"{base}/api/v1/farmers", json=body, timeout=30, headers={
            "Authorization": f"Bearer {token}", "Idempotency-Key": key})
        return answer.status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        codes = list(pool.map(send, zip(bodies, keys, strict=True)))
    elapsed = time.perf_counter() - started
    return elapsed, {code: codes.count(code) for code in set(codes)}


def _limit(url: str, instance: Path, count: int, offset: int) -> float:
    """Core inserts of the same rows (farmer + idempotency record + audit event) per txn."""
    app = create_app(_settings(url, instance))
    with app.app_context():
        with db.engine.connect() as conn:
            village_id = conn.scalar(sa.text("SELECT min(id) FROM villages"))
        rng = random.Random(SEED + 99)
        rows = _farmers(rng, count, ["x"], offset=900_000)
        started = time.perf_counter()
        for n, row in enumerate(rows):
            now = utcnow()
            with db.engine.begin() as conn:
                conn.execute(sa.insert(Farmer), [{
                    "public_id": uuid7(), "created_at": now, "name": row["name"],
                    "phone": f"15{offset + n:09d}", "id_number_ciphertext": "v1." + "x" * 60,
                    "id_number_hash": uuid.uuid4().hex * 2, "id_number_masked": "3305**********",
                    "birth_date": date(1980, 1, 1), "village_id": village_id,
                    "is_active": True}])
                conn.execute(sa.insert(IdempotencyRecord), [{
                    "scope": "coordinator:bench", "key": uuid.uuid4().hex, "method": "POST",
                    "path": "/api/v1/farmers", "request_hash": "0" * 64, "state": "completed",
                    "response_status": 201, "response_body": "{}" * 150,
                    "response_headers": {}, "created_at": now,
                    "expires_at": now + timedelta(hours=48)}])
                conn.execute(sa.insert(AuditEvent), [{
                    "occurred_at": now, "actor": "coordinator:bench", "action": "farmer.create",
                    "object_type": "farmers", "object_id": str(uuid7()), "request_id": "r" * 32,
                    "summary": {"village_id": "v"}}])
        elapsed = time.perf_counter() - started
        db.engine.dispose()
    return count / elapsed


def main() -> None:
    args = _args()
    per_pass = 150 if args.quick else 1000
    workdir = Path(tempfile.mkdtemp(prefix="nongdai-bench-"))
    url = args.pg or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if args.pg:
        _reset_pg(args.pg)
    try:
        villages = _seed(url, workdir)
        proc, base = _serve(url, workdir, args.workers)
        try:
            token = _token(base)
            rng = random.Random(SEED)
            warm = _farmers(rng, 30, villages, offset=0)
            _push(base, token, warm, [uuid.uuid4().hex for _ in warm], args.clients)
            rates, replays, statuses = [], [], {}
            for n in range(3):
                bodies = _farmers(rng, per_pass, villages, offset=1000 + n * per_pass)
                keys = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in bodies]
                first, codes = _push(base, token, bodies, keys, args.clients)
                again, replay_codes = _push(base, token, bodies, keys, args.clients)
                rates.append(per_pass / first)
                replays.append((per_pass / again, again / first))
                statuses[f"pass{n}"] = {"first": codes, "replay": replay_codes}
                print(f"pass {n + 1}/3: {per_pass / first:7.1f} created/s, "
                      f"replay {per_pass / again:7.1f}/s ({again / first:.2f} of first)",
                      flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        limits = [_limit(url, workdir, per_pass, n * per_pass) for n in range(3)]
        create, limit = statistics.median(rates), statistics.median(limits)
        print(f"limit (Core insert of the same rows, 1 request's rows per txn): {limit:.1f}/s")
        result = {
            "bench": "api_farmers",
            "http_create_per_s": round(create, 1),
            "http_create_per_s_min": round(min(rates), 1),
            "http_create_per_s_max": round(max(rates), 1),
            "http_replay_per_s": round(statistics.median(r for r, _ in replays), 1),
            "replay_cost": round(statistics.median(c for _, c in replays), 3),
            "limit_insert_per_s": round(limit, 1),
            "ratio": round(create / limit, 3),
            "requests_per_pass": per_pass,
            "clients": args.clients,
            "workers": args.workers,
            "statuses": statuses,
            "python": sys.version.split()[0],
            "db": "postgresql" if args.pg else "sqlite",
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
