"""The OpenAPI document tells the truth (core.api.openapi): errors as problem+json with the
statuses each operation can give, roles, summaries, operation ids, nullable fields, the
constraints the server enforces, and request schemas apart from response schemas."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError, validate

from core import authz
from core.api import Identifier, IdNumber, Phone, Text, name_field, operation_id
from core.api.openapi import roles_of
from core.api.textdoc import text_pattern

PROBLEM = "application/problem+json"
METHODS = {"get", "post", "patch", "put", "delete"}


@pytest.fixture
def document(client: Any) -> dict[str, Any]:
    return client.get("/api/openapi.json").get_json()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


def responses(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    """An operation's responses, shared components resolved."""
    shared = document["components"].get("responses", {})
    return {status: shared[r["$ref"].rsplit("/", 1)[-1]] if "$ref" in r else r
            for status, r in operation["responses"].items()}


def _view(app: Flask, path: str, method: str) -> Any:
    (rule,) = [r for r in app.url_map.iter_rules()
               if re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule) == path
               and method.upper() in (r.methods or ())]
    return app.view_functions[rule.endpoint]


def test_the_document_is_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert len(list(operations(document))) > 35


# --- errors ------------------------------------------------------------------------------------

def test_every_error_is_declared_as_a_problem(document: dict[str, Any]) -> None:
    wrong = [(method, path, status)
             for method, path, operation in operations(document)
             for status, response in responses(document, operation).items()
             if int(status) >= 400
             and response.get("content") != {PROBLEM: {"schema": {
                 "$ref": "#/components/schemas/Problem"}}}]

    assert wrong == []
    assert "default" not in {s for _, _, op in operations(document) for s in op["responses"]}


def test_errors_of_one_code_are_shared_components(document: dict[str, Any]) -> None:
    farmers = document["paths"]["/api/v1/farmers"]["post"]["responses"]

    assert farmers["401"] == {"$ref": "#/components/responses/Unauthorized"}
    assert "$ref" not in farmers["409"]  # several codes: described where they apply


def test_the_problem_schema_names_its_required_members(document: dict[str, Any]) -> None:
    assert set(schema(document, "Problem")["required"]) == {
        "type", "title", "status", "detail", "code"}


def test_errors_are_derived_from_the_access_rule(app: Flask, document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        rule = authz.rule_for(_view(app, path, method), method.upper())
        statuses = set(operation["responses"])
        if not rule.public:
            assert "401" in statuses, (method, path)
        assert ("403" in statuses) >= bool(rule.roles), (method, path)
        assert ("404" in statuses) >= ("{" in path), (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= statuses, (method, path)
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "422" in statuses, (method, path)
        assert {"500", "503"} <= statuses


def test_idempotent_operations_list_what_a_key_can_give(app: Flask,
                                                        document: dict[str, Any]) -> None:
    from core.idempotency import is_idempotent  # noqa: PLC0415

    idempotent = [(m, p, op) for m, p, op in operations(document)
                  if is_idempotent(_view(app, p, m))]
    assert len(idempotent) >= 8
    for method, path, operation in idempotent:
        answers = responses(document, operation)
        assert "idempotency-in-progress" in answers["409"]["description"], (method, path)
        assert "idempotency-key-reused" in answers["422"]["description"], (method, path)
        assert "idempotency-key-invalid" in answers["400"]["description"], (method, path)
        assert "Retry-After" in answers["409"]["headers"]
        assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])


def test_declared_conflicts_and_limits_are_listed(document: dict[str, Any]) -> None:
    paths = document["paths"]
    farmers = responses(document, paths["/api/v1/farmers"]["post"])
    lookup = responses(document, paths["/api/v1/farmers/lookup"]["post"])
    login = responses(document, paths["/api/v1/auth/login"]["post"])

    assert "`farmer-exists`" in farmers["409"]["description"]
    assert "`phone-taken`" in farmers["409"]["description"]
    assert lookup["429"]["headers"]["Retry-After"]["required"] is True
    assert {"401", "409", "429"} <= set(login)
    assert "`device-revoked`" in login["403"]["description"]  # declared: no role rule on login


# --- who may call, what it is called -----------------------------------------------------------

def test_roles_are_stated(document: dict[str, Any]) -> None:
    paths = document["paths"]
    create = paths["/api/v1/farmers"]["post"]
    login = paths["/api/v1/auth/login"]["post"]
    revoke = paths["/api/v1/consents/{consent_id}/revoke"]["post"]

    assert create["x-roles"] == ["coordinator", "reviewer", "approver", "admin"]
    assert create["description"].endswith(
        "Who may call: coordinators, reviewers, approvers and admins.")
    assert revoke["x-roles"] == ["farmer", "admin"]
    assert (login["x-roles"], login["security"]) == ([], [])
    assert all("x-roles" in op for _, _, op in operations(document))


def test_roles_of_an_open_rule_are_everyone_signed_in() -> None:
    assert roles_of(authz.Rule(frozenset())) == [
        "farmer", "coordinator", "reviewer", "approver", "admin"]


def test_every_operation_has_a_summary(document: dict[str, Any]) -> None:
    assert [(m, p) for m, p, op in operations(document) if not op.get("summary")] == []


def test_operation_ids_are_camel_case_view_names_unique_across_the_app(
        document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]

    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)*", name) for name in ids), ids
    assert document["paths"]["/api/v1/farmers"]["post"]["operationId"] == "createFarmer"
    assert document["paths"]["/api/v1/farmers"]["get"]["operationId"] == "listFarmers"


def test_operation_id() -> None:
    assert operation_id("people.create_farmer") == "createFarmer"
    assert operation_id("me") == "me"


# --- schemas -----------------------------------------------------------------------------------

def test_requests_and_responses_have_their_own_schemas(document: dict[str, Any]) -> None:
    farmer, create = schema(document, "Farmer"), schema(document, "FarmerCreate")
    post = document["paths"]["/api/v1/farmers"]["post"]

    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/FarmerCreate")
    assert post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Farmer")
    assert "id_number" not in farmer["properties"]
    assert set(create["properties"]) == {"name", "phone", "id_number", "village_id"}
    for name in ("Coordinator", "Staff", "Consent", "County", "Township", "Village", "Station"):
        assert f"{name}Create" in document["components"]["schemas"], name


def test_no_schema_mixes_read_only_and_write_only(document: dict[str, Any]) -> None:
    mixed = [name for name, body in document["components"]["schemas"].items()
             for prop in body.get("properties", {}).values()
             if prop.get("readOnly") or prop.get("writeOnly")]

    assert mixed == []


def test_response_fields_are_always_present(document: dict[str, Any]) -> None:
    for name in ("Farmer", "Consent", "Coordinator", "Staff", "Village", "Station", "Token",
                 "Me", "Device", "FarmerPage"):
        body = schema(document, name)
        assert set(body["required"]) == set(body["properties"]), name


def test_nullable_fields_are_nullable(document: dict[str, Any]) -> None:
    consent = schema(document, "Consent")["properties"]

    assert consent["revoked_at"]["type"] == ["string", "null"]
    assert consent["evidence"]["type"] == ["string", "null"]
    assert schema(document, "Farmer")["properties"]["birth_date"]["type"] == ["string", "null"]
    assert schema(document, "FarmerPage")["properties"]["next_cursor"]["type"] == [
        "string", "null"]
    assert consent["expires_at"]["type"] == "string"


def test_the_constraints_the_server_enforces_are_stated(document: dict[str, Any]) -> None:
    grant = schema(document, "ConsentCreate")["properties"]
    limit = {p["name"]: p for p in document["paths"]["/api/v1/farmers"]["get"]["parameters"]}
    roles = schema(document, "StaffCreate")["properties"]["roles"]

    assert (grant["valid_days"]["minimum"], grant["valid_days"]["maximum"]) == (1, 365)
    assert grant["purpose"]["enum"] == ["land_registry", "insurance", "credit_decision"]
    assert (limit["limit"]["schema"]["minimum"], limit["limit"]["schema"]["maximum"]) == (1, 200)
    assert roles["items"]["enum"] == ["admin", "approver", "reviewer"]
    assert roles["minItems"] == 1
    assert "[0-9]{17}[0-9Xx]" in schema(document, "FarmerLookup")["properties"]["id_number"][
        "pattern"]
    for name in ("FarmerUpdate", "VillageUpdate", "StationUpdate", "CoordinatorUpdate",
                 "StaffUpdate"):
        assert schema(document, name)["minProperties"] == 1, name
    assert schema(document, "FarmerCreate")["additionalProperties"] is False


# --- text patterns: exactly what the server accepts --------------------------------------------

def _accepts(field: Text, value: str) -> bool:
    """As a request schema does: no NUL anywhere (the schema's rule), then the field's own."""
    if "\x00" in value:
        return False
    try:
        field.deserialize(value)
    except ValidationError:
        return False
    return True


_TEXT = st.text(st.sampled_from(list(" \t\u3000\x1c\ufeff\x00a1X9x\u2003中")), max_size=104)


@pytest.mark.parametrize("field", [name_field(), Phone(), IdNumber(),
                                   Text(validate=validate.Length(min=3, max=5))],
                         ids=["name", "phone", "id-number", "3-to-5"])
@settings(max_examples=300, derandomize=True, database=None)
@given(core=_TEXT, pad=st.sampled_from(["", " ", "\t\u3000", "\ufeff"]))
def test_a_text_fields_pattern_matches_what_it_accepts(field: Text, core: str, pad: str) -> None:
    pattern = text_pattern(field)
    assert pattern is not None
    for value in (core, pad + core + pad, pad + "13712345678" + pad,
                  pad + "33052119850309008x" + pad, "a" * 100 + pad):
        assert bool(re.search(pattern, value)) is _accepts(field, value), repr(value)


def test_whitespace_class_is_exactly_what_strip_removes() -> None:
    from core.api.fields import WHITESPACE  # noqa: PLC0415

    klass = re.compile(f"[{WHITESPACE}]")
    assert [c for c in range(sys.maxunicode + 1) if klass.fullmatch(chr(c))] == [
        c for c in range(sys.maxunicode + 1) if chr(c).isspace()]


def _request_strings(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every string a request can carry: body properties (nested ones too) and query values."""
    pending = [op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
               for _, _, op in operations(document)
               if "application/json" in op.get("requestBody", {}).get("content", {})]
    seen: set[str] = set()
    while pending:
        name = pending.pop().rsplit("/", 1)[-1]
        if name in seen:
            continue
        seen.add(name)
        for prop_name, prop in schema(document, name)["properties"].items():
            if "$ref" in prop:
                pending.append(prop["$ref"])
            yield f"{name}.{prop_name}", prop
    for method, path, op in operations(document):
        for parameter in op.get("parameters", []):
            if parameter["in"] == "query":
                yield f"{method} {path} ?{parameter['name']}", parameter["schema"]


def test_every_request_string_refuses_nul(document: dict[str, Any]) -> None:
    strings = [(where, prop) for where, prop in _request_strings(document)
               if "string" in prop.get("type", ()) and "format" not in prop]

    assert len(strings) > 25
    assert [where for where, prop in strings if re.search(prop["pattern"], "a\x00b")] == []


def test_identifier_patterns_are_anchored(document: dict[str, Any]) -> None:
    phone = schema(document, "FarmerCreate")["properties"]["phone"]

    assert phone["pattern"].startswith("^")
    assert phone["pattern"].endswith("$")
    assert isinstance(Phone(), Identifier)
