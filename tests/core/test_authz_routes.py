"""Route rules: every API route has an access rule, every creating POST honours idempotency keys,
and anonymous callers are turned away from everything that is not public."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.views import MethodView
from werkzeug.routing import Rule

from core import authz
from core.api import API_PREFIX
from core.idempotency import is_idempotent

_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_SAMPLES = {"uuid": str(uuid.UUID(int=1)), "int": "1"}
_IGNORED = frozenset({"HEAD", "OPTIONS"})


def api_routes(app: Flask) -> Iterator[tuple[Rule, str]]:
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API_PREFIX):
            for method in sorted((rule.methods or set()) - _IGNORED):
                yield rule, method


def view_for(app: Flask, rule: Rule, method: str) -> Any:
    view = app.view_functions[rule.endpoint]
    view_class = getattr(view, "view_class", None)
    return getattr(view_class, method.lower()) if view_class is not None else view


def sample_url(rule: Rule) -> str:
    """The rule with every argument filled in (an id that exists nowhere)."""
    return _ARGUMENT.sub(lambda m: _SAMPLES.get(m.group(1) or "", "x"), rule.rule)


def openapi_path(rule: Rule) -> str:
    return _ARGUMENT.sub(lambda m: "{" + m.group(2) + "}", rule.rule)


# --- every route has a rule --------------------------------------------------------------------

def test_every_api_route_has_an_access_rule(app: Flask) -> None:
    assert list(api_routes(app))
    assert authz.unguarded_routes(app) == []


def test_an_unguarded_function_route_stops_start_up(app: Flask) -> None:
    app.add_url_rule(f"{API_PREFIX}/forgotten", "forgotten", lambda: "", methods=["POST"])

    assert authz.unguarded_routes(app) == [f"POST {API_PREFIX}/forgotten"]
    with pytest.raises(RuntimeError, match="forgotten"):
        authz.check_routes(app)


def test_an_unguarded_method_of_a_class_view_stops_start_up(app: Flask) -> None:
    class Half(MethodView):
        @authz.access()
        def get(self) -> str:
            return ""

        def delete(self) -> str:
            return ""

    app.add_url_rule(f"{API_PREFIX}/half", view_func=Half.as_view("half"))

    assert authz.unguarded_routes(app) == [f"DELETE {API_PREFIX}/half"]
    with pytest.raises(RuntimeError, match="half"):
        authz.check_routes(app)


# --- every creating POST honours Idempotency-Key -----------------------------------------------

def creating_posts(app: Flask, client: Any) -> list[tuple[Rule, Any]]:
    """POST routes whose OpenAPI operation documents a 201 response, with their views."""
    paths = client.get("/api/openapi.json").get_json()["paths"]
    found = []
    for rule, method in api_routes(app):
        operation = paths.get(openapi_path(rule), {}).get(method.lower(), {})
        if method == "POST" and "201" in operation.get("responses", {}):
            found.append((rule, view_for(app, rule, method)))
    return found


def test_every_creating_post_is_idempotent(app: Flask, client: Any) -> None:
    creating = creating_posts(app, client)

    assert f"{API_PREFIX}/counties" in [rule.rule for rule, _ in creating]
    assert [rule.rule for rule, view in creating if not is_idempotent(view)] == []


def test_the_idempotency_check_sees_a_plain_view(app: Flask) -> None:
    rule = next(r for r in app.url_map.iter_rules() if r.rule == f"{API_PREFIX}/counties/"
                "<uuid:county_id>")

    assert not is_idempotent(view_for(app, rule, "GET"))


# --- anonymous callers -------------------------------------------------------------------------

def guarded_routes(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule, method in api_routes(app):
        access = authz.rule_for(app.view_functions[rule.endpoint], method)
        if access is not None and not access.public:
            routes.append((method, sample_url(rule)))
    return routes


def test_anonymous_calls_to_guarded_routes_get_401(app: Flask, client: Any) -> None:
    routes = guarded_routes(app)
    assert (("POST", f"{API_PREFIX}/counties")) in routes

    answers = {f"{method} {url}": client.open(url, method=method) for method, url in routes}

    wrong = {route: response.status_code for route, response in answers.items()
             if response.status_code != 401
             or response.mimetype != "application/problem+json"
             or not response.headers.get("WWW-Authenticate", "").startswith("Bearer")}
    assert wrong == {}


def test_public_routes_do_not_ask_for_a_token(app: Flask, client: Any) -> None:
    public = [(method, sample_url(rule)) for rule, method in api_routes(app)
              if (authz.rule_for(app.view_functions[rule.endpoint], method)
                  or authz.Rule(frozenset())).public]
    assert public  # signing in, at least

    codes = {f"{m} {url}": client.open(url, method=m, json={}).get_json().get("code")
             for m, url in public}
    assert [route for route, code in codes.items() if code == "unauthorized"] == []
