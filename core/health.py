"""Liveness and readiness probes for load balancers and orchestrators, and the signposts.

``/``, ``/api`` and ``/api/v1`` have no resource of their own; a person (or a client) who
tries them gets a 404 problem that says where the API is described, not a bare "not found".
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, current_app

from core.authz import access
from core.config import ROOT
from core.db import db
from core.errors import NotFound, ServiceUnavailable
from core.i18n import N_, _, gettext

MIGRATIONS = ROOT / "migrations"
SIGNPOST = N_("There is nothing at this address. The API lives under /api/v1; every operation "
              "is described at /api/docs (interactive) and /api/openapi.json (OpenAPI 3.1).")

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
        raise ServiceUnavailable(_("The database is unreachable")) from exc
    heads = current_app.extensions.get("nongdai_heads")
    if heads is None:
        heads = current_app.extensions["nongdai_heads"] = head_revisions()
    if current != heads:
        raise ServiceUnavailable(_("The database schema is not at the migrations' head; "
                                   "run 'flask --app app db upgrade'"))
    return {"status": "ready", "revision": ",".join(sorted(current))}


@blp.get("/", strict_slashes=False)
@blp.get("/api", strict_slashes=False)
@blp.get("/api/v1", strict_slashes=False)
@access(public=True)
def signpost() -> NoReturn:
    """The roots a newcomer tries first: a 404 problem pointing to the documentation."""
    raise NotFound(gettext(SIGNPOST))


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)
