"""The schema bases every request and response goes through.

- :class:`Schema`: strict request bodies. Unknown fields are refused (marshmallow's RAISE); a
  field the server owns is refused with :data:`SERVER_OWNED`; text holding a NUL character or
  an unpaired surrogate is refused wherever it sits (PostgreSQL cannot store the first, UTF-8
  cannot encode the second); numbers and booleans must be JSON numbers and booleans.
- :class:`QuerySchema`: query strings, whose values arrive as text and are converted.
- :class:`UpdateSchema`: PATCH bodies, at least one field.
- :class:`ResponseSchema`: response bodies, every field always present.

The refusals below are English message ids, translated when a request is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import marshmallow as ma

from core.i18n import N_, gettext

SERVER_OWNED = N_("Set by the server; it cannot be sent.")
FIXED = N_("Set when it was created; it cannot be changed.")
BAD_TEXT = N_("Must not contain NUL characters or unpaired surrogates.")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")  # json.loads has already joined the valid pairs
_DEPTH = 8  # errors deeper than this are reported at this depth


def _shown(key: str) -> str:
    """A field name safe to echo in an error: NUL and surrogates as escapes."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def bad_text_paths(data: Any) -> list[tuple[Any, ...]]:
    """Where ``data`` (decoded JSON or query arguments) holds text that cannot be stored.

    Iterative, so JSON nested as deep as the parser allows cannot exhaust the stack.
    """
    found: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _BAD_TEXT.search(value):
                found.append(path)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str) and _BAD_TEXT.search(key):
                    found.append((*path, _shown(key)))
                else:
                    stack.append(((*path, key), item))
        elif isinstance(value, list | tuple):
            stack.extend(((*path, index), item) for index, item in enumerate(value))
    return found


def _error_tree(paths: list[tuple[Any, ...]]) -> dict[Any, Any]:
    tree: dict[Any, Any] = {}
    for path in paths:
        node, steps = tree, path[:_DEPTH]
        for step in steps[:-1]:
            child = node.setdefault(step, {})
            if not isinstance(child, dict):  # already reported higher up
                break
            node = child
        else:
            node[steps[-1]] = [gettext(BAD_TEXT)]
    return tree


def _integral(field: ma.fields.Field[Any], value: Any) -> Any:
    if isinstance(field, ma.fields.Integer) and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(field, ma.fields.List) and isinstance(value, list):
        return [_integral(field.inner, item) for item in value]
    return value


class _Exactly(set[object]):
    """A set that matches by identity: ``1 in _Exactly({True})`` is false, though ``1 == True``."""

    def __contains__(self, value: object) -> bool:
        return any(value is item for item in self)


def _make_strict(field: ma.fields.Field[Any]) -> None:
    """JSON types only: ``"30"`` and ``1.5`` are not integers, ``0`` and ``"true"`` not booleans.

    (marshmallow 4 already refuses ``true`` as an integer; ``12.0`` is made ``12`` before.)
    """
    if isinstance(field, ma.fields.Integer):
        field.strict = True
    elif isinstance(field, ma.fields.Boolean):
        field.truthy, field.falsy = _Exactly({True}), _Exactly({False})
    elif isinstance(field, ma.fields.List):
        _make_strict(field.inner)


class Schema(ma.Schema):
    """Base for request bodies (and, through :class:`ResponseSchema`, responses).

    ``RESOURCE`` names the response schema of what a body creates or changes: its fields that
    this body does not accept are the server's, and sending one gets :data:`SERVER_OWNED`. A
    PATCH body also names ``CREATED_BY``, the creating body: fields only that one accepts get
    :data:`FIXED`. Any other unknown field gets marshmallow's "Unknown field.".
    """

    STRICT_TYPES: ClassVar[bool] = True
    RESOURCE: ClassVar[type[ma.Schema] | None] = None
    CREATED_BY: ClassVar[type[ma.Schema] | None] = None

    class Meta:
        unknown = ma.RAISE

    @ma.pre_load
    def _check_input(self, data: Any, **_kwargs: Any) -> Any:
        paths = [path for path in bad_text_paths(data) if path]
        if paths:
            raise ma.ValidationError(_error_tree(paths))
        return self._integral_numbers(data) if self.STRICT_TYPES else data

    def _integral_numbers(self, data: Any) -> Any:
        """``12.0`` is the JSON number 12 (as JSON Schema says); ``1.5`` stays and is refused."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for name, field in self.load_fields.items():
            key = field.data_key or name
            if key in data:
                data[key] = _integral(field, data[key])
        return data

    def on_bind_field(self, field_name: str, field_obj: ma.fields.Field[Any]) -> None:
        super().on_bind_field(field_name, field_obj)
        if self.STRICT_TYPES:
            _make_strict(field_obj)

    def handle_error(self, error: ma.ValidationError, data: Any, *, many: bool,
                     **kwargs: Any) -> None:
        del data, many, kwargs
        messages = error.messages
        if not isinstance(messages, dict):
            return
        for key, message in self._refusals().items():
            if key in messages:
                messages[key] = [gettext(message)]

    def _refusals(self) -> dict[str, str]:
        """Field names this body does not accept but the resource has, with why."""
        accepted = {field.data_key or name for name, field in self.load_fields.items()}
        refusals = {field.data_key or name: SERVER_OWNED
                    for name, field in self.dump_fields.items() if field.dump_only}
        created = _keys(self.CREATED_BY)
        refusals.update(dict.fromkeys(created - accepted, FIXED))
        refusals.update(dict.fromkeys(_keys(self.RESOURCE) - accepted - created, SERVER_OWNED))
        return refusals


def _keys(schema: type[ma.Schema] | None) -> set[str]:
    if schema is None:
        return set()
    return {field.data_key or name for name, field in schema._declared_fields.items()}


class QuerySchema(Schema):
    """Base of query-string arguments: values arrive as text, so ``?limit=30`` is converted."""

    STRICT_TYPES = False


class UpdateSchema(Schema):
    """Base of PATCH bodies: every field optional, at least one present."""

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError(gettext("Send at least one field to change."))


class ResponseSchema(Schema):
    """Base of response bodies: every field is always present, so each is ``required`` in the
    OpenAPI document and generated models are exact; ``allow_none`` marks those that may be
    null."""

    def on_bind_field(self, field_name: str, field_obj: ma.fields.Field[Any]) -> None:
        super().on_bind_field(field_name, field_obj)
        field_obj.required = True


class ProblemSchema(ma.Schema):
    """``application/problem+json`` (RFC 9457), as every 4xx and 5xx answers."""

    type = ma.fields.String(required=True, metadata={
        "description": "``urn:nongdai:problem:`` followed by the code"})
    title = ma.fields.String(required=True, metadata={
        "description": "Short summary; one per code, in the language negotiated from "
                       "Accept-Language (zh-CN by default, en; see Content-Language)"})
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String(required=True, metadata={
        "description": "What happened in this case, in the same language as the title"})
    code = ma.fields.String(required=True, metadata={
        "description": "Stable machine-readable error code; never translated"})
    errors = ma.fields.Dict(metadata={"description": "Messages by field (validation failures)"})
    request_id = ma.fields.String(metadata={
        "description": "Also in the X-Request-Id header; quote it when reporting a problem"})
