"""The PII test: a plaintext resident ID number is never at rest, in a log or in a response.

Farmers are registered through the API with known ID numbers (one sent with a lowercase x),
then looked up, listed, refused as duplicates and refused for invalid input. Afterwards the
plaintext (upper- and lowercase x, and its first 17 digits) must appear in no byte of the
SQLite database and its -wal/-shm files, in no row of any table (either backend), in no log
record (DEBUG and up, SQL statements included) and on neither stdout nor stderr, while the
masked form appears in the responses and in the database.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.db import db
from core.people import idnumber
from tests import factories as f
from tests.core.test_people_helpers import API, World, build_world, creating

NUMBERS = [idnumber.make("330521", date(1985, 3, 9), 8),   # ends in X
           idnumber.make("330521", date(1962, 11, 30), 16),
           idnumber.make("441302", date(2001, 2, 28), 24)]
assert NUMBERS[0].endswith("X")
INVALID = NUMBERS[1][:17] + ("0" if NUMBERS[1][17] != "0" else "1")  # wrong check digit


def _needles() -> list[str]:
    found = []
    for number in [*NUMBERS, INVALID]:
        found += [number, number.lower(), number[:17]]
    return found


def _exercise(client: Any, session: Any, world: World) -> list[Any]:
    coordinator = f.auth_headers(session, world.coordinator_a)
    admin = f.auth_headers(session, world.admin)
    village = str(world.village_a.public_id)
    responses = []

    def register(number: str, phone: str, **extra: Any) -> Any:
        body = {"name": "赵六", "phone": phone, "id_number": number, "village_id": village,
                **extra}
        response = client.post(f"{API}/farmers", json=body, headers=creating(coordinator))
        responses.append(response)
        return response

    created = [register(NUMBERS[0].lower(), "13800000001"),
               register(NUMBERS[1], "13800000002")]
    assert [r.status_code for r in created] == [201, 201]
    assert register(NUMBERS[0], "13800000003").status_code == 409  # duplicate
    assert register(NUMBERS[2], "2380000000").status_code == 422  # bad phone
    assert register(NUMBERS[2], "13800000004", note="x").status_code == 422  # unknown field
    assert register(INVALID, "13800000005").status_code == 422  # bad check digit
    for number, headers, status in [(NUMBERS[0].lower(), coordinator, 200),
                                    (NUMBERS[1], admin, 200), (NUMBERS[2], admin, 404),
                                    (INVALID, admin, 422)]:
        response = client.post(f"{API}/farmers/lookup", json={"id_number": number},
                               headers=headers)
        assert response.status_code == status
        responses.append(response)
    farmer_id = created[0].get_json()["id"]
    for path in ("/farmers", f"/farmers/{farmer_id}", f"/farmers/{farmer_id}/consents"):
        responses.append(client.get(f"{API}{path}", headers=admin))
    responses.append(client.patch(f"{API}/farmers/{farmer_id}", json={"name": "赵六六"},
                                  headers=coordinator))
    assert all(r.status_code < 500 for r in responses)
    return responses


def _database_text() -> str:
    """Every value of every row of every table, as text."""
    parts = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            parts += [repr(tuple(row)) for row in conn.execute(sa.select(table))]
    return "\n".join(parts)


def _database_files() -> bytes:
    database = db.engine.url.database
    if db.engine.dialect.name != "sqlite" or not database:
        return b""
    paths = [Path(database), Path(f"{database}-wal"), Path(f"{database}-shm")]
    assert paths[0].exists()
    assert paths[1].exists()
    return b"".join(path.read_bytes() for path in paths if path.exists())


def test_plaintext_id_numbers_are_nowhere(client: Any, session: Any,
                                          caplog: pytest.LogCaptureFixture,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # SQL and its parameters too
    world = build_world(session)
    responses = _exercise(client, session, world)
    session.rollback()

    bodies = [r.get_data(as_text=True) for r in responses]
    masked = [idnumber.mask(n) for n in NUMBERS[:2]]
    assert masked[0] in bodies[0]
    assert masked[1] in bodies[1]
    assert masked[0] in "".join(bodies[-4:])  # list, one farmer, patch
    stored = _database_text()
    files = _database_files()
    assert masked[0] in stored
    logs = "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in caplog.records)
    assert "INSERT INTO farmers" in logs
    assert "/api/v1/farmers/lookup" in logs
    assert masked[0] in logs  # the INSERT's parameters were logged, masked column included
    output = capsys.readouterr()

    for needle in _needles():
        for where, text in [("responses", "\n".join(bodies)), ("database rows", stored),
                            ("logs", logs), ("stdout", output.out), ("stderr", output.err)]:
            assert needle not in text, f"{needle} found in {where}"
        assert needle.encode() not in files, f"{needle} found in the database files"
    if db.engine.dialect.name == "sqlite":
        assert masked[0].encode() in files
