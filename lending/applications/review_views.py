"""HTTP API of staff review: the queue of referred cases, a case with its evidence, the review
actions (four eyes), and the farmer's answer to a staff question.

Reading is for every staff role; acting is for reviewers and approvers only (an admin manages
accounts, not credit).
"""

from __future__ import annotations

import uuid
from typing import Any

from core.api import Blueprint, raises
from core.authz import access, current_principal, get_visible
from core.db import db
from core.idempotency import idempotent
from lending.applications import review, states
from lending.applications import review_schemas as schemas
from lending.applications.models import Application

blp = Blueprint("review", __name__, description="Staff review of referred applications")


@blp.route("/review/queue", methods=["GET"])
@access("reviewer", "approver", "admin")
@blp.arguments(schemas.ReviewQueueArgs, location="query")
@blp.response(200, schemas.ReviewQueuePage)
def list_review_queue(args: dict[str, Any]) -> dict[str, Any]:
    """Cases waiting for staff, longest-waiting first, with why each was referred."""
    return review.queue_page(db.session, args)


@blp.route("/review/applications/<uuid:application_id>", methods=["GET"])
@access("reviewer", "approver", "admin")
@blp.response(200, schemas.ReviewCaseSchema)
def get_review_case(application_id: uuid.UUID) -> dict[str, Any]:
    """One case with all its evidence: decisions and their inputs, registry facts, field
    checks, the review so far and the farmer's answers."""
    return review.case(db.session, get_visible(db.session, Application, application_id))


@blp.route("/review/applications/<uuid:application_id>/actions", methods=["POST"])
@access("reviewer", "approver")
@raises(review.NotUnderReview, review.RecommendationRequired, review.FourEyes,
        review.ApproverRequired, states.IllegalTransition)
@idempotent
@blp.arguments(schemas.ReviewActionCreateSchema)
@blp.response(201, schemas.ReviewActionSchema)
def act_on_application(data: dict[str, Any], application_id: uuid.UUID) -> dict[str, Any]:
    """Recommend, ask the farmer for information, approve or decline, with a reason.

    Approve and decline need a recommendation by another staff member (``four-eyes``);
    approving above NONGDAI_REVIEWER_AUTHORITY_FEN needs the approver role
    (``approver-required``). The farmer is told by SMS.
    """
    application = get_visible(db.session, Application, application_id)
    row = review.act(db.session, application, current_principal(), **data)
    return {"public_id": row.public_id, "action": row.action, "reason": row.reason,
            "amount_fen": row.amount_fen, "staff": row.staff, "created_at": row.created_at,
            "application": application}


@blp.route("/applications/<uuid:application_id>/information", methods=["GET"])
@access("farmer", "coordinator", "staff")
@blp.response(200, schemas.InformationQuestionsSchema)
def list_information_requests(application_id: uuid.UUID) -> dict[str, Any]:
    """The bank's questions on an application and the answers given (the farmer's own; a
    coordinator's villages', to help the farmer answer)."""
    application = get_visible(db.session, Application, application_id)
    asked = review.information(db.session, review.history(db.session, application))
    return {"info_requested": application.info_requested, "questions": asked}


@blp.route("/applications/<uuid:application_id>/information", methods=["POST"])
@access("farmer")
@raises(review.NoInformationRequested)
@idempotent
@blp.arguments(schemas.InformationAnswerCreateSchema)
@blp.response(201, schemas.InformationAnswerSchema)
def answer_information_request(data: dict[str, Any],
                               application_id: uuid.UUID) -> dict[str, Any]:
    """Answer the bank's question on one's own application."""
    application = get_visible(db.session, Application, application_id)
    row = review.answer_information(db.session, application,
                                    farmer_id=current_principal().id, answer=data["answer"])
    return {"public_id": row.public_id, "application_id": application.public_id,
            "request_id": row.request.public_id, "question": row.request.reason,
            "answer": row.answer, "created_at": row.created_at}
