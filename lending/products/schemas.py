"""Request and response shapes for loan products.

The shapes here are what JSON Schema can state (code and crop shapes, ranges, the repayment
types); rules between fields and rules that need the database (known counties and crops) are
the service's, so they hold for every caller, the demo seed included.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from core.api import (
    Identifier,
    PageArgs,
    ResponseSchema,
    Schema,
    Text,
    UpdateSchema,
    digits_field,
    name_field,
    page_schema,
    public_id_field,
)
from core.i18n import N_
from lending.policy.schemas import CropCode
from lending.products.models import (
    DAY_COUNTS,
    MAX_AMOUNT_FEN,
    MAX_RATE_BP,
    MAX_TERM_MONTHS,
    REPAYMENT_TYPES,
)

MAX_COUNTIES = 200
MAX_CROPS = 50


class ProductCode(Identifier):
    """A product's stable code: lower-case letters, digits, ``-`` and ``_``."""

    SHAPE = "[a-z][a-z0-9_-]{1,39}"
    ERROR = N_("2 to 40 lowercase letters, digits, '-' or '_', starting with a letter.")
    EXAMPLE = "spring-planting"


def _fen(**kwargs: Any) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=1, max=MAX_AMOUNT_FEN), **kwargs)


def _months(low: int = 1, **kwargs: Any) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=low, max=MAX_TERM_MONTHS), **kwargs)


def _rate(**kwargs: Any) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=1, max=MAX_RATE_BP), metadata={
        "description": "Annual rate in basis points (435 = 4.35 % a year)"}, **kwargs)


def _ceiling(**kwargs: Any) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=0, max=MAX_AMOUNT_FEN), metadata={
        "description": "Largest amount (fen) decided without a person; at most "
                       "max_amount_fen; 0 sends every application to review"}, **kwargs)


def _crops(**kwargs: Any) -> fields.List:
    return fields.List(CropCode(), validate=validate.Length(max=MAX_CROPS), metadata={
        "description": "Crops it finances (the current credit policy's crop codes); "
                       "empty: any purpose"}, **kwargs)


def _counties(**kwargs: Any) -> fields.List:
    return fields.List(digits_field(6), validate=validate.Length(min=1, max=MAX_COUNTIES),
                       metadata={"description": "6-digit codes of the registered counties "
                                                "it serves"}, **kwargs)


def _description(**kwargs: Any) -> Text:
    return Text(validate=validate.Length(max=500), metadata={
        "description": "What the farmer reads about it, in plain language",
        "examples": ["用于春耕备耕。收获后一次还本付息。"]}, **kwargs)


def _day_count(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(DAY_COUNTS), metadata={
        "description": "Day-count convention for interest (RMB loans: ACT/360)"}, **kwargs)


class LoanProductSchema(ResponseSchema):
    id = public_id_field()
    code = fields.String()
    name = fields.String()
    description = fields.String()
    repayment_type = fields.String(validate=validate.OneOf(REPAYMENT_TYPES))
    min_amount_fen = fields.Integer()
    max_amount_fen = fields.Integer()
    min_term_months = fields.Integer()
    max_term_months = fields.Integer(metadata={
        "description": "Longest term; for a revolving line, the life of the line"})
    annual_rate_bp = fields.Integer(metadata={"description": "435 = 4.35 % a year"})
    grace_months = fields.Integer()
    day_count = fields.String(validate=validate.OneOf(DAY_COUNTS))
    crops = fields.List(fields.String(), metadata={"description": "Empty: any purpose"})
    county_codes = fields.List(fields.String())
    auto_ceiling_fen = fields.Integer()
    is_active = fields.Boolean()
    created_at = fields.DateTime()


class LoanProductCreateSchema(Schema):
    RESOURCE = LoanProductSchema
    code = ProductCode(required=True)
    name = name_field(required=True)
    description = _description(load_default="")
    repayment_type = fields.String(required=True, validate=validate.OneOf(REPAYMENT_TYPES))
    min_amount_fen = _fen(required=True)
    max_amount_fen = _fen(required=True)
    min_term_months = _months(required=True)
    max_term_months = _months(required=True)
    annual_rate_bp = _rate(required=True)
    grace_months = _months(low=0, load_default=0)
    day_count = _day_count(load_default=DAY_COUNTS[0])
    crops = _crops(load_default=list)
    county_codes = _counties(required=True)
    auto_ceiling_fen = _ceiling(required=True)


class LoanProductUpdateSchema(UpdateSchema):
    """Code and repayment type are fixed: a different kind of loan is a new product."""

    RESOURCE, CREATED_BY = LoanProductSchema, LoanProductCreateSchema
    name = name_field()
    description = _description()
    min_amount_fen = _fen()
    max_amount_fen = _fen()
    min_term_months = _months()
    max_term_months = _months()
    annual_rate_bp = _rate()
    grace_months = _months(low=0)
    day_count = _day_count()
    crops = _crops()
    county_codes = _counties()
    auto_ceiling_fen = _ceiling()
    is_active = fields.Boolean(metadata={"description": "false: no longer offered to new "
                                                        "applications"})


class LoanProductListArgs(PageArgs):
    county_code = digits_field(6, metadata={"description": "Only products serving this county"})
    crop = CropCode(metadata={"description": "Only products financing this crop (or any)"})
    is_active = fields.Boolean(metadata={"description": "Staff: only active or inactive ones "
                                                        "(others see active ones only)"})


LoanProductPage = page_schema(LoanProductSchema, "LoanProductPage")
