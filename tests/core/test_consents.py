"""PIPL consents: granted by the farmer (app) or recorded in scope (coordinator), revocable."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.db import utcnow
from core.people.models import Consent
from core.people.services import has_consent
from tests import factories as f
from tests.core.test_people_helpers import (
    API,
    World,
    assert_problem,
    build_world,
    consent,
    creating,
)


@pytest.fixture
def world(session: Any) -> World:
    return build_world(session)


def _grant(client: Any, headers: dict[str, str], farmer: Any, **body: Any) -> Any:
    body = {"purpose": "land_registry", "valid_days": 90, **body}
    return client.post(f"{API}/farmers/{farmer.public_id}/consents", json=body,
                       headers=creating(headers))


def test_farmer_grants_through_the_app(client: Any, session: Any, world: World) -> None:
    headers = f.auth_headers(session, world.farmer_a)
    before = utcnow()
    response = _grant(client, headers, world.farmer_a, purpose="insurance", valid_days=30)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["channel"] == "app"
    assert body["status"] == "active"
    assert body["farmer_id"] == str(world.farmer_a.public_id)
    assert body["recorded_by"] == f"farmer:{world.farmer_a.public_id}"
    assert body["revoked_at"] is None
    expires = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(days=30) <= expires <= utcnow() + timedelta(days=30)
    assert "valid_days" not in body
    session.rollback()
    assert has_consent(session, world.farmer_a.id, "insurance")
    assert not has_consent(session, world.farmer_a.id, "land_registry")
    assert not has_consent(session, world.farmer_b.id, "insurance")


def test_coordinator_records_in_scope_only(client: Any, session: Any, world: World) -> None:
    headers = f.auth_headers(session, world.coordinator_a)
    response = _grant(client, headers, world.farmer_a, evidence="纸质授权书 2024-031")
    assert response.status_code == 201
    assert response.get_json()["channel"] == "coordinator"
    assert response.get_json()["evidence"] == "纸质授权书 2024-031"
    assert_problem(_grant(client, headers, world.farmer_b), 404, "not-found")
    other_farmer = f.auth_headers(session, world.farmer_b)
    assert_problem(_grant(client, other_farmer, world.farmer_a), 404, "not-found")


@pytest.mark.parametrize(("body", "field"), [
    ({"purpose": "marketing"}, "purpose"),
    ({"valid_days": 0}, "valid_days"),
    ({"valid_days": 366}, "valid_days"),
    ({"valid_days": "forever"}, "valid_days"),
    ({"evidence": "x" * 201}, "evidence"),
    ({"status": "active"}, "status"),
    ({"channel": "app"}, "channel"),
])
def test_invalid_consents_are_422(client: Any, session: Any, world: World,
                                  body: dict[str, Any], field: str) -> None:
    headers = f.auth_headers(session, world.coordinator_a)
    problem = assert_problem(_grant(client, headers, world.farmer_a, **body), 422)
    assert list(problem["errors"]) == [field]


def test_the_longest_validity_is_configured(app: Any, client: Any, session: Any,
                                            world: World) -> None:
    app.config["NONGDAI_CONSENT_MAX_DAYS"] = 30
    headers = f.auth_headers(session, world.coordinator_a)
    assert_problem(_grant(client, headers, world.farmer_a, valid_days=31), 422)
    assert _grant(client, headers, world.farmer_a, valid_days=30).status_code == 201


def test_list_consents(client: Any, session: Any, world: World) -> None:
    mine = [consent(session, world.farmer_a, purpose)
            for purpose in ("land_registry", "insurance")]
    consent(session, world.farmer_b)
    session.commit()
    for caller in (world.farmer_a, world.coordinator_a, world.admin):
        headers = f.auth_headers(session, caller)
        response = client.get(f"{API}/farmers/{world.farmer_a.public_id}/consents",
                              headers=headers)
        assert [c["id"] for c in response.get_json()["items"]] == sorted(
            str(c.public_id) for c in mine)
    headers = f.auth_headers(session, world.farmer_a)
    response = client.get(f"{API}/farmers/{world.farmer_b.public_id}/consents", headers=headers)
    assert_problem(response, 404)


def test_revoke(client: Any, session: Any, world: World) -> None:
    own, other = consent(session, world.farmer_a), consent(session, world.farmer_a, "insurance")
    session.commit()
    farmer = f.auth_headers(session, world.farmer_a)
    response = client.post(f"{API}/consents/{own.public_id}/revoke", headers=farmer)
    assert response.status_code == 200
    assert response.get_json()["status"] == "revoked"
    assert_problem(client.post(f"{API}/consents/{own.public_id}/revoke", headers=farmer),
                   409, "consent-revoked")
    coordinator = f.auth_headers(session, world.coordinator_a)
    assert_problem(client.post(f"{API}/consents/{other.public_id}/revoke",
                               headers=coordinator), 403, "forbidden")
    neighbour = f.auth_headers(session, world.farmer_b)
    assert_problem(client.post(f"{API}/consents/{other.public_id}/revoke", headers=neighbour),
                   404, "not-found")
    admin = f.auth_headers(session, world.admin)
    assert client.post(f"{API}/consents/{other.public_id}/revoke",
                       headers=admin).status_code == 200
    session.rollback()
    assert not has_consent(session, world.farmer_a.id, "land_registry")
    assert not has_consent(session, world.farmer_a.id, "insurance")
    actions = session.scalars(sa.select(AuditEvent.action).where(
        AuditEvent.action.like("consent.%"))).all()
    assert actions == ["consent.revoke", "consent.revoke"]


def test_has_consent_over_time(session: Any, world: World) -> None:
    row = consent(session, world.farmer_a, days=10)
    start = row.granted_at
    assert has_consent(session, world.farmer_a.id, "land_registry", at=start)
    assert has_consent(session, world.farmer_a.id, "land_registry",
                       at=start + timedelta(days=9))
    assert not has_consent(session, world.farmer_a.id, "land_registry",
                           at=start + timedelta(days=10))
    assert not has_consent(session, world.farmer_a.id, "land_registry",
                           at=start - timedelta(seconds=1))
    row.revoked_at = start + timedelta(days=2)
    session.flush()
    assert has_consent(session, world.farmer_a.id, "land_registry",
                       at=start + timedelta(days=1))
    assert not has_consent(session, world.farmer_a.id, "land_registry",
                           at=start + timedelta(days=2))
    assert row.status(start + timedelta(days=1)) == "active"
    assert row.status(start + timedelta(days=3)) == "revoked"
    row.revoked_at = None
    assert row.status(start + timedelta(days=11)) == "expired"
    assert session.scalar(sa.select(sa.func.count()).select_from(Consent)) == 1
