"""Request and response shapes of the revolving line: draws and reviews."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from core.api import ResponseSchema, Schema, Text, page_schema, public_id_field
from lending.products.models import MAX_AMOUNT_FEN
from lending.servicing import lines
from lending.servicing.line_models import REASON_MAX

AMOUNT = validate.Range(min=1, max=MAX_AMOUNT_FEN)


class LineStateSchema(ResponseSchema):
    limit_fen = fields.Integer(metadata={"description": "The line's current limit"})
    drawn_fen = fields.Integer(metadata={"description": "Principal drawn and not repaid"})
    available_fen = fields.Integer(metadata={
        "description": "What can be drawn now: 0 when frozen, awaiting review or ended"})
    frozen = fields.Boolean()
    ends_on = fields.Date(allow_none=True, metadata={"description": "No draw from this day"})
    next_review_on = fields.Date(allow_none=True, metadata={
        "description": "The annual review; after it passes unreviewed the line is frozen"})


class DrawSchema(ResponseSchema):
    id = public_id_field()
    seq = fields.Integer(metadata={"description": "1 for the line's first draw, then 2, ..."})
    amount_fen = fields.Integer()
    status = fields.String(metadata={"description": "authorised: booked and being paid out"})
    drawn_on = fields.Date(allow_none=True, metadata={"description": "The business date"})
    due_date = fields.Date(allow_none=True, metadata={
        "description": "When the draw is to be repaid (12 months on, at most the line's end)"})
    principal_repaid_fen = fields.Integer(metadata={
        "description": "Repaid of this draw's principal (repayments pay the oldest first)"})
    payout_status = fields.String(allow_none=True, metadata={
        "description": "The payout instruction: pending, exported, confirmed, failed"})


class DrawCreatedSchema(DrawSchema):
    line = fields.Nested(LineStateSchema, metadata={"description": "The line after the draw"})


class DrawCreateSchema(Schema):
    RESOURCE = DrawCreatedSchema
    amount_fen = fields.Integer(required=True, validate=AMOUNT, metadata={
        "description": "At most the line's available amount"})


DrawPage = page_schema(DrawSchema, "DrawPage")


class LineReviewSchema(ResponseSchema):
    id = public_id_field()
    action = fields.String(validate=validate.OneOf((*lines.ACTIONS, lines.LAPSE)), metadata={
        "description": "lapse: frozen by the daily check when the review date passed"})
    staff = fields.Nested(ResponseSchema.from_dict({
        "id": public_id_field(), "name": fields.String()}, name="LineReviewStaff"),
        allow_none=True, metadata={"description": "null when the system froze the line"})
    business_date = fields.Date()
    old_limit_fen = fields.Integer()
    new_limit_fen = fields.Integer()
    was_frozen = fields.Boolean()
    frozen = fields.Boolean()
    old_review_on = fields.Date(allow_none=True)
    new_review_on = fields.Date(allow_none=True)
    reason = fields.String()
    created_at = fields.DateTime()


class LineReviewCreatedSchema(LineReviewSchema):
    line = fields.Nested(LineStateSchema, metadata={"description": "The line after the review"})


class LineReviewCreateSchema(Schema):
    RESOURCE = LineReviewCreatedSchema
    action = fields.String(required=True, validate=validate.OneOf(lines.ACTIONS), metadata={
        "description": "renew: next review in 12 months, optionally a new limit; lower: a "
                       "lower limit; freeze / unfreeze: stop / allow new draws"})
    limit_fen = fields.Integer(validate=validate.Range(min=0, max=MAX_AMOUNT_FEN), metadata={
        "description": "renew (optional, at most the product's maximum) and lower (required)"})
    reason = Text(required=True, validate=validate.Length(min=1, max=REASON_MAX))

    @validates_schema
    def _limit_for_action(self, data: dict[str, object], **_kwargs: object) -> None:
        action = data.get("action")
        if "limit_fen" in data and action not in (lines.RENEW, lines.LOWER):
            raise ValidationError({"limit_fen": ["Only renew and lower take a limit."]})
        if action == lines.LOWER and "limit_fen" not in data:
            raise ValidationError({"limit_fen": ["Lowering needs the new limit."]})


LineReviewPage = page_schema(LineReviewSchema, "LineReviewPage")
