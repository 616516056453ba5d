"""API conventions shared by every domain: the OpenAPI document, strict schemas, cursor pages.

Domains build a :class:`Blueprint` under ``/api/v1`` and register it with :func:`register`;
request bodies load through :class:`Schema` (unknown, server-owned and unstorable values
refused; JSON types strict), query arguments through :class:`QuerySchema`, responses dump
through :class:`ResponseSchema`, and lists return through :func:`paginate`. Views declare
the domain errors they can give with :func:`raises`; the rest of each operation's errors,
roles and id are derived (:mod:`core.api.openapi`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask_swagger_ui
from flask import Flask, send_from_directory

from core.api.blueprint import Blueprint, Parser
from core.api.fields import (
    Digits,
    Identifier,
    IdNumber,
    OtpCode,
    Phone,
    Ref,
    RefList,
    SettingRange,
    Shape,
    Text,
    Username,
    digits_field,
    name_field,
    public_id_field,
)
from core.api.openapi import Api, make_api, operation_id, raises
from core.api.pagination import PageArgs, clamp_limit, page_schema, paginate
from core.api.schemas import (
    BAD_TEXT,
    FIXED,
    SERVER_OWNED,
    ProblemSchema,
    QuerySchema,
    ResponseSchema,
    Schema,
    UpdateSchema,
)

__all__ = [
    "API_PREFIX", "BAD_TEXT", "FIXED", "SERVER_OWNED", "Api", "Blueprint", "Digits",
    "IdNumber", "Identifier", "OtpCode", "PageArgs", "Parser", "Phone", "ProblemSchema",
    "QuerySchema", "Ref", "RefList", "ResponseSchema", "Schema", "SettingRange", "Shape", "Text",
    "UpdateSchema", "Username", "clamp_limit", "digits_field", "init_app", "name_field",
    "operation_id", "page_schema", "paginate", "public_id_field", "raises", "register",
]

API_PREFIX = "/api/v1"


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
            "info": {"description": "Rural inclusive lending: farmers, coordinators, bank staff."
                                    " Every error is application/problem+json (RFC 9457) with "
                                    "a stable `code`."},
            "components": {"securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
            "security": [{"bearer": []}],
        },
    )
    app.extensions["nongdai_api"] = make_api(app)
    app.add_url_rule("/api/docs/assets/<path:filename>", "swagger_assets", _swagger_assets)


def register(app: Flask, blueprint: Blueprint) -> None:
    """Register a domain's blueprint with the API (and so with the OpenAPI document).

    In an app context: documenting limits read from settings (page size, consent days).
    """
    with app.app_context():
        app.extensions["nongdai_api"].register_blueprint(blueprint, url_prefix=API_PREFIX)
