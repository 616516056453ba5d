"""HTTP API of the revolving line: the farmer draws from the phone, staff list the draws, an
approver reviews the line; and the daily review check (:func:`lines.run_reviews`).

Thin views: the work is in :mod:`lending.servicing.lines`.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import selectinload

from core import jobs
from core.api import Blueprint, PageArgs, paginate, raises, register
from core.authz import access, current_principal, get_visible
from core.db import db
from core.idempotency import idempotent
from lending.servicing import line_schemas as schemas
from lending.servicing import lines
from lending.servicing.line_models import LineReview
from lending.servicing.models import Disbursement, Loan

blp = Blueprint("lines", __name__, description="Revolving household lines: draws and reviews")

LINE_ERRORS = (lines.NotALine, lines.LineNotActive, lines.LineEnded)


def _draw_out(view: lines.DrawView) -> dict[str, Any]:
    row, installment = view.draw, view.installment
    return {"public_id": row.public_id, "seq": row.seq, "amount_fen": row.amount_fen,
            "status": row.status, "drawn_on": row.business_date,
            "due_date": installment.due_date if installment else None,
            "principal_repaid_fen": installment.principal_paid_fen if installment else 0,
            "payout_status": view.payout_status}


def _review_out(row: LineReview) -> dict[str, Any]:
    staff = row.staff
    return {"public_id": row.public_id, "action": row.action, "business_date": row.business_date,
            "staff": {"public_id": staff.public_id, "name": staff.name} if staff else None,
            "old_limit_fen": row.old_limit_fen, "new_limit_fen": row.new_limit_fen,
            "was_frozen": row.was_frozen, "frozen": row.frozen,
            "old_review_on": row.old_review_on, "new_review_on": row.new_review_on,
            "reason": row.reason, "created_at": row.created_at}


@blp.route("/loans/<uuid:loan_id>/draws", methods=["POST"])
@access("farmer")
@raises(*LINE_ERRORS, lines.LineFrozen, lines.LimitExceeded)
@idempotent
@blp.arguments(schemas.DrawCreateSchema)
@blp.response(201, schemas.DrawCreatedSchema)
def draw_on_line(data: dict[str, Any], loan_id: uuid.UUID) -> dict[str, Any]:
    """Draw on one's own line: at most the available amount, while the line is open. Paid out
    like a loan; due in 12 months (at most at the line's end). Send an Idempotency-Key."""
    loan = get_visible(db.session, Loan, loan_id)
    row = lines.draw(db.session, loan, current_principal(), amount_fen=data["amount_fen"])
    [view] = lines.present_draws(db.session, loan, [row])
    return {**_draw_out(view), "line": lines.state(loan, jobs.business_date())}


@blp.route("/loans/<uuid:loan_id>/draws", methods=["GET"])
@access("farmer", "staff")
@blp.arguments(PageArgs, location="query")
@blp.response(200, schemas.DrawPage)
def list_draws(args: dict[str, Any], loan_id: uuid.UUID) -> dict[str, Any]:
    """The draws on a line, oldest first, with what is repaid of each (farmer: own line)."""
    loan = get_visible(db.session, Loan, loan_id)
    page = paginate(db.session, sa.select(Disbursement).where(Disbursement.loan_id == loan.id),
                    Disbursement.public_id, args)
    page["items"] = [_draw_out(v) for v in lines.present_draws(db.session, loan, page["items"])]
    return page


@blp.route("/loans/<uuid:loan_id>/line-reviews", methods=["POST"])
@access("approver")
@raises(*LINE_ERRORS, lines.LineAlreadyFrozen, lines.LineNotFrozen)
@idempotent
@blp.arguments(schemas.LineReviewCreateSchema)
@blp.response(201, schemas.LineReviewCreatedSchema)
def review_line(data: dict[str, Any], loan_id: uuid.UUID) -> dict[str, Any]:
    """The annual review: renew (next review in 12 months, optionally a new limit), lower the
    limit, freeze or unfreeze new draws. Never changes what is owed. The farmer is told by
    SMS."""
    loan = get_visible(db.session, Loan, loan_id)
    row = lines.review(db.session, loan, current_principal(), action=data["action"],
                       limit_fen=data.get("limit_fen"), reason=data["reason"])
    return {**_review_out(row), "line": lines.state(loan, jobs.business_date())}


@blp.route("/loans/<uuid:loan_id>/line-reviews", methods=["GET"])
@access("staff")
@blp.arguments(PageArgs, location="query")
@blp.response(200, schemas.LineReviewPage)
def list_line_reviews(args: dict[str, Any], loan_id: uuid.UUID) -> dict[str, Any]:
    """A line's review history, oldest first (the system's freezes as ``lapse``)."""
    loan = get_visible(db.session, Loan, loan_id)
    stmt = sa.select(LineReview).where(LineReview.loan_id == loan.id).options(
        selectinload(LineReview.staff))
    page = paginate(db.session, stmt, LineReview.public_id, args)
    page["items"] = [_review_out(row) for row in page["items"]]
    return page


def init_app(app: Flask) -> None:
    """Register the lines blueprint and the hourly review check."""
    register(app, blp)
    jobs.register(app, jobs.Job(lines.JOB_NAME, lines.run_reviews, {"hours": 1}))
