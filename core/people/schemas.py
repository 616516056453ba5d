"""Request and response shapes for farmers, consents, coordinators and staff.

ID numbers come in only (``id_number`` is load-only) and go out masked; passwords come in only.
Validation messages never repeat what was sent.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from core.api import PageArgs, Schema, page_schema
from core.auth.passwords import MIN_LENGTH
from core.authz import STAFF_ROLES
from core.people import idnumber
from core.places.schemas import Ref, Text, UpdateSchema, name_field, public_id_field

CONSENT_PURPOSES = ("land_registry", "insurance", "credit_decision")

PHONE = validate.Regexp(r"^1\d{10}$", error="Must be 11 digits starting with 1.")
USERNAME = validate.Regexp(r"^[a-z][a-z0-9_.-]{2,59}$", error=(
    "3 to 60 lowercase letters, digits, '.', '_' or '-', starting with a letter."))
PASSWORD = validate.Length(min=MIN_LENGTH, max=200)


def _valid_id_number(value: str) -> None:
    try:
        idnumber.validate(value)
    except idnumber.InvalidIdNumberError as exc:
        raise ValidationError(f"Not a valid resident ID number: {exc}.") from exc


def id_number_field() -> fields.String:
    return fields.String(required=True, load_only=True, validate=_valid_id_number, metadata={
        "description": "18-character resident ID number; never returned (see id_number_masked)"})


class Roles(fields.List):
    """Staff roles: a non-empty list of reviewer/approver/admin, dumped from ``role_set``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(validate=validate.OneOf(sorted(STAFF_ROLES))),
                         validate=validate.Length(min=1, max=len(STAFF_ROLES)), **kwargs)

    def get_value(self, obj: Any, *_args: Any, **_kwargs: Any) -> Any:
        return sorted(obj.role_set)


# --- farmers --------------------------------------------------------------------------------

class FarmerSchema(Schema):
    id = public_id_field()
    name = name_field(required=True)
    phone = fields.String(required=True, validate=PHONE)
    id_number = id_number_field()
    id_number_masked = fields.String(dump_only=True)
    birth_date = fields.Date(dump_only=True)
    village_id = Ref("village", required=True)
    is_active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class FarmerUpdateSchema(UpdateSchema):
    name = name_field()
    phone = fields.String(validate=PHONE)


class FarmerLookupSchema(Schema):
    id_number = id_number_field()


class FarmerListArgs(PageArgs):
    village_id = fields.UUID(load_default=None)


# --- consents -------------------------------------------------------------------------------

class ConsentSchema(Schema):
    id = public_id_field()
    farmer_id = Ref("farmer", dump_only=True)
    purpose = fields.String(required=True, validate=validate.OneOf(CONSENT_PURPOSES))
    valid_days = fields.Integer(required=True, load_only=True, validate=validate.Range(min=1),
                                metadata={"description": "1 to NONGDAI_CONSENT_MAX_DAYS"})
    evidence = Text(load_default=None, allow_none=True, validate=validate.Length(max=200),
                    metadata={"description": "Reference to the signed form or recording"})
    channel = fields.String(dump_only=True)
    recorded_by = fields.String(dump_only=True)
    granted_at = fields.DateTime(dump_only=True)
    expires_at = fields.DateTime(dump_only=True)
    revoked_at = fields.DateTime(dump_only=True)
    status = fields.Function(lambda consent: consent.status(), dump_only=True,
                             metadata={"description": "active, revoked or expired"})


# --- coordinators ---------------------------------------------------------------------------

class CoordinatorSchema(Schema):
    id = public_id_field()
    username = fields.String(required=True, validate=USERNAME)
    name = name_field(required=True)
    phone = fields.String(required=True, validate=PHONE)
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    station_id = Ref("station", required=True)
    is_active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class CoordinatorUpdateSchema(UpdateSchema):
    name = name_field()
    phone = fields.String(validate=PHONE)
    station_id = fields.UUID()
    is_active = fields.Boolean()


class CoordinatorListArgs(PageArgs):
    station_id = fields.UUID(load_default=None)


# --- staff ----------------------------------------------------------------------------------

class StaffSchema(Schema):
    id = public_id_field()
    username = fields.String(required=True, validate=USERNAME)
    name = name_field(required=True)
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    roles = Roles(required=True)
    is_active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class StaffUpdateSchema(UpdateSchema):
    name = name_field()
    roles = Roles()
    is_active = fields.Boolean()


FarmerPage = page_schema(FarmerSchema, "FarmerPage")
ConsentPage = page_schema(ConsentSchema, "ConsentPage")
CoordinatorPage = page_schema(CoordinatorSchema, "CoordinatorPage")
StaffPage = page_schema(StaffSchema, "StaffPage")
