"""The sync benchmark's stack ceiling: bare Flask views under the same gunicorn settings.

``bench/ceiling_app.py``'s app (one row, one durable commit per request: ``POST /rows``), plus
``POST /api/v1/sync/push`` (Nongdai's path): a bare view that takes a push body as a phone
sends it, parses it, and writes
the same rows a Nongdai push writes for its operations (the templates ``bench/sync_limit.py``
read from the database, fresh values in every unique column) with one executemany per table
and one durable commit, and answers one result per operation. No authentication, schema,
ordering, idempotency look-up or handler: what Python, Flask, gunicorn, JSON, the client and the
same inserts cost before any of Nongdai's sync code runs. ``stack_ratio = ops_per_s /
ceiling_ops_per_s``.

    BENCH_SYNC_TEMPLATES=rows.pickle gunicorn ... 'bench.sync_ceiling:create_app()'
"""

from __future__ import annotations

import itertools
import os
import pickle
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, request

from bench import ceiling_app
from bench.sync_limit import Written, _plan, _rows
from bench.sync_load import PUSH

TEMPLATES = "BENCH_SYNC_TEMPLATES"


def save(path: Path, rows: dict[str, list[dict[str, Any]]], what: Written) -> None:
    with path.open("wb") as out:
        pickle.dump({"rows": rows, "per_op": what.per_op}, out)


def create_app() -> Flask:
    app = ceiling_app.create_app()
    engine = ceiling_app.make_engine(os.environ["NONGDAI_DATABASE_URL"])
    with Path(os.environ[TEMPLATES]).open("rb") as source:
        saved = pickle.load(source)  # noqa: S301 - written by bench/sync.py for this run
    from app import create_app as nongdai  # noqa: PLC0415 - the table definitions only

    nongdai()  # imports every model, so db.metadata knows the tables
    from core.db import db  # noqa: PLC0415

    tables = {t.name: t for t in db.metadata.sorted_tables}
    per_op: dict[str, float] = saved["per_op"]
    plans = [(_plan(tables[name], saved["rows"][name][0]), name)
             for name in tables if name in per_op]
    numbers = itertools.count(os.getpid() * 10_000_000)

    @app.post(PUSH)
    def push() -> tuple[dict[str, Any], int]:
        """A batch's rows in one transaction, one durable commit; one result per operation."""
        ops = request.get_json()["ops"]
        groups = [(plan.table, _rows(plan, saved["rows"][name], round(per_op[name] * len(ops)),
                                     numbers)) for plan, name in plans]
        with engine.begin() as conn:
            for table, rows in groups:
                if rows:  # an empty list would be one INSERT of defaults
                    conn.execute(sa.insert(table), rows)
        results = [{"op_id": op["op_id"], "device_seq": op["device_seq"], "status": "applied",
                    "reason": None, "detail": None,
                    "result": {"entity_id": op["entity_id"], "version": 1, "flags": []}}
                   for op in ops]
        last = ops[-1]["device_seq"]
        return {"acked_seq": last, "expected_seq": last + 1, "results": results, "flags": []}, 200

    return app
