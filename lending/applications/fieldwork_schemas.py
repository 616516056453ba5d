"""Request and response shapes of field work: assignments and the checks coordinators record.

Estimated areas are sent as JSON numbers with at most two decimals and returned as strings
(``"3.50"``), like declared areas, so that no client rounds them through a float. The service
checks every rule again (:func:`lending.applications.fieldwork.clean_parcels`): the sync push
calls it without this schema.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields, validate

from core.api import PageArgs, ResponseSchema, Schema, Text, page_schema, public_id_field
from lending.applications import fieldwork, states
from lending.applications.schemas import ParcelOutSchema


class DecimalNumber(fields.Float):
    """A JSON number (not text, not a boolean) loaded as the Decimal of its decimal text.

    A Float to the OpenAPI document, so that its range is stated in numbers (a Decimal field
    states it in strings, which JSON Schema refuses).
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("Must be a number.")
        number = super()._deserialize(value, attr, data, **kwargs)
        return Decimal(str(number))


# Areas go out as decimal text: the document must say string (a Decimal field says number).
AREA_TEXT = {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$", "examples": ["4.75"]}


def _two_decimals(value: Decimal) -> None:
    if value != value.quantize(fieldwork.CENT):
        raise ValidationError("At most two decimals.")


class FieldCheckParcelInSchema(Schema):
    parcel_code = Text(required=True, validate=validate.Length(min=1, max=40), metadata={
        "description": "One of the application's parcel codes (地块编码)"})
    visited = fields.Boolean(required=True, metadata={
        "description": "Whether the coordinator stood on the parcel"})
    crop_seen = Text(load_default=None, allow_none=True,
                     validate=validate.Length(max=fieldwork.CROP_MAX),
                     metadata={"description": "Crop code seen growing (rice, wheat, ...)"})
    estimated_area_mu = DecimalNumber(
        load_default=None, allow_none=True, allow_nan=False,
        validate=[validate.Range(min=0, max=float(fieldwork.AREA_MAX)), _two_decimals],
        metadata={"description": "Area the coordinator estimates, in mu, at most two decimals"})
    latitude = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                            validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                             validate=validate.Range(min=-180, max=180))
    accuracy_m = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                              validate=validate.Range(min=0),
                              metadata={"description": "GPS accuracy in metres"})


class FieldCheckParcelSchema(ResponseSchema):
    parcel_code = fields.String()
    visited = fields.Boolean()
    crop_seen = fields.String(allow_none=True)
    estimated_area_mu = fields.Decimal(places=2, as_string=True, allow_none=True,
                                       metadata=AREA_TEXT)
    latitude = fields.Float(allow_none=True)
    longitude = fields.Float(allow_none=True)
    accuracy_m = fields.Float(allow_none=True)


class FieldCoordinatorSchema(ResponseSchema):
    id = public_id_field()
    name = fields.String()


class FieldCheckFlagSchema(ResponseSchema):
    code = fields.String(metadata={"description": "gps-far-from-parcel, impossible-travel, "
                                                  "before-assignment, field-check-refused"})
    visit_id = fields.String(allow_none=True, metadata={
        "description": "The visit it was found on (null: the check itself)"})
    kind = fields.String(allow_none=True, metadata={"description": "That visit's kind"})
    detail = fields.Dict(keys=fields.String(), metadata={
        "description": "The figures behind it (distance_m, speed_kmh, limits...)"})


class FieldCheckSchema(ResponseSchema):
    id = public_id_field()
    client_id = fields.UUID(metadata={"description": "The device's own id for this check"})
    application_id = fields.UUID()
    assignment_id = fields.UUID(allow_none=True, metadata={
        "description": "The assignment this check completed; null when none was open"})
    coordinator = fields.Nested(FieldCoordinatorSchema)
    identity_verified = fields.Boolean()
    parcels = fields.List(fields.Nested(FieldCheckParcelSchema))
    notes = fields.String()
    recorded_at = fields.DateTime(metadata={"description": "On the device's clock"})
    received_at = fields.DateTime(metadata={"description": "When the server stored it"})
    flags = fields.List(fields.Nested(FieldCheckFlagSchema), metadata={
        "description": "Plausibility findings on the visits behind the check (never a "
                       "refusal): staff judge them"})


class FieldCheckCreateSchema(Schema):
    RESOURCE = FieldCheckSchema
    client_id = fields.UUID(required=True, metadata={
        "description": "Generated on the device for this check: sending it again (a retry, a "
                       "second sync) records it once; other content under it is refused"})
    identity_verified = fields.Boolean(required=True, metadata={
        "description": "The coordinator saw the person and their resident ID card"})
    parcels = fields.List(fields.Nested(FieldCheckParcelInSchema), required=True,
                          validate=validate.Length(max=50))
    notes = Text(load_default="", validate=validate.Length(max=fieldwork.NOTES_MAX))
    recorded_at = fields.AwareDateTime(required=True, metadata={
        "description": "When it was recorded, on the device's clock, with its time zone"})


class FieldVillageSchema(ResponseSchema):
    id = public_id_field()
    code = fields.String()
    name = fields.String()


class FieldFarmerSchema(ResponseSchema):
    id = public_id_field()
    name = fields.String()
    phone = fields.String()
    identity_status = fields.String(validate=validate.OneOf(("verified", "pending")))


class FieldAssignmentSchema(ResponseSchema):
    id = public_id_field()
    kind = fields.String()
    status = fields.String(validate=validate.OneOf(fieldwork.STATUSES))
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    completed_by_id = fields.UUID(allow_none=True, metadata={
        "description": "The coordinator whose check completed it"})
    application_id = fields.UUID()
    application_state = fields.String(validate=validate.OneOf(states.STATES))
    village = fields.Nested(FieldVillageSchema)
    farmer = fields.Nested(FieldFarmerSchema)
    crop = fields.String()
    amount_fen = fields.Integer()
    parcels = fields.List(fields.Nested(ParcelOutSchema), metadata={
        "description": "The parcels to visit, as the farmer declared them"})


class FieldAssignmentListArgs(PageArgs):
    status = fields.String(load_default=fieldwork.OPEN,
                           validate=validate.OneOf(fieldwork.STATUSES),
                           metadata={"description": "open (default), done or cancelled"})
    village_id = fields.UUID()


FieldAssignmentPage = page_schema(FieldAssignmentSchema, "FieldAssignmentPage")

