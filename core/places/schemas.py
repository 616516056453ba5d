"""Request and response shapes for counties, townships, villages and stations.

Also the small field types the people schemas share: trimmed text and references to related
rows by public id (a UUID in, ``related.public_id`` out; the internal key never leaves).
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from core.api import PageArgs, Schema, page_schema


class Text(fields.String):
    """A string with surrounding whitespace removed before it is validated."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


def name_field(**kwargs: Any) -> Text:
    """A display name: 1 to 100 characters after trimming."""
    return Text(validate=validate.Length(min=1, max=100), **kwargs)


def digits_field(length: int, **kwargs: Any) -> fields.String:
    rule = validate.Regexp(rf"^\d{{{length}}}$", error=f"Must be exactly {length} digits.")
    return fields.String(validate=rule, **kwargs)


class Ref(fields.UUID):
    """A related row's public id: loads a UUID, dumps ``obj.<relationship>.public_id``."""

    def __init__(self, relationship: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.relationship = relationship

    def get_value(self, obj: Any, *_args: Any, **_kwargs: Any) -> Any:
        related = getattr(obj, self.relationship, None)
        return None if related is None else related.public_id


class RefList(fields.List):
    """Public ids of related rows: loads a list of UUIDs, dumps ``obj.<relationship>``'s ids."""

    def __init__(self, relationship: str, **kwargs: Any) -> None:
        super().__init__(fields.UUID(), **kwargs)
        self.relationship = relationship

    def get_value(self, obj: Any, *_args: Any, **_kwargs: Any) -> Any:
        return [row.public_id for row in getattr(obj, self.relationship)]


def public_id_field() -> fields.UUID:
    return fields.UUID(attribute="public_id", dump_only=True)


class UpdateSchema(Schema):
    """Base of PATCH bodies: every field optional, at least one present."""

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ValidationError("Send at least one field to change.")


class CountySchema(Schema):
    id = public_id_field()
    code = digits_field(6, required=True)
    name = name_field(required=True)
    created_at = fields.DateTime(dump_only=True)


class TownshipSchema(Schema):
    id = public_id_field()
    code = digits_field(9, required=True, metadata={
        "description": "9 digits; the first 6 are an existing county's code"})
    name = name_field(required=True)
    county_id = Ref("county", dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class VillageSchema(Schema):
    id = public_id_field()
    code = digits_field(12, required=True, metadata={
        "description": "12 digits; the first 9 are an existing township's code"})
    name = name_field(required=True)
    township_id = Ref("township", dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class VillageUpdateSchema(UpdateSchema):
    name = name_field()


class StationSchema(Schema):
    id = public_id_field()
    name = name_field(required=True)
    township_id = Ref("township", required=True)
    village_ids = RefList("villages", required=True, validate=validate.Length(min=1, max=500))
    created_at = fields.DateTime(dump_only=True)


class StationUpdateSchema(UpdateSchema):
    name = name_field()
    village_ids = RefList("villages", validate=validate.Length(min=1, max=500))


class TownshipListArgs(PageArgs):
    county_id = fields.UUID(load_default=None)


class VillageListArgs(PageArgs):
    township_id = fields.UUID(load_default=None)


class StationListArgs(PageArgs):
    township_id = fields.UUID(load_default=None)


CountyPage = page_schema(CountySchema, "CountyPage")
TownshipPage = page_schema(TownshipSchema, "TownshipPage")
VillagePage = page_schema(VillageSchema, "VillagePage")
StationPage = page_schema(StationSchema, "StationPage")
