"""``flask people create-admin``: the first admin, with a hidden, confirmed password."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.audit import SYSTEM, AuditEvent
from core.people.models import Staff
from core.security import verify_password
from tests import factories as f

PASSWORD = "the-first-admin-password"


def _run(runner: Any, *args: str, typed: str) -> Any:
    return runner.invoke(args=["people", "create-admin", *args], input=typed)


def test_creates_an_admin(runner: Any, session: Any) -> None:
    result = _run(runner, "--username", "root.admin", "--name", "管理员",
                  typed=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    session.rollback()
    staff = session.scalars(sa.select(Staff)).one()
    assert (staff.username, staff.name, staff.roles) == ("root.admin", "管理员", "admin")
    assert verify_password(staff.password_hash, PASSWORD)
    assert str(staff.public_id) in result.output
    event = session.scalars(sa.select(AuditEvent)).one()
    assert (event.action, event.actor, event.object_id) == ("staff.create", SYSTEM,
                                                            str(staff.public_id))
    assert PASSWORD not in str(event.summary)


def test_asks_again_when_the_confirmation_differs(runner: Any, session: Any) -> None:
    typed = f"{PASSWORD}\nsomething-else\n{PASSWORD}\n{PASSWORD}\n"
    result = _run(runner, "--username", "root", "--name", "管理员", typed=typed)
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Staff)) == 1


def test_refuses_an_existing_username(runner: Any, session: Any) -> None:
    station = f.station(session, [f.village(session)])
    f.coordinator(session, station, username="taken")
    session.commit()
    result = _run(runner, "--username", "taken", "--name", "x", typed=f"{PASSWORD}\n" * 2)
    assert result.exit_code == 1
    assert "taken" in result.output
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Staff)) == 0
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0


def test_refuses_a_short_password_and_a_bad_username(runner: Any, session: Any) -> None:
    result = _run(runner, "--username", "root", "--name", "x", typed="short\nshort\n")
    assert result.exit_code == 2
    assert "password" in result.output
    result = _run(runner, "--username", "Root Admin", "--name", "x", typed="")
    assert result.exit_code == 2
    assert "--username" in result.output
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Staff)) == 0
