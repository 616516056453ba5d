import sqlalchemy as sa

from core.db import db
from core.health import head_revisions


def test_healthz_answers_without_authentication(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_the_migration_head(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ready"


def _set_revision(revision: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})


def test_readyz_fails_when_the_schema_is_behind(app, client) -> None:
    (head,) = head_revisions()
    _set_revision("behind")
    try:
        response = client.get("/readyz")
    finally:
        _set_revision(head)  # PostgreSQL is shared by the whole run
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "unavailable"
