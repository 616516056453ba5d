"""Idempotency keys (core.idempotency) on a real creating endpoint, POST /api/v1/counties."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core import idempotency, jobs
from core.audit import AuditEvent
from core.db import db, utcnow
from core.idempotency import IdempotencyRecord
from core.places import services
from core.places.models import County
from tests import factories

COUNTIES = "/api/v1/counties"
BODY = {"code": "330521", "name": "德清县"}
RAW = json.dumps(BODY, ensure_ascii=False).encode()


@pytest.fixture
def admin(session: Any) -> Any:
    return factories.staff(session)


@pytest.fixture
def headers(session: Any, admin: Any) -> dict[str, str]:
    return factories.auth_headers(session, admin)


def _post(client: Any, headers: dict[str, str], body: Any = BODY, key: str | None = "key-1",
          ) -> Any:
    extra = {} if key is None else {"Idempotency-Key": key}
    return client.post(COUNTIES, json=body, headers={**headers, **extra})


def _count(session: Any, model: Any, *where: Any) -> int:
    n = session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))
    session.rollback()  # end the read: the next request claims its key on another connection
    return int(n)


def _counties(session: Any) -> int:
    return _count(session, County)


def _audits(session: Any) -> int:
    return _count(session, AuditEvent, AuditEvent.action == "county.create")


def _record(session: Any, admin: Any, *, lifetime: timedelta = timedelta(hours=48),
            body: bytes = RAW, key: str = "key-1") -> None:
    """An answer stored by an earlier request (committed)."""
    now = utcnow()
    session.add(IdempotencyRecord(
        scope=f"staff:{admin.public_id}", key=key, method="POST", path=COUNTIES,
        request_hash=idempotency.request_hash("POST", COUNTIES, body), response_status=201,
        response_body='{"stored": true}', response_headers={"Content-Type": "application/json"},
        created_at=now, expires_at=now + lifetime))
    session.commit()


def _assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == code
    return body


# --- replay ------------------------------------------------------------------------------------

def test_same_key_same_body_replays_the_first_response(client: Any, session: Any,
                                                       headers: dict[str, str]) -> None:
    first = _post(client, headers)
    second = _post(client, headers)

    assert first.status_code == second.status_code == 201
    assert second.get_data() == first.get_data()
    assert second.mimetype == first.mimetype == "application/json"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert _counties(session) == 1
    assert _audits(session) == 1
    assert _count(session, IdempotencyRecord) == 1


def test_a_replay_reads_and_writes_nothing_else(app: Any, client: Any,
                                                headers: dict[str, str]) -> None:
    _post(client, headers)
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split(maxsplit=1)[0].upper())

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        replay = _post(client, headers)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)

    assert replay.headers["Idempotent-Replayed"] == "true"
    assert not {"INSERT", "UPDATE", "DELETE"} & set(statements), statements


def test_replay_does_not_excuse_the_next_request_from_auditing(
        client: Any, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    _post(client, headers)
    _post(client, headers)  # the replay sets no_audit_needed for itself only

    def unaudited(db_session: Any, *, code: str, name: str) -> County:
        county = County(code=code, name=name)
        db_session.add(county)
        db_session.flush()
        return county

    monkeypatch.setattr(services, "create_county", unaudited)
    refused = _post(client, headers, {"code": "330599", "name": "某县"}, key=None)

    _assert_problem(refused, 500, "internal-error")


def test_key_order_and_whitespace_do_not_change_the_request(client: Any, session: Any,
                                                            headers: dict[str, str]) -> None:
    compact = b'{"code":"330521","name":"\xe5\xbe\xb7\xe6\xb8\x85\xe5\x8e\xbf"}'
    spaced = b'{\n  "name" : "\xe5\xbe\xb7\xe6\xb8\x85\xe5\x8e\xbf",\n  "code": "330521"\n}'
    send = {**headers, "Idempotency-Key": "k", "Content-Type": "application/json"}

    first = client.post(COUNTIES, data=compact, headers=send)
    second = client.post(COUNTIES, data=spaced, headers=send)

    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert _counties(session) == 1


# --- refusals ----------------------------------------------------------------------------------

def test_same_key_different_body_is_refused(client: Any, session: Any,
                                            headers: dict[str, str]) -> None:
    assert _post(client, headers).status_code == 201

    reused = _post(client, headers, {"code": "330522", "name": "长兴县"})

    _assert_problem(reused, 422, "idempotency-key-reused")
    assert _counties(session) == 1
    assert _audits(session) == 1


def test_same_key_on_another_path_is_refused(client: Any, session: Any,
                                             headers: dict[str, str]) -> None:
    assert _post(client, headers).status_code == 201

    other = client.post("/api/v1/townships", json=BODY,
                        headers={**headers, "Idempotency-Key": "key-1"})

    _assert_problem(other, 422, "idempotency-key-reused")


def test_stored_answer_with_another_body_is_refused(client: Any, session: Any, admin: Any,
                                                    headers: dict[str, str]) -> None:
    _record(session, admin, body=b'{"code": "999999", "name": "x"}')

    _assert_problem(_post(client, headers), 422, "idempotency-key-reused")


def test_lone_surrogate_in_the_body_is_a_problem_not_a_crash(
        client: Any, session: Any, headers: dict[str, str]) -> None:
    raw = b'{"code": "330521", "name": "\\ud800"}'
    send = {**headers, "Idempotency-Key": "k", "Content-Type": "application/json"}

    response = client.post(COUNTIES, data=raw, headers=send)

    assert 400 <= response.status_code < 500
    assert response.mimetype == "application/problem+json"
    assert _count(session, IdempotencyRecord) == 0


@pytest.mark.parametrize("key", ["", "a" * 201, "tab\there", "café"])
def test_invalid_key_is_a_problem(client: Any, session: Any, headers: dict[str, str],
                                  key: str) -> None:
    _assert_problem(_post(client, headers, key=key), 400, "idempotency-key-invalid")
    assert _counties(session) == 0
    assert _count(session, IdempotencyRecord) == 0


def test_longest_key_is_accepted(client: Any, headers: dict[str, str]) -> None:
    key = "".join(chr(c) for c in range(0x20, 0x7F)) * 2 + "~" * 10  # 200 printable characters

    assert len(key) == 200
    assert _post(client, headers, key=key).status_code == 201
    assert _post(client, headers, key=key).headers["Idempotent-Replayed"] == "true"


# --- keys that ended without a result -----------------------------------------------------

def test_expired_record_is_forgotten(client: Any, session: Any, admin: Any,
                                     headers: dict[str, str]) -> None:
    _record(session, admin, lifetime=timedelta(seconds=-1), body=b'{"an": "older request"}')

    response = _post(client, headers)

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert _counties(session) == 1


def test_failed_request_releases_the_key(client: Any, session: Any,
                                         headers: dict[str, str]) -> None:
    assert _post(client, headers, key=None).status_code == 201  # the county exists already

    duplicate = _post(client, headers)
    assert duplicate.status_code == 409
    assert _count(session, IdempotencyRecord) == 0

    retried = _post(client, headers, {"code": "330522", "name": "长兴县"})
    assert retried.status_code == 201
    assert _counties(session) == 2


def test_invalid_body_releases_the_key(client: Any, session: Any,
                                       headers: dict[str, str]) -> None:
    invalid = _post(client, headers, {"code": "33", "name": "德清县"})
    _assert_problem(invalid, 422, "validation-failed")
    assert _count(session, IdempotencyRecord) == 0

    assert _post(client, headers).status_code == 201


def test_exception_in_the_view_releases_the_key(client: Any, session: Any,
                                                headers: dict[str, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> County:
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "create_county", broken)
    _assert_problem(_post(client, headers), 500, "internal-error")
    assert _count(session, IdempotencyRecord) == 0

    monkeypatch.undo()
    assert _post(client, headers).status_code == 201


def test_failed_commit_stores_nothing_and_releases_the_key(
        client: Any, session: Any, headers: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def unaudited(db_session: Any, *, code: str, name: str) -> County:
        county = County(code=code, name=name)  # no audit event: the commit is refused
        db_session.add(county)
        db_session.flush()
        return county

    monkeypatch.setattr(services, "create_county", unaudited)
    _assert_problem(_post(client, headers), 500, "internal-error")
    assert _count(session, IdempotencyRecord) == 0
    assert _counties(session) == 0

    monkeypatch.undo()
    retried = _post(client, headers)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


def test_no_key_no_record(client: Any, session: Any, headers: dict[str, str]) -> None:
    assert _post(client, headers, key=None).status_code == 201
    assert _post(client, headers, key=None).status_code == 409
    assert _count(session, IdempotencyRecord) == 0


def test_a_twin_that_commits_first_is_replayed_and_this_work_undone(
        client: Any, session: Any, admin: Any, headers: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_hold = idempotency._hold
    fp = idempotency.Fingerprint(f"staff:{admin.public_id}", "key-1", "POST", COUNTIES,
                                 idempotency.request_hash("POST", COUNTIES, RAW))
    session.commit()

    def twin_commits_meanwhile(db_session: Any, held: bool) -> None:
        real_hold(db_session, held)
        with db.engine.begin() as conn:  # another worker answers the same key and commits
            conn.execute(sa.insert(IdempotencyRecord).values(
                scope=fp.scope, key=fp.key, method=fp.method, path=fp.path,
                request_hash=fp.request_hash, response_status=201,
                response_body='{"twin": true}',
                response_headers={"Content-Type": "application/json"},
                created_at=utcnow(), expires_at=utcnow() + timedelta(hours=48)))

    monkeypatch.setattr(idempotency, "_hold", twin_commits_meanwhile)

    response = _post(client, headers)

    assert response.status_code == 201
    assert response.headers["Idempotent-Replayed"] == "true"
    assert response.get_json() == {"twin": True}
    assert _counties(session) == 0  # this request's own county was rolled back
    assert _audits(session) == 0


# --- scope -------------------------------------------------------------------------------------

def test_keys_are_scoped_per_caller(client: Any, session: Any, headers: dict[str, str]) -> None:
    other = factories.auth_headers(session, factories.staff(session))

    mine = _post(client, headers, key="same")
    theirs = _post(client, other, {"code": "330522", "name": "长兴县"}, key="same")

    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert _counties(session) == 2
    assert _count(session, IdempotencyRecord) == 2


# --- purge -------------------------------------------------------------------------------------

def test_purge_removes_only_expired_records(app: Any, session: Any, admin: Any) -> None:
    _record(session, admin, key="old", lifetime=timedelta(seconds=-1))
    _record(session, admin, key="young", lifetime=timedelta(hours=1))

    assert jobs.run("idempotency.purge") == "ok"

    keys = session.scalars(sa.select(IdempotencyRecord.key)).all()
    assert keys == ["young"]


def test_records_live_at_least_a_day(client: Any, session: Any, app: Any,
                                     headers: dict[str, str]) -> None:
    app.config["NONGDAI_IDEMPOTENCY_HOURS"] = 1
    before = utcnow()

    _post(client, headers)

    record = session.scalars(sa.select(IdempotencyRecord)).one()
    assert record.expires_at >= before + timedelta(hours=24)


# --- documentation -----------------------------------------------------------------------------

def test_openapi_documents_the_header(client: Any) -> None:
    spec = client.get("/api/openapi.json").get_json()

    create, listing = spec["paths"][COUNTIES]["post"], spec["paths"][COUNTIES]["get"]
    assert [p["in"] for p in create["parameters"] if p["name"] == "Idempotency-Key"] == ["header"]
    assert "x-nongdai-idempotent" not in create
    assert all(p["name"] != "Idempotency-Key" for p in listing.get("parameters", []))


# --- concurrency (PostgreSQL: real row locks and unique checks across connections) --------------

THREADS = 8


def _fire_together(app: Any, requests: list[tuple[dict[str, str], Any]]) -> list[Any]:
    """Send every request at once from its own thread, as a threaded server would.

    The worker threads push no app context, so each request pushes its own: its own ``g``
    and, since Flask-SQLAlchemy scopes sessions by app context, its own session and
    connection (the test's session stays out of it).
    """
    barrier = threading.Barrier(len(requests))

    def fire(request: tuple[dict[str, str], Any]) -> Any:
        send, body = request
        client = app.test_client()
        barrier.wait()
        return client.post(COUNTIES, json=body, headers=send)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(fire, requests))


@pytest.mark.postgres
def test_concurrent_retries_create_once(app: Any, session: Any, headers: dict[str, str]) -> None:
    send = {**headers, "Idempotency-Key": "together"}

    responses = _fire_together(app, [(send, BODY)] * THREADS)

    created = [r for r in responses if r.status_code == 201]
    originals = [r for r in created if "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1
    assert {r.get_data() for r in created} == {originals[0].get_data()}
    assert all(r.get_json()["code"] == "idempotency-in-progress"
               for r in responses if r.status_code != 201)
    assert len(created) + sum(r.status_code == 409 for r in responses) == THREADS
    assert _counties(session) == 1
    assert _audits(session) == 1


@pytest.mark.postgres
def test_key_held_by_a_running_request_gets_409_with_retry_after(
        app: Any, client: Any, session: Any, admin: Any, headers: dict[str, str]) -> None:
    fingerprint = idempotency.Fingerprint(f"staff:{admin.public_id}", "key-1", "POST", COUNTIES,
                                          idempotency.request_hash("POST", COUNTIES, RAW))
    with app.app_context(), db.engine.connect() as other:  # a worker mid-request holds the key
        other.execute(sa.select(sa.func.pg_advisory_xact_lock(fingerprint.lock_id())))

        response = _post(client, headers)

        _assert_problem(response, 409, "idempotency-in-progress")
        assert response.headers["Retry-After"] == "1"
        other.rollback()
    assert _counties(session) == 0
    assert _post(client, headers).status_code == 201  # the key is free once that request ends


@pytest.mark.postgres
def test_concurrent_different_bodies_with_one_key_create_once(
        app: Any, session: Any, headers: dict[str, str]) -> None:
    send = {**headers, "Idempotency-Key": "together"}
    bodies = [{"code": f"3305{n:02d}", "name": f"县{n}"} for n in range(THREADS)]

    responses = _fire_together(app, [(send, body) for body in bodies])

    assert sum(r.status_code == 201 for r in responses) == 1
    codes = {r.get_json()["code"] for r in responses if r.status_code != 201}
    assert codes <= {"idempotency-key-reused", "idempotency-in-progress"}
    assert _counties(session) == 1
    assert _audits(session) == 1
