"""API conventions shared by every domain: the OpenAPI registry, strict schemas, cursor pages.

Domains build a :class:`Blueprint` under ``/api/v1`` and register it with :func:`register`;
request bodies load through :class:`Schema` (unknown and server-owned fields rejected) and
lists return through :func:`paginate`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flask_swagger_ui
import marshmallow as ma
import sqlalchemy as sa
from flask import Flask, current_app, send_from_directory
from flask_smorest import Api as _SmorestApi
from flask_smorest import Blueprint as _SmorestBlueprint
from webargs.flaskparser import FlaskParser

from core.errors import ValidationFailed

API_PREFIX = "/api/v1"
SERVER_OWNED = "Set by the server; it cannot be sent."


class ProblemSchema(ma.Schema):
    """``application/problem+json`` (RFC 9457), as every 4xx and 5xx answers."""

    type = ma.fields.String()
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    code = ma.fields.String(metadata={"description": "Stable machine-readable error code"})
    errors = ma.fields.Dict(metadata={"description": "Messages by field (validation failures)"})
    request_id = ma.fields.String()


class Api(_SmorestApi):
    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        """Errors are rendered by :mod:`core.errors`, in one shape, for the whole app."""


class Parser(FlaskParser):
    """webargs' parser, but JSON nested past the interpreter's recursion limit is a
    malformed body (400), not a 500."""

    def _raw_load_json(self, req: Any) -> Any:
        try:
            return super()._raw_load_json(req)
        except RecursionError as exc:
            raise json.JSONDecodeError("nested too deeply", "[", 0) from exc


class Blueprint(_SmorestBlueprint):
    """The blueprint every domain uses: flask-smorest's, with :class:`Parser`."""

    ARGUMENTS_PARSER = Parser()


class Schema(ma.Schema):
    """Base for request and response schemas.

    Unknown fields are rejected (marshmallow's RAISE); a field the server owns (``dump_only``)
    sent by a client is rejected with a message that says so.
    """

    class Meta:
        unknown = ma.RAISE

    def handle_error(self, error: ma.ValidationError, _data: Any, **_kwargs: Any) -> None:
        messages = error.messages
        if not isinstance(messages, dict):
            return
        for name in self.dump_fields:
            field = self.fields[name]
            key = field.data_key or name
            if field.dump_only and key in messages:
                messages[key] = [SERVER_OWNED]


class PageArgs(Schema):
    cursor = ma.fields.String(load_default=None, metadata={"description": "From next_cursor"})
    limit = ma.fields.Integer(load_default=None,
                              metadata={"description": "Page size, clamped to the server max"})


def page_schema(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """A ``{items, next_cursor}`` envelope schema around ``item``."""
    return ma.Schema.from_dict(
        {"items": ma.fields.List(ma.fields.Nested(item)),
         "next_cursor": ma.fields.String(allow_none=True)},
        name=name,
    )


def _decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4))
        return uuid.UUID(json.loads(raw)["after"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValidationFailed("The cursor is not one this API issued",
                               errors={"cursor": ["Invalid cursor."]}) from exc


def _encode_cursor(after: uuid.UUID) -> str:
    raw = json.dumps({"after": str(after)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def clamp_limit(limit: int | None) -> int:
    cfg = current_app.config
    if limit is None:
        return int(cfg["NONGDAI_PAGE_SIZE_DEFAULT"])
    return max(1, min(int(limit), int(cfg["NONGDAI_PAGE_SIZE_MAX"])))


def paginate(session: Any, stmt: sa.Select[Any], key: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Keyset page over ``stmt`` ordered by ``key`` (a UUIDv7 ``public_id`` column).

    Returns ``{"items": [...], "next_cursor": str | None}``; one query whatever the page size.
    """
    limit = clamp_limit(args.get("limit"))
    if args.get("cursor"):
        stmt = stmt.where(key > _decode_cursor(args["cursor"]))
    rows: Sequence[Any] = session.scalars(stmt.order_by(key).limit(limit + 1)).all()
    items = list(rows[:limit])
    next_cursor = _encode_cursor(items[-1].public_id) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


def _swagger_assets(filename: str) -> Any:
    folder = Path(flask_swagger_ui.__file__).parent / "dist"  # Swagger UI 5 (OpenAPI 3.1)
    return send_from_directory(folder, filename)


def init_app(app: Flask) -> None:
    app.config.update(
        API_TITLE="Nongdai",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
        API_SPEC_OPTIONS={
            "info": {"description": "Rural inclusive lending: farmers, coordinators, bank staff."},
            "components": {"securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
            "security": [{"bearer": []}],
        },
    )
    app.extensions["nongdai_api"] = Api(app)
    app.add_url_rule("/api/docs/assets/<path:filename>", "swagger_assets", _swagger_assets)


def register(app: Flask, blueprint: Blueprint) -> None:
    """Register a domain's blueprint with the API (and so with the OpenAPI document)."""
    app.extensions["nongdai_api"].register_blueprint(blueprint, url_prefix=API_PREFIX)
