"""No input gives a 500: text PostgreSQL cannot store (NUL) or UTF-8 cannot encode (an unpaired
surrogate) is refused with 422 by every schema, wherever it sits; the database's and the
encoder's own refusals are a 4xx backstop whose log carries no request values."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DataError

from core.api import BAD_TEXT, FIXED, SERVER_OWNED, Schema
from core.api.schemas import bad_text_paths
from core.places import services
from tests import factories as f
from tests.core.test_people_helpers import API, assert_problem, build_world, creating
from tests.lending import review_factories as lending

NUL, SURROGATE = "a\u0000b", "\ud800"


def _raw(client: Any, path: str, body: str, headers: dict[str, str] | None = None) -> Any:
    """POST a body as written: JSON escapes let a lone surrogate through the wire."""
    return client.post(path, data=body.encode(), content_type="application/json",
                       headers=headers or {})


@pytest.fixture
def client(app: Any) -> Any:
    """A client that reads English: these tests compare the refusals' text."""
    english = app.test_client()
    english.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return english


@pytest.fixture
def admin(session: Any) -> dict[str, str]:
    return f.auth_headers(session, f.staff(session))


# --- the public sign-in routes of the issue ------------------------------------------------

def test_nul_in_a_login_username_is_422(client: Any) -> None:
    response = client.post(f"{API}/auth/login", json={"username": NUL, "password": "x"})

    body = assert_problem(response, 422, "validation-failed")
    assert body["errors"] == {"username": [BAD_TEXT]}


def test_surrogate_in_a_refresh_token_is_422(client: Any) -> None:
    response = _raw(client, f"{API}/auth/refresh", '{"refresh_token": "\\ud800"}')

    body = assert_problem(response, 422, "validation-failed")
    assert body["errors"] == {"refresh_token": [BAD_TEXT]}


# --- every schema, every place in a body -------------------------------------------------------

def test_nested_objects_lists_and_keys_are_walked(client: Any) -> None:
    body = ('{"username": "li", "password": "x", '
            '"device": {"id": "0192f0c4-7b9c-7cc0-8000-000000000000", "label": "\\u0000"}, '
            '"\\ud800": 1}')

    problem = assert_problem(_raw(client, f"{API}/auth/login", body), 422)

    assert problem["errors"] == {"device": {"label": [BAD_TEXT]}, "\\ud800": [BAD_TEXT]}


def test_list_items_are_reported_by_index(client: Any, admin: dict[str, str]) -> None:
    body = {"name": "站", "township_id": "0192f0c4-7b9c-7cc0-8000-000000000000",
            "village_ids": ["0192f0c4-7b9c-7cc0-8000-000000000000", NUL]}

    response = client.post(f"{API}/stations", json=body, headers=creating(admin))

    assert assert_problem(response, 422)["errors"] == {"village_ids": {"1": [BAD_TEXT]}}


def test_query_strings_are_walked_too(client: Any, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/villages?cursor=a%00b", headers=admin)

    assert assert_problem(response, 422)["errors"] == {"cursor": [BAD_TEXT]}


def _string_properties(document: dict[str, Any], ref: str) -> list[str]:
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return [name for name, prop in schema["properties"].items()
            if "string" in (prop.get("type") or []) and "format" not in prop]


def _bodies(document: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                ref = content["application/json"]["schema"]["$ref"]
                for name in _string_properties(document, ref):
                    yield method, path, name


def _signed_notification(client: Any, url: str, name: str) -> Any:
    """A payment channel's notification is refused (401) unless signed with the secret of the
    channel it names, before its body is read: ``name`` goes with a signed channel, and a NUL
    channel (no channel's, so no signature) must be turned away at the gate."""
    configured = client.application.config["NONGDAI_PAYMENT_CHANNEL_SECRETS"]
    channel, secret = next(iter((json.loads(configured) if isinstance(configured, str)
                                 else configured).items()))
    if name == "channel":
        raw = json.dumps({name: NUL}).encode()
        assert_problem(client.post(url, data=raw, content_type="application/json"), 401,
                       "payment-signature-invalid")
        return None
    raw = json.dumps({"channel": channel, name: NUL}).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return client.post(url, data=raw, content_type="application/json",
                       headers={"X-Nongdai-Signature": signature})


def test_every_string_of_every_body_refuses_nul(client: Any, session: Any) -> None:
    """One rule for every schema: each string property, alone in its body, is refused."""
    world = build_world(session)
    case = lending.application(session, world.farmer_a)  # under review, in village A
    callers = {kind: f.auth_headers(session, row) for kind, row in (
        ("admin", world.admin), ("farmer", world.farmer_a),
        ("reviewer", f.staff(session, ("reviewer",))),
        ("approver", f.staff(session, ("approver",))))}
    # a coordinator syncs from a phone: a device-bound session
    callers["coordinator"] = f.device_headers(session, world.coordinator_a)[0]
    document = client.get("/api/openapi.json").get_json()
    ids = {"farmer_id": world.farmer_a.public_id, "village_id": world.village_a.public_id,
           "station_id": world.station_a.public_id, "staff_id": world.admin.public_id,
           "coordinator_id": world.coordinator_a.public_id, "product_id": case.product.public_id,
           "application_id": case.public_id,
           # the body is refused before anything is looked up
           **{kind: uuid.uuid4() for kind in ("conflict_id", "loan_id", "disbursement_id",
                                              "payout_id", "relief_case_id")}}
    checked = 0
    for method, path, name in _bodies(document):
        url = path.format(**ids)
        roles = document["paths"][path][method].get("x-roles") or ["admin"]
        headers = next(callers[kind] for kind in callers if kind in roles)  # one who may call
        if path == f"{API}/payments/notify":
            response = _signed_notification(client, url, name)
            if response is None:
                continue
        else:
            response = client.open(url, method=method.upper(), json={name: NUL},
                                   headers=headers)
        problem = assert_problem(response, 422, "validation-failed")
        assert problem["errors"][name] == [BAD_TEXT], (method, path)
        checked += 1
    assert checked > 20


def test_the_walk_survives_json_as_deep_as_the_parser_allows() -> None:
    deep: Any = NUL
    for _ in range(5000):
        deep = [deep]

    (path,) = bad_text_paths({"x": deep})

    assert len(path) == 5001


def test_a_good_pair_of_surrogates_is_one_character_and_welcome(client: Any,
                                                                admin: dict[str, str]) -> None:
    body = '{"code": "330521", "name": "\\ud83c\\udf3e \\u519c"}'

    response = _raw(client, f"{API}/counties", body, creating(admin))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["name"] == "\U0001f33e 农"


def test_server_owned_and_fixed_fields_keep_their_messages(client: Any, session: Any) -> None:
    world = build_world(session)
    headers = f.auth_headers(session, world.admin)

    response = client.patch(f"{API}/farmers/{world.farmer_a.public_id}", headers=headers,
                            json={"id_number_masked": "x", "id_number": "x", "colour": "red"})

    assert assert_problem(response, 422)["errors"] == {
        "id_number_masked": [SERVER_OWNED], "id_number": [FIXED], "colour": ["Unknown field."]}


class _Plain(Schema):
    pass


def test_a_schema_of_any_domain_inherits_the_rule() -> None:
    with pytest.raises(Exception, match="NUL") as info:
        _Plain().load({"anything": NUL})

    assert info.value.messages == {"anything": [BAD_TEXT]}  # type: ignore[attr-defined]


# --- the backstop ------------------------------------------------------------------------------

def test_a_database_data_error_is_422_and_its_values_stay_out_of_the_log(
        client: Any, admin: dict[str, str], stream: io.StringIO,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise DataError("INSERT INTO counties (code, name) VALUES (%(code)s, %(name)s)",
                        {"code": "330521", "name": "13912345678"}, ValueError("NUL"))

    monkeypatch.setattr(services, "create_county", refused)

    response = client.post(f"{API}/counties", json={"code": "330521", "name": "x"},
                           headers=creating(admin))

    body = assert_problem(response, 422, "invalid-data")
    assert "13912345678" not in json.dumps(body)
    logged = stream.getvalue()
    assert "ValueError" in logged
    assert "13912345678" not in logged
    assert "INSERT" not in logged


def test_an_unexpected_database_error_logs_no_values(
        client: Any, admin: dict[str, str], stream: io.StringIO,
        monkeypatch: pytest.MonkeyPatch) -> None:
    phone = "139" + "12345678"  # not on the raising line: a traceback shows source lines

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise sa.exc.ProgrammingError("SELECT %(phone)s", {"phone": phone}, RuntimeError("boom"))

    monkeypatch.setattr(services, "create_county", broken)

    response = client.post(f"{API}/counties", json={"code": "330521", "name": "x"},
                           headers=creating(admin))

    assert_problem(response, 500, "internal-error")
    assert "ProgrammingError" in stream.getvalue()
    assert "13912345678" not in stream.getvalue()


def test_a_unicode_error_anywhere_is_400(client: Any, admin: dict[str, str],
                                         stream: io.StringIO,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def encodes(*_args: Any, **_kwargs: Any) -> Any:
        return SURROGATE.encode()

    monkeypatch.setattr(services, "create_county", encodes)

    response = client.post(f"{API}/counties", json={"code": "330521", "name": "x"},
                           headers=creating(admin))

    assert_problem(response, 400, "invalid-text")
    assert "UnicodeEncodeError" in stream.getvalue()
