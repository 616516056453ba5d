"""Request and response shapes for credit policy versions and the crop calendar.

The decision model travels as the JDM document the GoRules editor saves (a JSON object); its
meaning is checked by the service (it must compile, evaluate the smoke cases and name known
reason codes), not here.
"""

from __future__ import annotations

from marshmallow import fields, validate

from core.api import (
    Identifier,
    PageArgs,
    QuerySchema,
    ResponseSchema,
    Schema,
    Text,
    digits_field,
    page_schema,
    public_id_field,
)
from core.i18n import N_

MAX_CROP_ROWS = 5_000
MAX_KG_PER_MU = 20_000
MAX_FEN_PER_KG = 1_000_000
MAX_FEN_PER_MU = 100_000_000


class PolicyVersion(Identifier):
    """A policy version's name: digits, letters, ``.``, ``-``, ``_`` (``2026.1``)."""

    SHAPE = "[0-9A-Za-z][0-9A-Za-z._-]{0,39}"
    ERROR = N_("1 to 40 letters, digits, '.', '-' or '_', starting with a letter or digit.")
    EXAMPLE = "2026.2"


class CropCode(Identifier):
    """A crop code of the crop table (``rice``, ``sweet_potato``)."""

    SHAPE = "[a-z][a-z_]{1,29}"
    ERROR = N_("2 to 30 lowercase letters or '_', starting with a letter.")
    EXAMPLE = "rice"


class MonthDay(Identifier):
    """A calendar day of any year, ``MM-DD``."""

    SHAPE = "(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    ERROR = N_("A month and day as MM-DD.")
    EXAMPLE = "09-15"


def _positive(high: int, description: str) -> fields.Integer:
    return fields.Integer(required=True, validate=validate.Range(min=1, max=high),
                          metadata={"description": description})


class CropReferenceSchema(ResponseSchema):
    crop = fields.String()
    county_code = fields.String()
    yield_kg_per_mu = fields.Integer(metadata={"description": "Expected yield, kg per mu"})
    price_fen_per_kg = fields.Integer(metadata={"description": "Farm-gate price, fen per kg"})
    insured_sum_fen_per_mu = fields.Integer(metadata={"description": "Typical insured sum"})
    planting_from = fields.String(metadata={"description": "MM-DD"})
    planting_to = fields.String(metadata={"description": "MM-DD"})
    harvest_from = fields.String(metadata={"description": "MM-DD: repayments are scheduled "
                                                          "by the harvest window"})
    harvest_to = fields.String(metadata={"description": "MM-DD"})


class CropReferenceCreateSchema(Schema):
    RESOURCE = CropReferenceSchema
    crop = CropCode(required=True)
    county_code = digits_field(6, required=True)
    yield_kg_per_mu = _positive(MAX_KG_PER_MU, "Expected yield, kg per mu")
    price_fen_per_kg = _positive(MAX_FEN_PER_KG, "Farm-gate price, fen per kg")
    insured_sum_fen_per_mu = _positive(MAX_FEN_PER_MU, "Typical insured sum, fen per mu")
    planting_from = MonthDay(required=True)
    planting_to = MonthDay(required=True)
    harvest_from = MonthDay(required=True)
    harvest_to = MonthDay(required=True)


class CreditPolicySummarySchema(ResponseSchema):
    id = public_id_field()
    version = fields.String()
    description = fields.String()
    effective_from = fields.DateTime()
    created_by = fields.String()
    created_at = fields.DateTime()


class CreditPolicySchema(CreditPolicySummarySchema):
    decision_model = fields.Dict(metadata={
        "description": "The GoRules JSON Decision Model (open it in the JDM editor)"})
    crops = fields.List(fields.Nested(CropReferenceSchema))


class CreditPolicyCreateSchema(Schema):
    RESOURCE = CreditPolicySchema
    version = PolicyVersion(required=True)
    description = Text(required=True, validate=validate.Length(min=1, max=300))
    effective_from = fields.AwareDateTime(metadata={
        "description": "When it takes effect for new applications (default: now; never in "
                       "the past)"})
    decision_model = fields.Dict(required=True, metadata={
        "description": "The GoRules JSON Decision Model, as the JDM editor saves it"})
    crops = fields.List(fields.Nested(CropReferenceCreateSchema), required=True,
                        validate=validate.Length(min=1, max=MAX_CROP_ROWS))


CreditPolicyPage = page_schema(CreditPolicySummarySchema, "CreditPolicyPage")


class CreditPolicyListArgs(PageArgs):
    version = PolicyVersion(metadata={"description": "Only the version of this name"})


class CropCalendarArgs(QuerySchema):
    county_code = digits_field(6, metadata={"description": "Only this county's rows"})
    crop = CropCode(metadata={"description": "Only this crop"})


class CropCalendarSchema(ResponseSchema):
    policy_version = fields.String()
    effective_from = fields.DateTime()
    crops = fields.List(fields.Nested(CropReferenceSchema))
