"""The OpenAPI document, derived from the code so that it tells the truth.

flask-smorest documents bodies and success responses from the schemas. :class:`ErrorsPlugin`
adds, for each operation, what flask-smorest cannot know:

- the errors it can give, each as ``application/problem+json`` with its problem codes: 401 and
  403 from its ``@access`` rule, 404 when its path names a row, 400/413/415/422 for a JSON body,
  422 for query arguments, 400/409/422 when it honours an ``Idempotency-Key``, 429 when it is
  rate-limited, and whatever the view declares with :func:`raises`; 500 and 503 everywhere;
- the roles that may call it (``x-roles`` and a sentence), and ``security: []`` when public;
- a stable ``operationId``: the view function's name in camelCase (``createFarmer``).

:class:`SchemaRulesPlugin` adds ``minProperties: 1`` to PATCH bodies, and
:func:`core.api.textdoc.text2properties` states exactly what a trimmed text field accepts.
"""

from __future__ import annotations

import http
from collections.abc import Callable
from copy import deepcopy
from typing import Any, TypeVar

from apispec import APISpec, BasePlugin
from flask import Flask
from flask_smorest import Api as _SmorestApi
from flask_smorest.utils import prepare_response

from core import authz
from core.api.schemas import ProblemSchema, UpdateSchema
from core.api.textdoc import text2properties
from core.errors import (
    PROBLEM_MIMETYPE,
    Conflict,
    Forbidden,
    InternalError,
    MalformedJson,
    NongdaiError,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    http_code,
    title_for,
)

F = TypeVar("F", bound=Callable[..., Any])

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
RAISES = "x-nongdai-raises"  # view -> plugin: [[status, code], ...] declared with @raises
IDEMPOTENT = "x-nongdai-idempotent"  # set by core.idempotency on the views it wraps
IDEMPOTENCY_HEADER = "Idempotency-Key"
# The key rule itself (printable ASCII, 1 to 200) is core.idempotency's; this states it.
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
    "description": "A client-generated key (a UUID, say): a retry with the same key and body "
                   "replays the first response instead of acting twice.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x20-\\x7e]+$"},
}
# What an Idempotency-Key can give besides the view's own answers (codes of core.idempotency).
IDEMPOTENCY_ERRORS = ((400, "idempotency-key-invalid"), (409, "idempotency-in-progress"),
                      (422, "idempotency-key-reused"))
BODY_ERRORS = ((400, MalformedJson.code), (413, "payload-too-large"),
               (415, "unsupported-media-type"), (422, ValidationFailed.code))
ALWAYS = ((500, InternalError.code), (503, ServiceUnavailable.code))
ROLE_ORDER = ("farmer", "coordinator", "reviewer", "approver", "admin")
_ROLE_NAMES = {"farmer": "farmers", "coordinator": "coordinators", "reviewer": "reviewers",
               "approver": "approvers", "admin": "admins"}
_RETRY_AFTER = {"description": "Seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 1}}
_HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    401: {"WWW-Authenticate": {"description": "Bearer challenge", "schema": {"type": "string"}}},
    409: {"Retry-After": _RETRY_AFTER},  # idempotency-in-progress only
    429: {"Retry-After": {**_RETRY_AFTER, "required": True}},
    503: {"Retry-After": _RETRY_AFTER},
}
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def raises(*errors: type[NongdaiError]) -> Callable[[F], F]:
    """Declare the domain errors a view can give beyond those derived (a service's conflicts,
    a 404 for an id in the body, a rate limit), for the OpenAPI document."""

    def decorate(view: F) -> F:
        apidoc = deepcopy(getattr(view, "_apidoc", {}))
        listed = apidoc.setdefault("manual_doc", {}).setdefault(RAISES, [])
        listed.extend([error.status, error.code] for error in errors)
        view._apidoc = apidoc  # type: ignore[attr-defined]
        return view

    return decorate


def operation_id(endpoint: str) -> str:
    """``people.create_farmer`` -> ``createFarmer``."""
    head, *rest = endpoint.rsplit(".", 1)[-1].split("_")
    return head + "".join(word.capitalize() for word in rest)


def roles_of(rule: authz.Rule) -> list[str]:
    """The concrete roles a rule lets in (``staff`` is every staff role)."""
    if rule.public or not rule.roles:
        return list(ROLE_ORDER)
    wanted = set(rule.roles) | (set(authz.STAFF_ROLES) if "staff" in rule.roles else set())
    return [role for role in ROLE_ORDER if role in wanted]


def _who(rule: authz.Rule) -> str:
    if rule.public:
        return "Who may call: anyone; no sign-in needed."
    names = [_ROLE_NAMES[role] for role in roles_of(rule)]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"Who may call: {listed}."


class ErrorsPlugin(BasePlugin):
    """Errors, roles and operation ids of every operation (see the module docstring)."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.app = app
        self.ids: dict[str, str] = {}
        self.spec: APISpec | None = None

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        self.spec = spec

    def operation_helper(self, path: str | None = None,
                         operations: dict[str, Any] | None = None, **kwargs: Any) -> None:
        rule = kwargs.get("rule")
        if rule is None:
            return
        view = self.app.view_functions[rule.endpoint]
        for method, operation in (operations or {}).items():
            if method in _METHODS:
                self._document(path or "", rule, view, method, operation)

    def _document(self, path: str, url_rule: Any, view: Any, method: str,
                  operation: dict[str, Any]) -> None:
        access = authz.rule_for(view, method.upper())
        self._name(url_rule.endpoint, path, method, operation)
        idempotent = bool(operation.pop(IDEMPOTENT, False))
        if idempotent:
            operation.setdefault("parameters", []).append(dict(IDEMPOTENCY_PARAMETER))
        errors = self._errors(url_rule, access, operation, idempotent)
        responses = {int(status): response for status, response
                     in operation.get("responses", {}).items() if int(status) < 400}
        responses.update({status: self._response(status, codes)
                          for status, codes in sorted(errors.items())})
        operation["responses"] = responses
        if access is not None:
            _document_access(access, operation)

    def _response(self, status: int, codes: list[str]) -> dict[str, Any]:
        """A problem response; one of a single code is shared, as a component named for it."""
        response = _problem_response(status, codes)
        if len(codes) != 1 or self.spec is None:
            return response
        name = "".join(word.capitalize() for word in codes[0].split("-"))
        if name not in self.spec.components.responses:
            self.spec.components.response(name, response)
        return {"$ref": f"#/components/responses/{name}"}

    def _name(self, endpoint: str, path: str, method: str, operation: dict[str, Any]) -> None:
        name = operation_id(endpoint)
        where = f"{method.upper()} {path}"
        if self.ids.setdefault(name, where) != where:
            raise RuntimeError(f"operationId {name} names both {self.ids[name]} and {where}: "
                               "rename one view function")
        operation["operationId"] = name

    def _errors(self, url_rule: Any, access: authz.Rule | None, operation: dict[str, Any],
                idempotent: bool) -> dict[int, list[str]]:
        """Problem codes by status: derived, then already documented, then declared."""
        found = [*ALWAYS, *_derived(url_rule, access, operation, idempotent)]
        found.extend((int(status), http_code(int(status)))
                     for status in operation.get("responses", {}) if int(status) >= 400)
        found.extend(_declared(operation))
        errors: dict[int, list[str]] = {}
        for status, code in found:
            codes = errors.setdefault(status, [])
            if code not in codes:
                codes.append(code)
        return errors


def _derived(url_rule: Any, access: authz.Rule | None, operation: dict[str, Any],
             idempotent: bool) -> list[tuple[int, str]]:
    """What the shared request path can answer before or around the view."""
    found: list[tuple[int, str]] = []
    if access is not None and not access.public:
        found.append((401, Unauthorized.code))
        if access.roles:
            found.append((403, Forbidden.code))
    if url_rule.arguments:
        found.append((404, NotFound.code))
    if "requestBody" in operation:
        found.extend(BODY_ERRORS)
    if any(p.get("in") == "query" for p in operation.get("parameters", [])):
        found.append((422, ValidationFailed.code))
    if idempotent:
        found.extend(IDEMPOTENCY_ERRORS)
    return found


def _declared(operation: dict[str, Any]) -> list[tuple[int, str]]:
    """The view's :func:`raises`; a declared conflict may also be caught at commit (a race)."""
    declared = [(int(status), str(code)) for status, code in operation.pop(RAISES, [])]
    if any(status == Conflict.status for status, _ in declared):
        declared.append((Conflict.status, Conflict.code))
    return declared


def _document_access(access: authz.Rule, operation: dict[str, Any]) -> None:
    operation["x-roles"] = [] if access.public else roles_of(access)
    if access.public:
        operation["security"] = []
    sentence = _who(access)
    description = operation.get("description")
    operation["description"] = f"{description}\n\n{sentence}" if description else sentence


def _problem_response(status: int, codes: list[str]) -> dict[str, Any]:
    listed = "; ".join(f"`{code}` ({title_for(code)})" for code in codes)
    response: dict[str, Any] = {
        "description": f"{http.HTTPStatus(status).phrase}. Problem codes: {listed}.",
        "content": {PROBLEM_MIMETYPE: {"schema": dict(PROBLEM_REF)}},
    }
    headers = deepcopy(_HEADERS.get(status, {}))
    if status == Conflict.status and "idempotency-in-progress" not in codes:
        headers.pop("Retry-After")
    if headers:
        response["headers"] = headers
    return response


class SchemaRulesPlugin(BasePlugin):
    """Rules of whole schemas that marshmallow cannot state: a PATCH body is never empty."""

    def schema_helper(self, name: str, definition: dict[str, Any], **kwargs: Any) -> None:
        del name
        schema = kwargs.get("schema")
        is_update = isinstance(schema, UpdateSchema) or (
            isinstance(schema, type) and issubclass(schema, UpdateSchema))
        if is_update:
            definition["minProperties"] = 1


# --- the Api ------------------------------------------------------------------------------------

class Api(_SmorestApi):
    """flask-smorest's Api with one error shape: problems are rendered by :mod:`core.errors`
    and documented as ``application/problem+json``."""

    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # each operation lists its own errors (ErrorsPlugin)

    def _register_error_handlers(self) -> None:
        """Errors are rendered by :mod:`core.errors`, in one shape, for the whole app."""

    def _register_pagination_header(self) -> None:
        """Not flask-smorest's page-number pagination: lists are cursor pages (core.api)."""

    def _register_etag_headers(self) -> None:
        """No ETags (yet): nothing to document."""

    def _register_responses(self) -> None:
        """flask-smorest's named error responses (``UNAUTHORIZED``, ...), as problem+json."""
        self.spec.components.schema("Problem", schema=ProblemSchema)
        for status in http.HTTPStatus:
            if status >= 400:
                response = {"description": status.phrase, "schema": ProblemSchema}
                prepare_response(response, self.spec, PROBLEM_MIMETYPE)
                self.spec.components.response(status.name, response, lazy=True)


def make_api(app: Flask) -> Api:
    api = Api(spec_kwargs={"extra_plugins": [ErrorsPlugin(app), SchemaRulesPlugin()]})
    api.init_app(app)
    api.ma_plugin.converter.add_attribute_function(text2properties)
    return api

