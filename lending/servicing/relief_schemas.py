"""Request and response shapes of relief cases and manual reschedules."""

from __future__ import annotations

from marshmallow import fields, validate

from core.api import PageArgs, ResponseSchema, Schema, Text, page_schema, public_id_field
from lending.servicing import relief
from lending.servicing.relief_models import KINDS, STATUSES


class ReliefStaffSchema(ResponseSchema):
    id = public_id_field()
    name = fields.String()


class ReliefFarmerSchema(ResponseSchema):
    id = public_id_field()
    name = fields.String()
    id_number_masked = fields.String()


class ReliefLoanSchema(ResponseSchema):
    id = public_id_field()
    farmer = fields.Nested(ReliefFarmerSchema)
    kind = fields.String(metadata={"description": "term | line"})
    status = fields.String()
    crop = fields.String()
    disbursed_on = fields.Date(allow_none=True)
    maturity_date = fields.Date(allow_none=True)
    principal_outstanding_fen = fields.Integer()
    interest_outstanding_fen = fields.Integer()
    penalty_outstanding_fen = fields.Integer()
    dpd = fields.Integer()
    bucket = fields.String()
    relief_paused = fields.Boolean(metadata={
        "description": "Ageing and penalties paused by an open insurance relief case"})


class ReliefClaimSchema(ResponseSchema):
    policy_number = fields.String()
    event = fields.String(metadata={"description": "drought | flood | hail | pests | ..."})
    event_date = fields.String(metadata={"format": "date", "description": "YYYY-MM-DD"})
    loss_ratio = fields.String(metadata={"description": "Assessed, 0..1, e.g. \"0.60\""})
    status = fields.String(metadata={"description": "assessed | paid"})
    crop = fields.String()


class ReliefProposalSchema(ResponseSchema):
    new_maturity_date = fields.Date(allow_none=True, attribute="proposed_maturity_date",
                                    metadata={"description": "null for a credit line"})
    waive_penalties = fields.Boolean()
    penalty_at_opening_fen = fields.Integer(metadata={
        "description": "Penalties outstanding when the case opened (approval waives what is "
                       "outstanding then)"})


class ReliefRescheduleSchema(ResponseSchema):
    id = public_id_field()
    business_date = fields.Date()
    old_maturity_date = fields.Date(allow_none=True)
    new_maturity_date = fields.Date()
    principal_fen = fields.Integer(metadata={"description": "The principal rescheduled"})
    old_schedule = fields.List(fields.Dict(), metadata={"description": "Installments before"})
    new_schedule = fields.List(fields.Dict(), metadata={"description": "Installments after"})


class ReliefCaseSchema(ResponseSchema):
    id = public_id_field()
    kind = fields.String(validate=validate.OneOf(KINDS))
    status = fields.String(validate=validate.OneOf(STATUSES))
    loan = fields.Nested(ReliefLoanSchema)
    claim = fields.Nested(ReliefClaimSchema, allow_none=True, metadata={
        "description": "The insurance claim behind the case (null for a manual reschedule)"})
    proposal = fields.Nested(ReliefProposalSchema, metadata={
        "description": "What approval does"})
    reason = fields.String()
    opened_on = fields.Date(metadata={"description": "Business date it was opened"})
    opened_by = fields.String(metadata={"description": "system | staff:<id>"})
    recommended_by = fields.Nested(ReliefStaffSchema, allow_none=True)
    recommended_at = fields.DateTime(allow_none=True)
    recommendation_reason = fields.String()
    decided_by = fields.Nested(ReliefStaffSchema, allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    decision_reason = fields.String()
    waived_fen = fields.Integer(metadata={"description": "Penalties waived on approval"})
    reschedule = fields.Nested(ReliefRescheduleSchema, allow_none=True)
    created_at = fields.DateTime()


ReliefCasePage = page_schema(ReliefCaseSchema, "ReliefCasePage")


class ReliefCaseArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    kind = fields.String(validate=validate.OneOf(KINDS))
    loan_id = fields.UUID(metadata={"description": "Only this loan's cases"})


class ReliefActionCreateSchema(Schema):
    RESOURCE = ReliefCaseSchema
    action = fields.String(required=True, validate=validate.OneOf(relief.ACTIONS), metadata={
        "description": "recommend (reviewer|approver), approve or reject (approver, never "
                       "the recommender)"})
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


class RescheduleCreateSchema(Schema):
    RESOURCE = ReliefCaseSchema
    new_maturity_date = fields.Date(required=True, metadata={
        "description": "After the business date, at most three years ahead"})
    reason = Text(required=True, validate=validate.Length(min=1, max=500))
    waive_penalties = fields.Boolean(load_default=False, metadata={
        "description": "Also waive the penalties outstanding on approval"})
