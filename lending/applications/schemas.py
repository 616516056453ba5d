"""Request and response shapes of a farmer's loan application.

Amounts are integer fen; areas are decimal mu with two places, sent and returned as JSON
strings (``"5.25"``) so that no client rounds them through a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates, validates_schema

from core.api import (
    Identifier,
    PageArgs,
    Ref,
    ResponseSchema,
    Schema,
    Text,
    page_schema,
    public_id_field,
)
from core.i18n import N_, _
from core.people.schemas import CONSENT_PURPOSES
from lending.applications import states


class LandCode(Identifier):
    """A certificate number or parcel code as the land registry writes it."""

    SHAPE = "[0-9A-Za-z-]{1,40}"
    ERROR = N_("Letters, digits and '-' only, 1 to 40 characters.")
    EXAMPLE = "330521101201J0000000001"


class AreaMu(Identifier):
    """An area in mu as decimal text with at most two decimals (no float rounding on the way);
    the schema turns it into a :class:`~decimal.Decimal`."""

    SHAPE = r"[0-9]{1,6}(\.[0-9]{1,2})?"
    ERROR = N_("A number of mu with at most two decimals, as text, e.g. \"5.25\".")
    EXAMPLE = "5.25"


class ParcelInSchema(Schema):
    certificate_number = LandCode(required=True, metadata={
        "description": "Land contract certificate number (承包经营权证号)"})
    parcel_code = LandCode(required=True, metadata={
        "description": "Parcel code (地块编码) on that certificate"})
    declared_area_mu = AreaMu(required=True, metadata={
        "description": "Area the farmer declares, in mu (more than 0)"})

    @validates("declared_area_mu")
    def _positive(self, value: str, **_kwargs: Any) -> None:
        if Decimal(value) <= 0:
            raise ValidationError(_("Must be more than 0."))

    @post_load
    def _area(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        return {**data, "declared_area_mu": Decimal(data["declared_area_mu"])}


class ApplicationCreateSchema(Schema):
    product_id = Ref("product", required=True, metadata={"description": "Loan product id"})
    amount_fen = fields.Integer(required=True, validate=validate.Range(min=1, max=10**12))
    term_months = fields.Integer(required=True, validate=validate.Range(min=1, max=360))
    purpose = Text(required=True, validate=validate.Length(min=1, max=200), metadata={
        "description": "What the money is for, in the farmer's words (e.g. 化肥和种子)"})
    crop = Text(required=True, validate=validate.Length(min=1, max=30), metadata={
        "description": "Crop code of the season financed (rice, wheat, corn, soybean, ...)"})
    parcels = fields.List(fields.Nested(ParcelInSchema), required=True,
                          validate=validate.Length(min=1, max=50))
    consents = fields.List(
        fields.String(validate=validate.OneOf(CONSENT_PURPOSES)),
        load_default=list, validate=validate.Length(max=len(CONSENT_PURPOSES)),
        metadata={"description": "Consents (PIPL) the farmer grants with this application; "
                                 "credit_decision and land_registry must be active, "
                                 "insurance lets the bank count insured parcels"})
    draft = fields.Boolean(load_default=False, metadata={
        "description": "Keep as a draft instead of submitting for a decision now"})

    @validates_schema
    def _distinct_parcels(self, data: dict[str, Any], **_kwargs: Any) -> None:
        codes = [parcel["parcel_code"] for parcel in data.get("parcels", [])]
        if len(codes) != len(set(codes)):
            raise ValidationError({"parcels": ["A parcel is listed twice."]})


class ProductRefSchema(ResponseSchema):
    id = public_id_field()
    code = fields.String()
    name = fields.String()


class ParcelOutSchema(ResponseSchema):
    certificate_number = fields.String()
    parcel_code = fields.String()
    declared_area_mu = fields.Decimal(places=2, as_string=True, metadata={
        "type": "string", "description": "In mu, as decimal text (\"5.25\")"})


class ReasonSchema(ResponseSchema):
    code = fields.String(metadata={"description": "Stable reason code (never translated)"})
    explanation = fields.String(metadata={"description": "In the caller's language"})


class FactorSchema(ResponseSchema):
    factor = fields.String()
    value = fields.Raw(allow_none=True)
    points = fields.Integer()


class DecisionOutSchema(ResponseSchema):
    outcome = fields.String(validate=validate.OneOf(
        ["approve", "decline", "refer", "field_check"]))
    policy_version = fields.String()
    limit_fen = fields.Integer()
    amount_fen = fields.Integer()
    score = fields.Integer()
    factors = fields.List(fields.Nested(FactorSchema))
    reasons = fields.List(fields.Nested(ReasonSchema))
    decided_at = fields.DateTime()


class LoanApplicationSchema(ResponseSchema):
    id = public_id_field()
    state = fields.String(validate=validate.OneOf(states.STATES))
    product = fields.Nested(ProductRefSchema)
    amount_fen = fields.Integer()
    term_months = fields.Integer()
    purpose = fields.String()
    crop = fields.String()
    parcels = fields.List(fields.Nested(ParcelOutSchema))
    created_at = fields.DateTime()
    submitted_at = fields.DateTime(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    approved_amount_fen = fields.Integer(allow_none=True)
    info_requested = fields.Boolean()
    explanation = fields.String(metadata={
        "description": "Where the application stands and what happens next, in plain language "
                       "and the caller's language"})
    decision = fields.Nested(DecisionOutSchema, allow_none=True, metadata={
        "description": "The latest automatic decision; null before the first one"})


class ApplicationListArgs(PageArgs):
    state = fields.String(validate=validate.OneOf(states.STATES))
    policy_version = Text(validate=validate.Length(min=1, max=40), metadata={
        "description": "Only applications whose latest decision this policy version made"})


ApplicationPage = page_schema(LoanApplicationSchema, "LoanApplicationPage")


class LandParcelSchema(ResponseSchema):
    code = fields.String(metadata={"description": "Parcel code (地块编码)"})
    area_mu = fields.Decimal(places=2, as_string=True, metadata={"type": "string"})
    land_class = fields.String()
    village_code = fields.String()
    contract_end = fields.Date()
    pledged = fields.Boolean(metadata={"description": "An active pledge is registered on it"})


class LandCertificateSchema(ResponseSchema):
    number = fields.String(metadata={"description": "Certificate number (承包经营权证号)"})
    parcels = fields.List(fields.Nested(LandParcelSchema))


class LandRecordsSchema(ResponseSchema):
    certificates = fields.List(fields.Nested(LandCertificateSchema))
