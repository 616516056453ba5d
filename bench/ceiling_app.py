"""The stack ceiling: a bare Flask app that writes one row with one durable commit per request.

What Python, Flask, gunicorn, the HTTP client and one durable commit cost on this machine before
any Nongdai code runs. ``bench/api_farmers.py`` serves it with the same gunicorn settings as
Nongdai and sends it the same requests; ``stack_ratio`` divides Nongdai's rate by this one.
A second view reads one stored row and answers it: the ceiling of a replay, which has no write.

It reads the same ``NONGDAI_DATABASE_URL`` and builds its engine with ``core.db``'s own options
and SQLite settings (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``, the same busy timeout), so
the commit it pays is the one Nongdai pays. Nothing else of Nongdai runs: no
authentication, schema, idempotency, audit or ORM session.

    gunicorn --workers 2 --bind 127.0.0.1:8001 'bench.ceiling_app:create_app()'
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, request

from core.db import configure_sqlite, engine_options

DEFAULT_BUSY_TIMEOUT_MS = 10_000  # core.config's default for NONGDAI_DB_BUSY_TIMEOUT_MS

metadata = sa.MetaData()
rows = sa.Table(
    "bench_ceiling_rows", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def make_engine(url: str) -> sa.Engine:
    """An engine with Nongdai's settings (see ``core.db``)."""
    engine = sa.create_engine(url, **engine_options(sa.make_url(url)))
    if engine.dialect.name == "sqlite":
        busy = int(os.environ.get("NONGDAI_DB_BUSY_TIMEOUT_MS", DEFAULT_BUSY_TIMEOUT_MS))
        configure_sqlite(engine, busy)
    return engine


def prepare(url: str) -> None:
    """Create the table once, before the workers start (two workers racing to create it on
    PostgreSQL would collide in the catalogue)."""
    engine = make_engine(url)
    metadata.create_all(engine)
    engine.dispose()


def create_app() -> Flask:
    app = Flask(__name__)
    engine = make_engine(os.environ["NONGDAI_DATABASE_URL"])

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/rows")
    def create_row() -> tuple[dict[str, int], int]:
        """One row, one transaction, one durable commit: the least a creating POST does."""
        body = json.dumps(request.get_json(), ensure_ascii=False)
        with engine.begin() as conn:
            result = conn.execute(sa.insert(rows).values(body=body,
                                                         created_at=datetime.now(UTC)))
        return {"id": result.inserted_primary_key[0]}, 201

    @app.post("/rows/stored")
    def stored_row() -> tuple[dict[str, Any], int]:
        """One row read by key and sent back: the least a replay from a stored answer does."""
        request.get_json()
        with engine.connect() as conn:
            row = conn.execute(sa.select(rows.c.id, rows.c.body).where(rows.c.id == 1)).one()
        return {"id": row.id, "body": row.body}, 201

    return app
