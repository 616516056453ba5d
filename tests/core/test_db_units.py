"""core.db's transaction tools: a savepoint per unit inside one commit, reads that take no
write lock, and the rule that a side transaction never runs inside the request's own."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from core import audit, lifecycle
from core.audit import AuditEvent
from core.db import (
    SideTransactionInsideRequest,
    begin_read,
    db,
    end_read,
    savepoint,
    side_transaction,
    utcnow,
    uuid7,
)
from core.places.models import County
from tests import factories
from tests.core.test_people_helpers import API, build_world, creating


def _add_county(session: Any, code: str) -> None:
    county = County(code=code, name=f"县{code}")
    session.add(county)
    session.flush()
    audit.record(session, "county.create", county)


def _codes(session: Any) -> list[str]:
    return list(session.scalars(sa.select(County.code).order_by(County.code)))


def test_a_failed_unit_rolls_back_alone_and_the_batch_commits(session: Any) -> None:
    results = []
    for code in ("330501", "330502", "330503"):
        try:
            with savepoint(session):
                _add_county(session, code)
                if code == "330502":
                    raise ValueError("a bad operation")
            results.append("applied")
        except ValueError:
            results.append("rejected")
    session.commit()

    assert results == ["applied", "rejected", "applied"]
    assert _codes(session) == ["330501", "330503"]
    actions = session.scalars(sa.select(AuditEvent.action)).all()
    assert actions == ["county.create", "county.create"]


def test_a_failed_unit_takes_its_notes_with_it(session: Any) -> None:
    """The audit count and the after-commit callbacks a unit noted are undone with it."""
    with savepoint(session):
        _add_county(session, "330501")
    def bad_unit() -> None:
        with savepoint(session):
            _add_county(session, "330502")
            session.info.setdefault("nongdai.after_commit", []).append(lambda: None)
            raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        bad_unit()

    assert session.info[lifecycle.AUDITED] == 1
    assert session.info.get("nongdai.after_commit", []) == []
    session.rollback()


def test_a_constraint_violation_in_a_unit_leaves_the_transaction_usable(session: Any) -> None:
    _add_county(session, "330501")
    with pytest.raises(sa.exc.IntegrityError), savepoint(session):
        _add_county(session, "330501")  # the same code: unique violation
    _add_county(session, "330502")
    session.commit()

    assert _codes(session) == ["330501", "330502"]


def test_side_transactions_refuse_to_run_inside_the_requests_transaction(session: Any) -> None:
    session.scalar(sa.select(sa.func.count()).select_from(County))  # the session has begun

    with pytest.raises(SideTransactionInsideRequest), side_transaction():
        pass
    session.rollback()
    with side_transaction() as conn:  # once it has ended, fine
        assert conn.scalar(sa.select(sa.literal(1))) == 1


def test_end_read_never_undoes_a_write_transaction(session: Any) -> None:
    _add_county(session, "330501")  # a write transaction, not begun by begin_read

    end_read(session)

    session.commit()
    assert _codes(session) == ["330501"]


def test_end_read_keeps_what_was_read_and_the_write_follows(session: Any) -> None:
    _add_county(session, "330509")
    session.commit()
    begin_read(session)
    loaded = session.scalars(sa.select(County).where(County.code == "330509")).one()

    end_read(session, loaded)

    with db.engine.begin() as other:  # another writer goes ahead: the read held no lock
        other.execute(sa.insert(County).values(code="330511", name="外", public_id=uuid7(),
                                               created_at=utcnow()))
    assert "name" in sa.inspect(loaded).dict  # still loaded, nothing to reload
    _add_county(session, "330510")
    session.commit()
    assert _codes(session) == ["330509", "330510", "330511"]


def test_a_twin_registered_between_the_check_and_the_write_is_a_conflict(
        app: Any, client: Any, session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.people import services  # noqa: PLC0415

    world = build_world(session)
    headers = factories.auth_headers(session, world.coordinator_a)
    body = {"name": "王五", "phone": "13712345678", "id_number": factories.id_number(),
            "village_id": str(world.village_a.public_id)}
    twin = factories.farmer(session, world.village_b)
    twin_row = {c.name: getattr(twin, c.name) for c in twin.__table__.columns if c.name != "id"}
    session.rollback()
    real_end_read = services.end_read

    def twin_commits_meanwhile(db_session: Any, *keep: Any) -> None:
        real_end_read(db_session, *keep)
        row = {**twin_row, "id_number_hash": services.id_number_hash(body["id_number"])}
        with db.engine.begin() as conn:
            conn.execute(sa.insert(twin.__table__).values(**row))

    monkeypatch.setattr(services, "end_read", twin_commits_meanwhile)

    response = client.post(f"{API}/farmers", json=body, headers=creating(headers))

    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "farmer.create")) == 0
