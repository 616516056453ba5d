"""The in-process figures of ``bench/api_farmers.py``: the write limit and the engine profile.

- ``limit``: SQLAlchemy Core inserts of the rows a create writes (farmer, idempotency record,
  audit event), one request's rows per transaction: the most this database allows for the work.
- ``profile``: statements, transactions, durable commits and pool checkouts per create and per
  replay, counted with engine events through the Flask test client (no HTTP, hence ``engine_``).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app import create_app
from bench.farmers_seed import PASSWORD, SEED, farmers, keys, settings
from bench.sqlcount import SqlCounter, Tally
from core.audit import AuditEvent
from core.db import db, utcnow, uuid7
from core.idempotency import IdempotencyRecord
from core.people.models import Farmer

PROFILED = 40  # requests in the in-process profile


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


def limit(url: str, instance: Path, count: int, offset: int) -> float:
    """Core inserts of the same rows (farmer + idempotency record + audit event) per txn."""
    app = create_app(settings(url, instance))
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


def profile(url: str, instance: Path, villages: list[str]) -> dict[str, dict[str, Any]]:
    """Statements, transactions and durable commits per create and per replay, through the
    Flask test client on the same seeded database (every layer but HTTP and gunicorn)."""
    app = create_app(settings(url, instance))
    client = app.test_client()
    login = client.post("/api/v1/auth/login", json={"username": "bench", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
    rng = random.Random(SEED + 7)
    bodies, idem_keys = farmers(rng, PROFILED, villages, offset=500_000), keys(rng, PROFILED)
    with app.app_context():
        counter = SqlCounter(db.engine)
    tallies: dict[str, list[Tally]] = {"create": [], "replay": []}
    try:
        for phase, status in (("create", 201), ("replay", 201)):
            for body, key in zip(bodies, idem_keys, strict=True):
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
