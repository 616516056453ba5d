"""The error log never carries a request's parameters: a failing statement's values (phone
numbers, password hashes) stay out of exception texts and so out of every log line."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from core.places import services
from tests import factories

PHONE = "13812345678"
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


def test_a_failed_statement_logs_no_parameters(client: Any, session: Any,
                                               caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    headers = factories.auth_headers(session, factories.staff(session))

    def broken(db_session: Any, **_kwargs: Any) -> Any:
        db_session.execute(sa.text("SELECT 1 FROM no_such_table WHERE phone = :phone "
                                   "AND secret = :hash"), {"phone": PHONE, "hash": HASH})

    monkeypatch.setattr(services, "create_county", broken)
    caplog.set_level(logging.DEBUG)

    response = client.post("/api/v1/counties", json={"code": "330521", "name": "德清县"},
                           headers=headers)

    assert response.status_code in {500, 503}  # 503 on SQLite: OperationalError
    assert response.mimetype == "application/problem+json"
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures  # the failure is logged ...
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {vars(r)!r}"
                       for r in caplog.records)
    assert PHONE not in logged  # ... without what was sent
    assert HASH not in logged
    assert PHONE not in response.get_data(as_text=True)
