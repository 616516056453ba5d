"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, current_app

from core.config import ROOT
from core.db import db
from core.errors import ServiceUnavailable

MIGRATIONS = ROOT / "migrations"

blp = Blueprint("health", __name__)


def head_revisions(directory: Path = MIGRATIONS) -> set[str]:
    return set(ScriptDirectory(str(directory)).get_heads())


@blp.get("/healthz")
def healthz() -> dict[str, str]:
    """Alive: the process answers. Touches nothing else."""
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> dict[str, object]:
    """Ready: the database answers and its schema is at the migrations' head."""
    try:
        with db.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            current = set(MigrationContext.configure(conn).get_current_heads())
    except sa.exc.SQLAlchemyError as exc:
        raise ServiceUnavailable("The database is unreachable") from exc
    heads = current_app.extensions.get("nongdai_heads")
    if heads is None:
        heads = current_app.extensions["nongdai_heads"] = head_revisions()
    if current != heads:
        raise ServiceUnavailable("The database schema is not at the migrations' head; "
                                 "run 'flask --app app db upgrade'")
    return {"status": "ready", "revision": ",".join(sorted(current))}


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)
