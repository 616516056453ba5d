"""HTTP API of offers and loans: the farmer's schedule preview, accepting it, and the loans
their readers may see (a farmer their own, a coordinator their villages', staff all)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from flask import Flask

from core.api import Blueprint, raises, register
from core.authz import access, current_principal, get_visible, visible
from core.db import db
from core.idempotency import idempotent
from lending.applications.models import Application
from lending.servicing import loan_presenting as presenting
from lending.servicing import loan_schemas as schemas
from lending.servicing import loans
from lending.servicing.models import Loan

blp = Blueprint("loans", __name__, description="Offers and loans: the schedule preview, "
                                               "accepting it, balances and what is due")


@blp.route("/applications/<uuid:application_id>/offer", methods=["GET"])
@access("farmer", "staff")
@raises(loans.NotApproved)
@blp.response(200, schemas.OfferSchema)
def get_offer(application_id: uuid.UUID) -> dict[str, Any]:
    """The offer of an approved application as if paid out today: when repayments fall, what
    each is, the totals, the rate and the day count, explained in plain words."""
    return presenting.offer(db.session, get_visible(db.session, Application, application_id))


@blp.route("/applications/<uuid:application_id>/accept", methods=["POST"])
@access("farmer")
@raises(loans.NotApproved, loans.AlreadyAccepted)
@idempotent
@blp.response(201, schemas.LoanSchema)
def accept_offer(application_id: uuid.UUID) -> dict[str, Any]:
    """Accept the offer of one's approved application: the loan (a term loan waits for its
    disbursement; a revolving line is open at once). Once per application
    (``offer-already-accepted``)."""
    application = get_visible(db.session, Application, application_id)
    loan = loans.accept(db.session, application, actor=current_principal())
    return presenting.detail(db.session, loan)


@blp.route("/loans", methods=["GET"])
@access("farmer", "coordinator", "staff")
@blp.arguments(schemas.LoanListArgs, location="query")
@blp.response(200, schemas.LoanPage)
def list_loans(args: dict[str, Any]) -> dict[str, Any]:
    """Loans the caller may see, oldest first, in cursor pages; filter by status, bucket and
    village."""
    return presenting.page(db.session, sa.select(Loan).where(visible(Loan)), args)


@blp.route("/loans/<uuid:loan_id>", methods=["GET"])
@access("farmer", "coordinator", "staff")
@blp.response(200, schemas.LoanSchema)
def get_loan(loan_id: uuid.UUID) -> dict[str, Any]:
    """One loan: balances, the schedule with what is paid, what is due next, days past due
    and bucket; for a line its limit, what is drawn and what is available."""
    return presenting.detail(db.session, get_visible(db.session, Loan, loan_id))


def init_app(app: Flask) -> None:
    """Register this part's blueprints, jobs and commands."""
    register(app, blp)
