"""Strict types and one way with whitespace (core.api): numbers and booleans in a JSON body are
JSON numbers and booleans; query strings are converted, within their range; names and
identifiers are trimmed before they are validated."""

from __future__ import annotations

from datetime import date
from typing import Any

import marshmallow as ma
import pytest

from core.api import QuerySchema, Schema
from core.auth.schemas import LoginSchema
from core.people import idnumber
from tests import factories as f
from tests.core.test_people_helpers import API, World, assert_problem, build_world, creating

NUMBER = idnumber.make("330521", date(1985, 3, 9), 8)


def full_width(digits: str) -> str:
    return "".join(chr(0xFF10 + int(d)) for d in digits)


@pytest.fixture
def world(session: Any) -> World:
    return build_world(session)


@pytest.fixture
def admin(session: Any, world: World) -> dict[str, str]:
    return f.auth_headers(session, world.admin)


# --- numbers and booleans ----------------------------------------------------------------------

@pytest.mark.parametrize("days", ["30", 1.5, True, None, [30], float("inf")])
def test_valid_days_must_be_a_json_integer(client: Any, world: World, admin: dict[str, str],
                                           days: Any) -> None:
    response = client.post(f"{API}/farmers/{world.farmer_a.public_id}/consents",
                           json={"purpose": "insurance", "valid_days": days},
                           headers=creating(admin))

    assert list(assert_problem(response, 422, "validation-failed")["errors"]) == ["valid_days"]


def test_an_integral_float_is_the_integer_it_equals(client: Any, world: World,
                                                    admin: dict[str, str]) -> None:
    """JSON (and JSON Schema) do not tell 30 from 30.0."""
    response = client.post(f"{API}/farmers/{world.farmer_a.public_id}/consents",
                           json={"purpose": "insurance", "valid_days": 30.0},
                           headers=creating(admin))

    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("value", [0, 1, "true", "false", "yes", None])
def test_is_active_must_be_a_json_boolean(client: Any, world: World, admin: dict[str, str],
                                          value: Any) -> None:
    for path in (f"coordinators/{world.coordinator_a.public_id}", f"staff/{world.admin.public_id}"):
        response = client.patch(f"{API}/{path}", json={"is_active": value}, headers=admin)

        assert list(assert_problem(response, 422)["errors"]) == ["is_active"]


def test_json_booleans_are_still_booleans(client: Any, world: World,
                                          admin: dict[str, str]) -> None:
    url = f"{API}/coordinators/{world.coordinator_a.public_id}"

    assert client.patch(url, json={"is_active": False}, headers=admin).get_json()[
        "is_active"] is False


class _Counted(Schema):
    n = ma.fields.Integer()
    flags = ma.fields.List(ma.fields.Boolean())


class _CountedQuery(QuerySchema):
    n = ma.fields.Integer()
    flag = ma.fields.Boolean()


def test_strictness_is_the_base_schemas_and_reaches_list_items() -> None:
    with pytest.raises(ma.ValidationError) as info:
        _Counted().load({"n": "3", "flags": [True, 1]})

    assert set(info.value.messages) == {"n", "flags"}  # type: ignore[arg-type]
    assert _Counted().load({"n": 3, "flags": [True, False]}) == {"n": 3, "flags": [True, False]}


def test_query_schemas_convert_text() -> None:
    assert _CountedQuery().load({"n": "3", "flag": "true"}) == {"n": 3, "flag": True}


# --- page sizes --------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", ["0", "-1", "201", "1.5", "ten"])
def test_a_limit_out_of_range_is_422_not_clamped(client: Any, admin: dict[str, str],
                                                 limit: str) -> None:
    response = client.get(f"{API}/villages?limit={limit}", headers=admin)

    assert list(assert_problem(response, 422, "validation-failed")["errors"]) == ["limit"]


def test_the_limit_range_follows_the_setting(app: Any, client: Any,
                                             admin: dict[str, str]) -> None:
    app.config["NONGDAI_PAGE_SIZE_MAX"] = 1

    assert client.get(f"{API}/villages?limit=2", headers=admin).status_code == 422
    page = client.get(f"{API}/villages?limit=1", headers=admin).get_json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]


# --- whitespace --------------------------------------------------------------------------------

def _register(client: Any, headers: dict[str, str], world: World, **body: Any) -> Any:
    body = {"name": "王五", "phone": "13712345678", "id_number": NUMBER,
            "village_id": str(world.village_a.public_id), **body}
    return client.post(f"{API}/farmers", json=body, headers=creating(headers))


def test_identifiers_and_names_are_trimmed_alike(client: Any, world: World,
                                                 admin: dict[str, str]) -> None:
    response = _register(client, admin, world, name="\u3000王五 ", phone=" 13712345678\t",
                         id_number=f" {NUMBER.lower()}\n")

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["name"], body["phone"]) == ("王五", "13712345678")
    assert body["id_number_masked"].endswith("008X")


def test_a_blank_name_is_refused_as_the_empty_name_it_trims_to(
        client: Any, world: World, admin: dict[str, str]) -> None:
    problem = assert_problem(_register(client, admin, world, name=" \t "), 422)

    assert problem["errors"] == {"name": ["Length must be between 1 and 100."]}


@pytest.mark.parametrize(("field", "value"), [
    ("phone", full_width("13712345678")),  # as a Chinese input method types digits
    ("phone", "1371234567\u0661"),  # an Arabic-Indic digit: \\d would take it
    ("phone", "137 1234 5678"),
    ("id_number", "٣" * 18),
])
def test_identifiers_are_ascii_digits(client: Any, world: World, admin: dict[str, str],
                                      field: str, value: str) -> None:
    problem = assert_problem(_register(client, admin, world, **{field: value}), 422)

    assert list(problem["errors"]) == [field]


def test_division_codes_are_trimmed_and_ascii(client: Any, admin: dict[str, str]) -> None:
    refused = client.post(f"{API}/counties", json={"code": full_width("330521"), "name": "x"},
                          headers=creating(admin))
    created = client.post(f"{API}/counties", json={"code": " 330599 ", "name": "x"},
                          headers=creating(admin))

    assert list(assert_problem(refused, 422)["errors"]) == ["code"]
    assert created.get_json()["code"] == "330599"


def test_usernames_are_trimmed_when_accounts_are_made(client: Any, world: World,
                                                      admin: dict[str, str]) -> None:
    body = {"username": " zhao.liu ", "name": "赵六", "password": "long enough secret",
            "roles": ["reviewer"]}

    response = client.post(f"{API}/staff", json=body, headers=creating(admin))

    assert response.get_json()["username"] == "zhao.liu"


@pytest.mark.parametrize("sent", [" Approver", "APPROVER ", "\tapprover", "approver\u3000"])
def test_a_login_username_is_normalised_once_in_the_schema(sent: str) -> None:
    loaded = LoginSchema().load({"username": sent, "password": "x"})

    assert loaded["username"] == "approver"


def test_a_login_username_of_blanks_is_refused() -> None:
    with pytest.raises(ma.ValidationError) as info:
        LoginSchema().load({"username": " \t", "password": "x"})

    assert list(info.value.messages) == ["username"]  # type: ignore[arg-type]


def test_a_blueprint_refuses_a_strict_schema_for_query_arguments() -> None:
    from core.api import Blueprint, PageArgs  # noqa: PLC0415

    blueprint = Blueprint("guard", __name__)

    with pytest.raises(TypeError, match="QuerySchema"):
        blueprint.arguments(_Counted, location="query")
    with pytest.raises(TypeError, match="typed"):
        blueprint.arguments(PageArgs)
