"""HTTP API of relief: the cases the insurance poll opens, the four eyes on them, and manual
reschedules (a case of kind ``manual`` decided the same way). Staff only; acting is for
reviewers and approvers (deciding for approvers)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask

from core.api import Blueprint, raises, register
from core.authz import access, current_principal, get_visible
from core.db import db
from core.idempotency import idempotent
from core.jobs import Job, business_date
from core.jobs import register as register_job
from lending.applications.review import FourEyes, RecommendationRequired
from lending.ledger.posting import AlreadyPosted
from lending.servicing import relief, relief_poll
from lending.servicing import relief_schemas as schemas
from lending.servicing.models import Loan
from lending.servicing.relief_models import ReliefCase

blp = Blueprint("relief", __name__, description="Insurance-triggered relief and reschedules")


@blp.route("/relief-cases", methods=["GET"])
@access("reviewer", "approver", "admin")
@blp.arguments(schemas.ReliefCaseArgs, location="query")
@blp.response(200, schemas.ReliefCasePage)
def list_relief_cases(args: dict[str, Any]) -> dict[str, Any]:
    """Relief cases, oldest first; filter by status (proposed, recommended, approved,
    rejected), kind (insurance, manual) or loan."""
    return relief.page(db.session, args)


@blp.route("/relief-cases/<uuid:relief_case_id>", methods=["GET"])
@access("reviewer", "approver", "admin")
@blp.response(200, schemas.ReliefCaseSchema)
def get_relief_case(relief_case_id: uuid.UUID) -> ReliefCase:
    """One case: the claim behind it, the loan, the proposal, the four eyes, and what
    approval did (the waiver, the schedule before and after)."""
    return get_visible(db.session, ReliefCase, relief_case_id)


@blp.route("/relief-cases/<uuid:relief_case_id>/actions", methods=["POST"])
@access("reviewer", "approver")
@raises(relief.CaseClosed, relief.AlreadyRecommended, relief.ApproverOnly, relief.LoanNotActive,
        relief.ProposalStale, FourEyes, RecommendationRequired, AlreadyPosted)
@idempotent
@blp.arguments(schemas.ReliefActionCreateSchema)
@blp.response(200, schemas.ReliefCaseSchema)
def act_on_relief_case(data: dict[str, Any], relief_case_id: uuid.UUID) -> ReliefCase:
    """Recommend, approve or reject a relief case, with a reason.

    Approve and reject are for an approver other than the recommender (``four-eyes``);
    approval needs the recommendation first. Approval waives the penalties (posted to the
    ledger), reschedules the unpaid installments to the new maturity, unpauses the loan and
    tells the farmer by SMS; rejection unpauses the loan.
    """
    case = get_visible(db.session, ReliefCase, relief_case_id)
    return relief.act(db.session, case, current_principal(), day=business_date(), **data)


@blp.route("/loans/<uuid:loan_id>/reschedules", methods=["POST"])
@access("reviewer", "approver")
@raises(relief.NotReschedulable, relief.CaseOpen)
@idempotent
@blp.arguments(schemas.RescheduleCreateSchema)
@blp.response(201, schemas.ReliefCaseSchema)
def propose_reschedule(data: dict[str, Any], loan_id: uuid.UUID) -> ReliefCase:
    """Propose a manual reschedule of an active term loan to a new maturity, with a reason.

    The proposal is a relief case of kind ``manual``, already recommended by its proposer;
    another approver approves or rejects it through ``POST /relief-cases/{id}/actions``.
    """
    loan = get_visible(db.session, Loan, loan_id)
    return relief.propose(db.session, loan, current_principal(), day=business_date(), **data)


def init_app(app: Flask) -> None:
    """Register the relief blueprint and the daily poll."""
    register(app, blp)
    register_job(app, Job("servicing.relief_poll", relief_poll.poll, {"hours": 24}))
