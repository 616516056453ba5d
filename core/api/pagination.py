"""Cursor pages: ``?limit=`` and ``?cursor=`` in, ``{items, next_cursor}`` out.

A cursor is the last item's public id (a UUIDv7, so ids sort by creation), encoded; a page is
one keyset query whatever its size. ``limit`` runs from 1 to ``NONGDAI_PAGE_SIZE_MAX``: a value
outside that range is refused (422), not silently clamped.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import current_app

from core.api.fields import SettingRange
from core.api.schemas import QuerySchema, ResponseSchema
from core.db import DbSession
from core.errors import ValidationFailed
from core.i18n import _


class PageArgs(QuerySchema):
    """``?limit=&cursor=``, both optional (query values may not be null: leave one out)."""

    cursor = ma.fields.String(validate=ma.validate.Length(min=1, max=200),
                              metadata={"description": "The previous page's next_cursor"})
    limit = ma.fields.Integer(validate=SettingRange("NONGDAI_PAGE_SIZE_MAX"),
                              metadata={"description": "Page size (default "
                                                       "NONGDAI_PAGE_SIZE_DEFAULT)"})


def page_schema(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """A ``{items, next_cursor}`` envelope schema around ``item``."""
    return ResponseSchema.from_dict(
        {"items": ma.fields.List(ma.fields.Nested(item)),
         "next_cursor": ma.fields.String(allow_none=True, metadata={
             "description": "Pass as ?cursor= for the next page; null on the last page"})},
        name=name,
    )


def _decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4))
        return uuid.UUID(json.loads(raw)["after"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise ValidationFailed(_("The cursor is not one this API issued"),
                               errors={"cursor": [_("Invalid cursor.")]}) from exc


def _encode_cursor(after: uuid.UUID) -> str:
    raw = json.dumps({"after": str(after)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def clamp_limit(limit: int | None) -> int:
    """The page size: the default when none was asked; otherwise ``limit`` held to the range
    (the query schema has already refused values outside it; this guards other callers)."""
    cfg = current_app.config
    if limit is None:
        return int(cfg["NONGDAI_PAGE_SIZE_DEFAULT"])
    return max(1, min(int(limit), int(cfg["NONGDAI_PAGE_SIZE_MAX"])))


def paginate(session: DbSession, stmt: sa.Select[Any], key: Any,
             args: dict[str, Any]) -> dict[str, Any]:
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
