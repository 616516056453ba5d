import pytest
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


def _set_revision(app, revision: str) -> None:
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})


def test_readyz_fails_when_the_schema_is_behind(app, client) -> None:
    (head,) = head_revisions()
    _set_revision(app, "behind")
    try:
        response = client.get("/readyz")
    finally:
        _set_revision(app, head)  # PostgreSQL is shared by the whole run
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "unavailable"


@pytest.mark.parametrize("path", ["/", "/api", "/api/", "/api/v1", "/api/v1/"])
def test_the_roots_point_to_the_api_documentation(client, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == "not-found"
    assert "/api/docs" in problem["detail"]
    assert "/api/openapi.json" in problem["detail"]


def test_an_unknown_path_keeps_the_plain_not_found(client) -> None:
    response = client.get("/api/v1/nowhere")

    assert response.status_code == 404
    assert "/api/docs" not in response.get_json()["detail"]
