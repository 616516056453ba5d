"""Every error is ``application/problem+json`` with a stable code (core.errors, core.lifecycle).

Exercised on real endpoints: POST /api/v1/villages (admin) and POST /api/v1/counties.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import sqlalchemy as sa

from core.api import SERVER_OWNED
from core.places import services
from core.places.models import County, Village
from tests import factories

VILLAGES = "/api/v1/villages"
COUNTIES = "/api/v1/counties"
FIELDS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body.keys() >= FIELDS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:nongdai:problem:{code}"
    assert body["request_id"] == response.headers["X-Request-Id"]
    return body


@pytest.fixture
def township(session: Any) -> Any:
    return factories.township(session, factories.county(session, code="330521"),
                              code="330521100")


@pytest.fixture
def admin(session: Any, township: Any) -> dict[str, str]:
    return factories.auth_headers(session, factories.staff(session))


def _count(session: Any, model: Any) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(model)))


# --- bodies ------------------------------------------------------------------------------------

def test_malformed_json(client: Any, admin: dict[str, str]) -> None:
    response = client.post(VILLAGES, data=b'{"code": "3305', headers=admin,
                           content_type="application/json")

    assert_problem(response, 400, "malformed-json")


def test_wrong_field_types_are_reported_by_field(client: Any, admin: dict[str, str]) -> None:
    response = client.post(VILLAGES, json={"code": 330521100201, "name": ["村"]}, headers=admin)

    body = assert_problem(response, 422, "validation-failed")
    assert set(body["errors"]) == {"code", "name"}


def test_missing_fields_are_reported_by_field(client: Any, admin: dict[str, str]) -> None:
    body = assert_problem(client.post(VILLAGES, json={}, headers=admin), 422, "validation-failed")

    assert set(body["errors"]) == {"code", "name"}


def test_unknown_fields_are_refused(client: Any, admin: dict[str, str]) -> None:
    response = client.post(VILLAGES, headers=admin,
                           json={"code": "330521100201", "name": "新村", "colour": "red"})

    body = assert_problem(response, 422, "validation-failed")
    assert set(body["errors"]) == {"colour"}


@pytest.mark.parametrize("field", ["id", "township_id", "created_at"])
def test_server_owned_fields_are_refused(client: Any, session: Any, admin: dict[str, str],
                                         township: Any, field: str) -> None:
    value = str(township.public_id) if field != "created_at" else "2024-01-01T00:00:00Z"
    response = client.post(VILLAGES, headers={**admin, "Accept-Language": "en"},
                           json={"code": "330521100201", "name": "新村", field: value})

    body = assert_problem(response, 422, "validation-failed")
    assert body["errors"] == {field: [SERVER_OWNED]}
    assert _count(session, Village) == 0


def test_oversized_body(client: Any, app: Any, admin: dict[str, str]) -> None:
    padding = "x" * app.config["MAX_CONTENT_LENGTH"]

    response = client.post(VILLAGES, json={"code": "330521100201", "name": padding},
                           headers=admin)

    assert_problem(response, 413, "payload-too-large")


def _chunked(client: Any, admin: dict[str, str], body: bytes) -> Any:
    """A body without Content-Length, as a server that decodes chunked transfer passes it on."""
    return client.post(VILLAGES, input_stream=io.BytesIO(body),
                       headers={**admin, "Transfer-Encoding": "chunked",
                                "Content-Type": "application/json"},
                       environ_overrides={"wsgi.input_terminated": True})


def test_oversized_chunked_body(client: Any, app: Any, admin: dict[str, str]) -> None:
    padding = "x" * app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps({"code": "330521100201", "name": padding}).encode()

    assert_problem(_chunked(client, admin, body), 413, "payload-too-large")


def test_chunked_body_within_limit_is_read(client: Any, admin: dict[str, str]) -> None:
    body = json.dumps({"code": "330521100201", "name": "新村"}).encode()

    assert _chunked(client, admin, body).status_code == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_non_json_body(client: Any, admin: dict[str, str], content_type: str) -> None:
    response = client.post(VILLAGES, data=b"code=330521100201", headers=admin,
                           content_type=content_type)

    assert_problem(response, 415, "unsupported-media-type")


def test_deeply_nested_json(client: Any, admin: dict[str, str]) -> None:
    body = b"[" * 100_000 + b"]" * 100_000

    response = client.post(VILLAGES, data=body, headers=admin, content_type="application/json")

    assert_problem(response, 400, "malformed-json")


# --- routing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/no-such-page"])
def test_unknown_route(client: Any, path: str) -> None:
    assert_problem(client.get(path), 404, "not-found")


def test_wrong_method_lists_the_allowed_ones(client: Any, admin: dict[str, str]) -> None:
    response = client.delete(COUNTIES, headers=admin)

    assert_problem(response, 405, "method-not-allowed")
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}


# --- who is calling ----------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic dXNlcjpwdw==",
                                           "Bearer "])
def test_missing_or_invalid_token(client: Any, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = client.post(VILLAGES, json={"code": "330521100201", "name": "新村"},
                           headers=headers)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] in {"unauthorized", "invalid-token"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_role(client: Any, session: Any, township: Any) -> None:
    reviewer = factories.auth_headers(session, factories.staff(session, roles=("reviewer",)))

    response = client.post(VILLAGES, json={"code": "330521100201", "name": "新村"},
                           headers=reviewer)

    assert_problem(response, 403, "forbidden")
    assert _count(session, Village) == 0


# --- failures on our side ----------------------------------------------------------------------

def test_unexpected_exception_is_a_500_that_tells_nothing(
        client: Any, session: Any, admin: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(db_session: Any, *, code: str, name: str) -> Village:
        db_session.add(County(code="339999", name="half-written"))
        db_session.flush()
        raise RuntimeError(f"secret internals {code} {name}")

    monkeypatch.setattr(services, "create_village", broken)

    response = client.post(VILLAGES, json={"code": "330521100201", "name": "新村"},
                           headers=admin)

    body = assert_problem(response, 500, "internal-error")
    assert "secret" not in response.get_data(as_text=True)
    assert "RuntimeError" not in body["detail"]
    assert session.scalar(sa.select(County).where(County.code == "339999")) is None


def test_integrity_error_at_commit_is_a_409(client: Any, session: Any, admin: dict[str, str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def racing(db_session: Any, *, code: str, name: str) -> County:
        # Another request inserted this code (the fixture's county) after our check: the
        # clash shows only at commit.
        from core import audit  # noqa: PLC0415

        county = County(code=code, name=name)
        db_session.add(county)
        audit.record(db_session, "county.create", county)
        return county

    monkeypatch.setattr(services, "create_county", racing)

    response = client.post(COUNTIES, json={"code": "330521", "name": "德清县"}, headers=admin)

    assert_problem(response, 409, "conflict")
    assert session.scalars(sa.select(County.name).where(County.code == "330521")).all() == [
        "德清县"]


# --- one title per code ------------------------------------------------------------------------

def _every_error_class(base: type) -> list[type]:
    found = []
    for sub in base.__subclasses__():
        found.extend([sub, *_every_error_class(sub)])
    return found


def _raised(cls: type) -> Any:
    """An instance of an error class, whatever its constructor asks for."""
    from core.errors import NongdaiError  # noqa: PLC0415

    error = cls.__new__(cls)
    NongdaiError.__init__(error)
    return error


def _answers(app: Any, language: str) -> list[dict[str, Any]]:
    """A problem for every code the app can answer: each domain error class (every domain is
    imported by create_app) and each HTTP error werkzeug can raise."""
    from werkzeug.exceptions import default_exceptions  # noqa: PLC0415

    from core import errors  # noqa: PLC0415

    with app.test_request_context("/", headers={"Accept-Language": language}):
        responses = [errors._from_domain(_raised(cls)) for cls in
                     [errors.NongdaiError, *_every_error_class(errors.NongdaiError)]]
        responses += [errors._from_http(exc()) for status, exc in default_exceptions.items()
                      if status >= 400]
    return [json.loads(response.data) for response in responses]


def _titles_in(app: Any, language: str) -> dict[str, str]:
    """The registry's title of every code, as a request in ``language`` renders it."""
    from core.errors import problem_titles, translated_title  # noqa: PLC0415

    with app.test_request_context("/", headers={"Accept-Language": language}):
        return {code: translated_title(code) for code in problem_titles()}


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_every_code_has_one_title(app: Any, client: Any, admin: dict[str, str],
                                  language: str) -> None:
    headers = {**admin, "Accept-Language": language}
    bodies = _answers(app, language)
    bodies.append(client.post(VILLAGES, json={}, headers=headers).get_json())  # webargs' 422
    bodies.append(client.post(VILLAGES, data=b"{", headers=headers,
                              content_type="application/json").get_json())

    titles: dict[str, set[str]] = {}
    for body in bodies:
        titles.setdefault(body["code"], set()).add(body["title"])
    assert {code: seen for code, seen in titles.items() if len(seen) > 1} == {}
    expected = _titles_in(app, language)
    assert {code: seen.pop() for code, seen in titles.items()} == {
        code: expected[code] for code in titles}
    assert titles.keys() >= {"validation-failed", "malformed-json", "method-not-allowed",
                             "payload-too-large", "farmer-exists", "idempotency-key-reused"}


def test_validation_failed_has_the_title_of_the_domain_error(client: Any,
                                                             admin: dict[str, str]) -> None:
    from core.errors import ValidationFailed  # noqa: PLC0415
    from core.i18n import msgid  # noqa: PLC0415

    webargs = client.post(VILLAGES, json={}, headers={**admin, "Accept-Language": "en"})

    assert webargs.get_json()["title"] == msgid(ValidationFailed.title) == (
        "The request has invalid fields")
    assert client.post(VILLAGES, json={}, headers=admin).get_json()["title"] == "请求中有无效字段"


def test_a_second_title_for_a_code_is_refused_at_import() -> None:
    from core.errors import Conflict  # noqa: PLC0415

    with pytest.raises(TypeError, match="already has the title"):
        type("Clash", (Conflict,), {"title": "Something else"})

    with pytest.raises(TypeError, match="already has the title"):
        type("Clash", (Conflict,), {"code": "payload-too-large", "title": "Too big"})


def test_the_same_title_again_is_fine() -> None:
    from core.errors import Conflict  # noqa: PLC0415

    again = type("Again", (Conflict,), {"code": "conflict", "title": Conflict.title})

    assert again.title == Conflict.title


def test_a_status_werkzeug_has_no_phrase_for_still_has_one_title(app: Any) -> None:
    from werkzeug.exceptions import HTTPException  # noqa: PLC0415

    from core import errors  # noqa: PLC0415

    class Odd(HTTPException):
        code = 599

    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        body = json.loads(errors._from_http(Odd()).data)

    assert (body["code"], body["title"]) == ("http-error", "HTTP error")
