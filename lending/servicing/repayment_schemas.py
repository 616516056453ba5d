"""Bodies and answers of the repayment API: channel notifications, branch records, refunds,
settlement quotes."""

from __future__ import annotations

from marshmallow import fields, validate

from core.api import QuerySchema, Ref, ResponseSchema, Schema, Text, public_id_field

MAX_FEN = 10**13  # far above any rural loan; keeps sums inside BIGINT


def _amount() -> fields.Integer:
    return fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_FEN),
                          metadata={"description": "Amount in fen (1/100 yuan), more than zero"})


class RepaymentSchema(ResponseSchema):
    """A booked repayment and how it was allocated (the same answer for a repeat)."""

    id = public_id_field()
    loan_id = Ref("loan")
    channel = fields.String()
    reference = fields.String()
    amount_fen = fields.Integer()
    received_at = fields.DateTime()
    business_date = fields.Date()
    penalty_fen = fields.Integer(metadata={"description": "To penalty"})
    interest_fen = fields.Integer(metadata={"description": "To interest"})
    principal_fen = fields.Integer(metadata={"description": "To principal"})
    overpaid_fen = fields.Integer(metadata={
        "description": "Beyond what was owed: the loan's overpaid credit, refundable"})


class NotificationSchema(Schema):
    """A payment channel's notification, signed with the channel's shared secret."""

    RESOURCE = RepaymentSchema

    channel = Text(required=True, validate=validate.Length(min=1, max=30))
    reference = Text(required=True, validate=validate.Length(min=1, max=80), metadata={
        "description": "The channel's own reference: the same one again books nothing"})
    loan_id = fields.UUID(required=True, metadata={"description": "The loan's id"})
    amount_fen = _amount()
    paid_at = fields.AwareDateTime(required=True, metadata={
        "description": "When the farmer paid, with its UTC offset"})


class BranchRepaymentSchema(Schema):
    """Money a farmer paid at a branch, recorded by staff."""

    RESOURCE = RepaymentSchema

    reference = Text(required=True, validate=validate.Length(min=1, max=80), metadata={
        "description": "The branch receipt number: the same one again books nothing"})
    amount_fen = _amount()


class RefundCreateSchema(Schema):
    amount_fen = _amount()
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


class RefundSchema(ResponseSchema):
    id = public_id_field()
    loan_id = fields.UUID()
    amount_fen = fields.Integer()
    reason = fields.String()
    business_date = fields.Date()
    overpaid_fen = fields.Integer(metadata={
        "description": "The loan's overpaid credit left after the refund"})


class QuoteArgs(QuerySchema):
    on = fields.Date(metadata={"description": "The settlement day (default: today); not "
                                              "before the business date"})


class QuoteSchema(ResponseSchema):
    """What settles the loan on a day: pay ``total_fen`` on ``on``."""

    loan_id = fields.UUID()
    on = fields.Date()
    principal_fen = fields.Integer()
    interest_fen = fields.Integer(metadata={"description": "Accrued to the day, unpaid"})
    penalty_fen = fields.Integer()
    overpaid_fen = fields.Integer(metadata={
        "description": "Overpaid credit: refundable by staff, not netted from the total"})
    total_fen = fields.Integer()
