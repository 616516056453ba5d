"""The blueprint every domain uses: flask-smorest's, with our JSON parser and a guard that
query arguments go through a :class:`~core.api.schemas.QuerySchema` (values arrive as text)
and bodies through a strict one."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint as _SmorestBlueprint
from webargs.flaskparser import FlaskParser

from core.api.schemas import QuerySchema

_TEXT_LOCATIONS = frozenset({"query", "querystring", "headers", "cookies", "form"})


class Parser(FlaskParser):
    """webargs' parser, but JSON nested past the interpreter's recursion limit is a
    malformed body (400), not a 500."""

    def _raw_load_json(self, req: Any) -> Any:
        try:
            return super()._raw_load_json(req)
        except RecursionError as exc:
            raise json.JSONDecodeError("nested too deeply", "[", 0) from exc


def _schema_class(schema: Any) -> type[ma.Schema]:
    return schema if isinstance(schema, type) else type(schema)


class Blueprint(_SmorestBlueprint):
    """flask-smorest's blueprint with :class:`Parser`; refuses at import a schema whose
    strictness does not suit where its values come from."""

    ARGUMENTS_PARSER = Parser()

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Any:
        is_query = issubclass(_schema_class(schema), QuerySchema)
        if location in _TEXT_LOCATIONS and not is_query:
            raise TypeError(f"{_schema_class(schema).__name__}: arguments in {location} arrive "
                            "as text; derive the schema from core.api.QuerySchema")
        if location == "json" and is_query:
            raise TypeError(f"{_schema_class(schema).__name__}: a JSON body is typed; derive "
                            "the schema from core.api.Schema, not QuerySchema")
        if isinstance(schema, type):  # once here, not once per request in webargs
            schema = schema()
        return super().arguments(schema, location=location, **kwargs)
