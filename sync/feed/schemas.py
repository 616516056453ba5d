"""The pull's query arguments and the page it answers (docs/sync-protocol.md §4)."""

from __future__ import annotations

import marshmallow as ma

from core.api import QuerySchema, ResponseSchema, SettingRange

DEFAULT_LIMIT = 500


class PullArgs(QuerySchema):
    cursor = ma.fields.String(validate=ma.validate.Length(max=1000), metadata={
        "description": "The cursor the previous page answered (opaque); none on a first pull"})
    limit = ma.fields.Integer(validate=SettingRange("NONGDAI_SYNC_PULL_LIMIT_MAX"), metadata={
        "description": f"Changes per page (default {DEFAULT_LIMIT}, at most "
                       "NONGDAI_SYNC_PULL_LIMIT_MAX)"})


class ChangeSchema(ma.Schema):
    kind = ma.fields.String(required=True, metadata={"description": "farmer, assignment, visit…"})
    id = ma.fields.UUID(required=True)
    op = ma.fields.String(required=True, validate=ma.validate.OneOf(["upsert", "delete"]),
                          metadata={"description": "upsert: replace your copy with data; "
                                                   "delete: remove it (tombstone)"})
    version = ma.fields.Integer(metadata={"description": "Editable records: the version"})
    data = ma.fields.Dict(metadata={"description": "The entity's whole current state (upsert "
                                                   "only); a missing key is null"})


class PullPageSchema(ResponseSchema):
    changes = ma.fields.List(ma.fields.Nested(ChangeSchema))
    cursor = ma.fields.String(metadata={"description": "Store it after the changes; send it "
                                                      "as ?cursor= next time"})
    has_more = ma.fields.Boolean(metadata={"description": "Pull again at once"})
