"""Response and query shapes of offers and loans. Money in fen; no identity numbers."""

from __future__ import annotations

from marshmallow import fields, validate

from core.api import PageArgs, ResponseSchema, page_schema, public_id_field
from lending.applications.fieldwork_schemas import FieldVillageSchema
from lending.applications.schemas import ProductRefSchema
from lending.products.models import DAY_COUNTS, REPAYMENT_TYPES
from lending.servicing.models import BUCKETS, LOAN_STATUSES

KINDS = ("term", "line")


class PlannedSchema(ResponseSchema):
    seq = fields.Integer()
    due_date = fields.Date()
    principal_due_fen = fields.Integer()
    interest_due_fen = fields.Integer(metadata={
        "description": "Estimated: the interest accrued daily to this date if paid on time"})
    total_fen = fields.Integer()


class TotalsSchema(ResponseSchema):
    principal_fen = fields.Integer()
    interest_fen = fields.Integer()
    total_fen = fields.Integer()


class LineSchema(ResponseSchema):
    limit_fen = fields.Integer()
    drawn_fen = fields.Integer(metadata={"description": "The principal outstanding"})
    available_fen = fields.Integer(metadata={
        "description": "What can be drawn now: 0 while frozen or not active"})
    frozen = fields.Boolean()
    line_ends_on = fields.Date(allow_none=True)
    next_review_on = fields.Date(allow_none=True)


class OfferSchema(ResponseSchema):
    application_id = fields.UUID()
    product = fields.Nested(ProductRefSchema)
    kind = fields.String(validate=validate.OneOf(KINDS))
    repayment_type = fields.String(validate=validate.OneOf(REPAYMENT_TYPES))
    crop = fields.String()
    principal_fen = fields.Integer(metadata={"description": "The approved amount (a line: "
                                                            "its limit)"})
    term_months = fields.Integer()
    grace_months = fields.Integer()
    annual_rate_bp = fields.Integer(metadata={"description": "435 = 4.35 % a year"})
    penalty_rate_bp = fields.Integer(metadata={"description": "On overdue amounts, a year"})
    day_count = fields.String(validate=validate.OneOf(DAY_COUNTS))
    start_on = fields.Date(metadata={"description": "The business date the plan assumes the "
                                                    "money is paid out"})
    maturity_date = fields.Date(allow_none=True)
    installments = fields.List(fields.Nested(PlannedSchema), metadata={
        "description": "Empty for a revolving line"})
    totals = fields.Nested(TotalsSchema)
    line = fields.Nested(LineSchema, allow_none=True)
    explanation = fields.List(fields.String(), metadata={
        "description": "When repayments fall and what they cost, in the caller's language"})


class LoanFarmerSchema(ResponseSchema):
    id = public_id_field()
    name = fields.String()


class BalancesSchema(ResponseSchema):
    principal_outstanding_fen = fields.Integer()
    interest_outstanding_fen = fields.Integer()
    penalty_outstanding_fen = fields.Integer()
    overpaid_fen = fields.Integer(metadata={"description": "Paid beyond what is owed"})
    total_outstanding_fen = fields.Integer()


class NextDueSchema(ResponseSchema):
    seq = fields.Integer()
    due_date = fields.Date()
    amount_fen = fields.Integer(metadata={"description": "Still to pay of this installment"})
    principal_fen = fields.Integer()
    interest_fen = fields.Integer()


class InstallmentSchema(ResponseSchema):
    seq = fields.Integer()
    due_date = fields.Date()
    principal_due_fen = fields.Integer()
    interest_due_fen = fields.Integer()
    total_due_fen = fields.Integer()
    principal_paid_fen = fields.Integer()
    interest_paid_fen = fields.Integer()
    paid_on = fields.Date(allow_none=True, metadata={"description": "When fully paid"})
    status = fields.String(validate=validate.OneOf(("paid", "overdue", "upcoming")))


class LoanSummarySchema(ResponseSchema):
    id = public_id_field()
    application_id = fields.UUID()
    farmer = fields.Nested(LoanFarmerSchema)
    village = fields.Nested(FieldVillageSchema)
    product = fields.Nested(ProductRefSchema)
    kind = fields.String(validate=validate.OneOf(KINDS))
    status = fields.String(validate=validate.OneOf(LOAN_STATUSES))
    repayment_type = fields.String(validate=validate.OneOf(REPAYMENT_TYPES))
    crop = fields.String()
    principal_fen = fields.Integer()
    annual_rate_bp = fields.Integer()
    accepted_at = fields.DateTime()
    disbursed_on = fields.Date(allow_none=True)
    maturity_date = fields.Date(allow_none=True)
    dpd = fields.Integer(metadata={"description": "Days past due"})
    bucket = fields.String(validate=validate.OneOf(BUCKETS))
    balances = fields.Nested(BalancesSchema)
    next_due = fields.Nested(NextDueSchema, allow_none=True)
    line = fields.Nested(LineSchema, allow_none=True)


class LoanSchema(LoanSummarySchema):
    term_months = fields.Integer()
    grace_months = fields.Integer()
    penalty_rate_bp = fields.Integer()
    day_count = fields.String(validate=validate.OneOf(DAY_COUNTS))
    settled_on = fields.Date(allow_none=True)
    relief_paused = fields.Boolean(metadata={
        "description": "An insurance relief case pauses ageing and penalties"})
    installments = fields.List(fields.Nested(InstallmentSchema))


class LoanListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(LOAN_STATUSES))
    bucket = fields.String(validate=validate.OneOf(BUCKETS))
    village_id = fields.UUID(metadata={"description": "Only this village's loans"})


LoanPage = page_schema(LoanSummarySchema, "LoanPage")
