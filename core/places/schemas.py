"""Request and response shapes for counties, townships, villages and stations.

Requests and responses have their own schemas: a response lists every field, always present;
a request accepts only what a client may set, and refuses the rest of the resource's fields
as the server's (``RESOURCE``).
"""

from __future__ import annotations

from marshmallow import fields, validate

from core.api import (
    PageArgs,
    Ref,
    RefList,
    ResponseSchema,
    Schema,
    UpdateSchema,
    digits_field,
    name_field,
    page_schema,
    public_id_field,
)

STATION_VILLAGES = validate.Length(min=1, max=500)

# --- responses ----------------------------------------------------------------------------------


class CountySchema(ResponseSchema):
    id = public_id_field()
    code = fields.String(metadata={"description": "6-digit division code"})
    name = fields.String()
    created_at = fields.DateTime()


class TownshipSchema(ResponseSchema):
    id = public_id_field()
    code = fields.String(metadata={"description": "9-digit division code"})
    name = fields.String()
    county_id = Ref("county")
    created_at = fields.DateTime()


class VillageSchema(ResponseSchema):
    id = public_id_field()
    code = fields.String(metadata={"description": "12-digit division code"})
    name = fields.String()
    township_id = Ref("township")
    created_at = fields.DateTime()


class StationSchema(ResponseSchema):
    id = public_id_field()
    name = fields.String()
    township_id = Ref("township")
    village_ids = RefList("villages")
    created_at = fields.DateTime()


# --- requests -----------------------------------------------------------------------------------

class CountyCreateSchema(Schema):
    RESOURCE = CountySchema
    code = digits_field(6, required=True)
    name = name_field(required=True)


class TownshipCreateSchema(Schema):
    RESOURCE = TownshipSchema
    code = digits_field(9, required=True, metadata={
        "description": "9 digits; the first 6 are an existing county's code"})
    name = name_field(required=True)


class VillageCreateSchema(Schema):
    RESOURCE = VillageSchema
    code = digits_field(12, required=True, metadata={
        "description": "12 digits; the first 9 are an existing township's code"})
    name = name_field(required=True)


class VillageUpdateSchema(UpdateSchema):
    RESOURCE, CREATED_BY = VillageSchema, VillageCreateSchema
    name = name_field()


class StationCreateSchema(Schema):
    RESOURCE = StationSchema
    name = name_field(required=True)
    township_id = fields.UUID(required=True)
    village_ids = fields.List(fields.UUID(), required=True, validate=STATION_VILLAGES,
                              metadata={"description": "Villages of the township's county"})


class StationUpdateSchema(UpdateSchema):
    RESOURCE, CREATED_BY = StationSchema, StationCreateSchema
    name = name_field()
    village_ids = fields.List(fields.UUID(), validate=STATION_VILLAGES,
                              metadata={"description": "Replaces the station's villages"})


class TownshipListArgs(PageArgs):
    county_id = fields.UUID()


class VillageListArgs(PageArgs):
    township_id = fields.UUID()


class StationListArgs(PageArgs):
    township_id = fields.UUID()


CountyPage = page_schema(CountySchema, "CountyPage")
TownshipPage = page_schema(TownshipSchema, "TownshipPage")
VillagePage = page_schema(VillageSchema, "VillagePage")
StationPage = page_schema(StationSchema, "StationPage")
