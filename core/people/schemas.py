"""Request and response shapes for farmers, consents, coordinators and staff.

Requests and responses have their own schemas (a generated client reads a response without
write-only fields, and sends a request without server-owned ones). ID numbers come in only
and go out masked; passwords come in only. Validation messages never repeat what was sent.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from core.api import (
    IdNumber,
    PageArgs,
    Phone,
    Ref,
    ResponseSchema,
    Schema,
    SettingRange,
    Shape,
    Text,
    UpdateSchema,
    Username,
    name_field,
    page_schema,
    public_id_field,
)
from core.authz import STAFF_ROLES
from core.people import idnumber
from core.security import MIN_PASSWORD_LENGTH

CONSENT_PURPOSES = ("land_registry", "insurance", "credit_decision")
CONSENT_STATUSES = ("active", "revoked", "expired", "pending")
PASSWORD = validate.Length(min=MIN_PASSWORD_LENGTH, max=200)
USERNAME = Shape(Username.SHAPE, Username.ERROR)  # the CLI's check


def _valid_id_number(value: str) -> None:
    try:
        idnumber.validate(value)
    except idnumber.InvalidIdNumberError as exc:
        raise ValidationError(idnumber.explain(exc)) from exc


def id_number_field() -> IdNumber:
    return IdNumber(required=True, validate=_valid_id_number, metadata={
        "description": "18-character resident ID number (GB 11643: check digit and birth date "
                       "verified); never returned, see id_number_masked"})


def _roles(**kwargs: Any) -> fields.List:
    return fields.List(fields.String(validate=validate.OneOf(sorted(STAFF_ROLES))),
                       validate=validate.Length(min=1, max=len(STAFF_ROLES)), **kwargs)


class Roles(fields.List):
    """Staff roles as a response shows them: sorted, from ``role_set``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(validate=validate.OneOf(sorted(STAFF_ROLES))), **kwargs)

    def get_value(self, obj: Any, *_args: Any, **_kwargs: Any) -> Any:
        return sorted(obj.role_set)


class ConsentStatus(fields.String):
    """A consent's status now: computed, not stored."""

    def get_value(self, obj: Any, *_args: Any, **_kwargs: Any) -> Any:
        return obj.status()


# --- farmers --------------------------------------------------------------------------------

class FarmerSchema(ResponseSchema):
    id = public_id_field()
    name = fields.String()
    phone = fields.String()
    id_number_masked = fields.String(metadata={"description": "e.g. 3305**********1231"})
    birth_date = fields.Date(allow_none=True)
    village_id = Ref("village")
    is_active = fields.Boolean()
    created_at = fields.DateTime()


class FarmerCreateSchema(Schema):
    RESOURCE = FarmerSchema
    name = name_field(required=True)
    phone = Phone(required=True)
    id_number = id_number_field()
    village_id = fields.UUID(required=True)


class FarmerUpdateSchema(UpdateSchema):
    RESOURCE, CREATED_BY = FarmerSchema, FarmerCreateSchema
    name = name_field()
    phone = Phone()


class FarmerLookupSchema(Schema):
    id_number = id_number_field()


class FarmerListArgs(PageArgs):
    village_id = fields.UUID()


# --- consents -------------------------------------------------------------------------------

class ConsentSchema(ResponseSchema):
    id = public_id_field()
    farmer_id = Ref("farmer")
    purpose = fields.String(validate=validate.OneOf(CONSENT_PURPOSES))
    evidence = fields.String(allow_none=True)
    channel = fields.String(validate=validate.OneOf(("app", "coordinator")))
    recorded_by = fields.String(metadata={"description": "Who recorded it (kind:id)"})
    granted_at = fields.DateTime()
    expires_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)
    status = ConsentStatus(validate=validate.OneOf(CONSENT_STATUSES))


class ConsentCreateSchema(Schema):
    RESOURCE = ConsentSchema
    purpose = fields.String(required=True, validate=validate.OneOf(CONSENT_PURPOSES))
    valid_days = fields.Integer(required=True, validate=SettingRange("NONGDAI_CONSENT_MAX_DAYS"),
                                metadata={"description": "1 to NONGDAI_CONSENT_MAX_DAYS"})
    evidence = Text(load_default=None, allow_none=True, validate=validate.Length(max=200),
                    metadata={"description": "Reference to the signed form or recording",
                              "examples": ["纸质授权书 2024-031"]})


# --- coordinators ---------------------------------------------------------------------------

class CoordinatorSchema(ResponseSchema):
    id = public_id_field()
    username = fields.String()
    name = fields.String()
    phone = fields.String()
    station_id = Ref("station")
    is_active = fields.Boolean()
    created_at = fields.DateTime()


class CoordinatorCreateSchema(Schema):
    RESOURCE = CoordinatorSchema
    username = Username(required=True)
    name = name_field(required=True)
    phone = Phone(required=True)
    password = fields.String(required=True, validate=PASSWORD)
    station_id = fields.UUID(required=True)


class CoordinatorUpdateSchema(UpdateSchema):
    RESOURCE, CREATED_BY = CoordinatorSchema, CoordinatorCreateSchema
    name = name_field()
    phone = Phone()
    station_id = fields.UUID()
    is_active = fields.Boolean()


class CoordinatorListArgs(PageArgs):
    station_id = fields.UUID()


# --- staff ----------------------------------------------------------------------------------

class StaffSchema(ResponseSchema):
    id = public_id_field()
    username = fields.String()
    name = fields.String()
    roles = Roles()
    is_active = fields.Boolean()
    created_at = fields.DateTime()


class StaffCreateSchema(Schema):
    RESOURCE = StaffSchema
    username = Username(required=True)
    name = name_field(required=True)
    password = fields.String(required=True, validate=PASSWORD)
    roles = _roles(required=True)


class StaffUpdateSchema(UpdateSchema):
    RESOURCE, CREATED_BY = StaffSchema, StaffCreateSchema
    name = name_field()
    roles = _roles()
    is_active = fields.Boolean()


FarmerPage = page_schema(FarmerSchema, "FarmerPage")
ConsentPage = page_schema(ConsentSchema, "ConsentPage")
CoordinatorPage = page_schema(CoordinatorSchema, "CoordinatorPage")
StaffPage = page_schema(StaffSchema, "StaffPage")
