"""Request and response shapes of staff review: the queue, the case, actions, answers."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from core.api import (
    Identifier,
    PageArgs,
    ResponseSchema,
    Schema,
    Text,
    page_schema,
    public_id_field,
)
from lending.applications import fieldwork, review, states
from lending.applications.fieldwork_schemas import FieldCheckSchema, FieldVillageSchema
from lending.applications.review_models import ANSWER_MAX
from lending.applications.schemas import FactorSchema, ParcelOutSchema, ProductRefSchema

OUTCOMES = ("approve", "decline", "refer", "field_check")


class ReasonCode(Identifier):
    """A decision reason code (``lending.policy.reasons``): lower-case letters, digits, '_'."""

    SHAPE = "[a-z0-9_]{1,60}"
    ERROR = "A reason code: 1 to 60 of a-z, 0-9 and '_'."
    EXAMPLE = "above_auto_ceiling"


class ReviewStaffSchema(ResponseSchema):
    id = public_id_field()
    name = fields.String()


class ReviewFarmerSchema(ResponseSchema):
    id = public_id_field()
    name = fields.String()
    phone = fields.String()
    id_number_masked = fields.String(metadata={"description": "e.g. 3305**********1231"})
    identity_status = fields.String(validate=validate.OneOf(("verified", "pending")), metadata={
        "description": "pending: signed up alone from a phone, not yet seen by a coordinator"})
    language = fields.String(metadata={"description": "The language SMS are written in"})


class ReviewFarmerBriefSchema(ResponseSchema):
    id = public_id_field()
    name = fields.String()
    id_number_masked = fields.String()


# --- the queue --------------------------------------------------------------------------------

class ReviewQueueArgs(PageArgs):
    village_id = fields.UUID(metadata={"description": "Only this village's cases"})
    reason = ReasonCode(metadata={
        "description": "Only cases whose latest decision gives this reason code"})
    min_age_hours = fields.Integer(validate=validate.Range(min=0, max=24 * 366), metadata={
        "description": "Only cases waiting at least this many hours"})
    info_requested = fields.Boolean(metadata={
        "description": "true: only cases waiting for the farmer's answer; false: the others"})


class ReviewQueueItemSchema(ResponseSchema):
    id = public_id_field()
    farmer = fields.Nested(ReviewFarmerBriefSchema)
    village = fields.Nested(FieldVillageSchema)
    product = fields.Nested(ProductRefSchema)
    amount_fen = fields.Integer()
    term_months = fields.Integer()
    crop = fields.String()
    waiting_since = fields.DateTime(metadata={"description": "When it entered the queue"})
    age_hours = fields.Integer(metadata={"description": "Whole hours in the queue"})
    outcome = fields.String(allow_none=True, validate=validate.OneOf(OUTCOMES), metadata={
        "description": "The latest automatic decision's outcome"})
    reasons = fields.List(fields.String(), metadata={
        "description": "Reason codes of the latest decision: why it was referred"})
    recommendation = fields.String(allow_none=True,
                                   validate=validate.OneOf(("approve", "decline")))
    recommended_by = fields.Nested(ReviewStaffSchema, allow_none=True)
    info_requested = fields.Boolean(metadata={"description": "Waiting for the farmer's answer"})
    retry_at = fields.DateTime(allow_none=True, metadata={
        "description": "A registry was unavailable: the decision is tried again then"})


ReviewQueuePage = page_schema(ReviewQueueItemSchema, "ReviewQueuePage")


# --- the case ---------------------------------------------------------------------------------

class ReviewCaseApplicationSchema(ResponseSchema):
    id = public_id_field()
    state = fields.String(validate=validate.OneOf(states.STATES))
    state_changed_at = fields.DateTime()
    product = fields.Nested(ProductRefSchema)
    village = fields.Nested(FieldVillageSchema)
    amount_fen = fields.Integer()
    approved_amount_fen = fields.Integer(allow_none=True)
    term_months = fields.Integer()
    purpose = fields.String()
    crop = fields.String()
    terms = fields.Dict(metadata={"description": "The product's terms when it was made"})
    created_at = fields.DateTime()
    submitted_at = fields.DateTime(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    info_requested = fields.Boolean()
    recommendation = fields.String(allow_none=True,
                                   validate=validate.OneOf(("approve", "decline")))
    recommended_by = fields.Nested(ReviewStaffSchema, allow_none=True)
    retry_at = fields.DateTime(allow_none=True)


class ReviewReasonSchema(ResponseSchema):
    code = fields.String(metadata={"description": "Stable reason code (never translated)"})
    params = fields.Dict()
    explanation = fields.String(metadata={"description": "In the caller's language"})


class ReviewDecisionBriefSchema(ResponseSchema):
    id = public_id_field()
    policy_version = fields.String()
    outcome = fields.String(validate=validate.OneOf(OUTCOMES))
    score = fields.Integer()
    limit_fen = fields.Integer()
    amount_fen = fields.Integer()
    reasons = fields.List(fields.String(), metadata={"description": "Reason codes"})
    decided_at = fields.DateTime()


class ReviewDecisionSchema(ReviewDecisionBriefSchema):
    factors = fields.List(fields.Nested(FactorSchema))
    reasons = fields.List(fields.Nested(ReviewReasonSchema))
    inputs = fields.Dict(metadata={
        "description": "The engine's whole input (the snapshot): with policy_version, all it "
                       "takes to reach the same result again"})


class ReviewEvidenceParcelSchema(ResponseSchema):
    """One declared parcel as each source gave it (``lending.policy.facts``)."""

    certificate = fields.String(allow_none=True)
    code = fields.String(allow_none=True)
    land_status = fields.String(allow_none=True, metadata={
        "description": "held, foreign, not_found or unknown (registry unavailable)"})
    declared_mu = fields.Float(allow_none=True)
    registry_mu = fields.Float(allow_none=True)
    insured_mu = fields.Float(allow_none=True)
    field_mu = fields.Float(allow_none=True)
    field_estimated = fields.Boolean(allow_none=True)
    verified_mu = fields.Float(allow_none=True, metadata={"description": "The area counted"})
    insured = fields.Boolean(allow_none=True)
    contract_end = fields.String(allow_none=True, metadata={"description": "ISO date"})
    tenure_days = fields.Integer(allow_none=True)
    pledged_registry = fields.Boolean(allow_none=True)
    pledged_here = fields.Boolean(allow_none=True)
    duplicate = fields.Boolean(allow_none=True)
    field_visited = fields.Boolean(allow_none=True)
    crop_seen = fields.Boolean(allow_none=True)


class ReviewClaimSchema(ResponseSchema):
    event = fields.String(allow_none=True)
    days_ago = fields.Integer(allow_none=True)
    loss_ratio = fields.Float(allow_none=True)
    status = fields.String(allow_none=True)


class ReviewEvidenceSchema(ResponseSchema):
    unavailable = fields.List(fields.String(), metadata={
        "description": "Registries that could not be asked for the latest decision"})
    parcels = fields.List(fields.Nested(ReviewEvidenceParcelSchema))
    claims = fields.List(fields.Nested(ReviewClaimSchema))


class ReviewAssignmentSchema(ResponseSchema):
    id = public_id_field()
    kind = fields.String()
    status = fields.String(validate=validate.OneOf(fieldwork.STATUSES))
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)


class ReviewHistoryItemSchema(ResponseSchema):
    id = public_id_field()
    action = fields.String(validate=validate.OneOf(review.ACTIONS))
    reason = fields.String()
    amount_fen = fields.Integer(allow_none=True)
    staff = fields.Nested(ReviewStaffSchema)
    created_at = fields.DateTime()


class InformationQuestionSchema(ResponseSchema):
    request_id = fields.UUID(metadata={"description": "The question's id"})
    question = fields.String()
    asked_at = fields.DateTime()
    answer = fields.String(allow_none=True, metadata={"description": "null until answered"})
    answered_at = fields.DateTime(allow_none=True)


class ReviewInformationSchema(InformationQuestionSchema):
    asked_by = fields.Nested(ReviewStaffSchema)


class ReviewCaseSchema(ResponseSchema):
    application = fields.Nested(ReviewCaseApplicationSchema)
    farmer = fields.Nested(ReviewFarmerSchema)
    parcels = fields.List(fields.Nested(ParcelOutSchema), metadata={
        "description": "As the farmer declared them"})
    decision = fields.Nested(ReviewDecisionSchema, allow_none=True, metadata={
        "description": "The latest decision"})
    evidence = fields.Nested(ReviewEvidenceSchema, metadata={
        "description": "What the registries and the field check said, as the latest "
                       "decision saw it"})
    field_checks = fields.List(fields.Nested(FieldCheckSchema))
    assignments = fields.List(fields.Nested(ReviewAssignmentSchema))
    history = fields.List(fields.Nested(ReviewHistoryItemSchema), metadata={
        "description": "Review actions, oldest first"})
    information = fields.List(fields.Nested(ReviewInformationSchema), metadata={
        "description": "Questions to the farmer and their answers"})
    decisions = fields.List(fields.Nested(ReviewDecisionBriefSchema), metadata={
        "description": "Every decision, oldest first, each with its policy version"})


# --- actions ----------------------------------------------------------------------------------

class ReviewActionApplicationSchema(ResponseSchema):
    id = public_id_field()
    state = fields.String(validate=validate.OneOf(states.STATES))
    approved_amount_fen = fields.Integer(allow_none=True)
    info_requested = fields.Boolean()
    recommendation = fields.String(allow_none=True,
                                   validate=validate.OneOf(("approve", "decline")))


class ReviewActionSchema(ReviewHistoryItemSchema):
    application = fields.Nested(ReviewActionApplicationSchema)


class ReviewActionCreateSchema(Schema):
    RESOURCE = ReviewActionSchema
    action = fields.String(required=True, validate=validate.OneOf(review.ACTIONS))
    reason = Text(required=True, validate=validate.Length(min=1, max=500), metadata={
        "description": "Why; for request_information, the question the farmer is sent"})
    amount_fen = fields.Integer(validate=validate.Range(min=1, max=10**12), metadata={
        "description": "approve only: at most the amount requested; default the latest "
                       "decision's amount"})

    @validates_schema
    def _amount_for_approval(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "amount_fen" in data and data.get("action") != review.APPROVE:
            raise ValidationError({"amount_fen": ["Only an approval takes an amount."]})


class InformationQuestionsSchema(ResponseSchema):
    info_requested = fields.Boolean(metadata={
        "description": "The bank waits for an answer to the latest question"})
    questions = fields.List(fields.Nested(InformationQuestionSchema), metadata={
        "description": "The bank's questions on the application, oldest first"})


class InformationAnswerSchema(ResponseSchema):
    id = public_id_field()
    application_id = fields.UUID()
    request_id = fields.UUID(metadata={"description": "The question answered"})
    question = fields.String()
    answer = fields.String()
    created_at = fields.DateTime()


class InformationAnswerCreateSchema(Schema):
    RESOURCE = InformationAnswerSchema
    answer = Text(required=True, validate=validate.Length(min=1, max=ANSWER_MAX), metadata={
        "description": "The farmer's answer to the bank's latest question"})
