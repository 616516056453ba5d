"""The Alembic migrations are the schema: at head they match the models exactly."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from core.audit import AuditEvent, record
from core.db import db
from core.health import head_revisions
from tests.conftest import PG_URL


def _diff() -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_migrations_at_head_match_the_models(session) -> None:
    with db.engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    assert current == head_revisions()
    assert _diff() == []


@pytest.mark.skipif(bool(PG_URL), reason="round trip on the per-test SQLite copy only")
def test_migrations_downgrade_to_base_and_back(session) -> None:
    downgrade(revision="base")
    inspector = sa.inspect(db.engine)
    assert set(inspector.get_table_names()) <= {"alembic_version"}
    upgrade()
    assert _diff() == []


def test_the_audit_trail_is_append_only(session) -> None:
    record(db.session, "test.append", None, summary={"n": 1}, actor="system")
    event_id = db.session.scalar(sa.select(sa.func.max(AuditEvent.id)))
    db.session.commit()
    for statement in (sa.update(AuditEvent).where(AuditEvent.id == event_id).values(action="x"),
                      sa.delete(AuditEvent).where(AuditEvent.id == event_id)):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(statement)
    with db.engine.connect() as conn:
        action = conn.scalar(sa.select(AuditEvent.action).where(AuditEvent.id == event_id))
    assert action == "test.append"
