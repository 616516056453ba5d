"""Loans from offers: accepting an approved application's offer into a :class:`Loan`, and what
is due next.

An application is accepted once: ``loans.application_id`` is unique, and a second accept (or
two at once) gets 409 ``offer-already-accepted`` rather than the same loan again (a client's
retry of one request is answered by the ``Idempotency-Key`` replay instead). The loan copies
the terms the application kept (rate, day count, grace, repayment type) with the approved
amount and term, the crop, and the county of the farmer's village; penalty interest is
``NONGDAI_PENALTY_RATE_PCT`` % of the rate, rounded down to a whole basis point.

A term loan waits as ``accepted`` for its disbursement. A revolving line (随借随还) is
``active`` at once, with the approved amount as its limit, ending after the term, reviewed
after twelve months; nothing is owed until the farmer draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from babel.dates import format_date
from flask import current_app
from sqlalchemy.exc import IntegrityError

from core import audit, outbox
from core.authz import Principal
from core.db import DbSession
from core.errors import Conflict
from core.i18n import _, current_locale, in_locale, lazy_gettext
from core.jobs import business_date
from core.places.models import Village
from lending.applications import states
from lending.applications.models import Application
from lending.products.services import yuan
from lending.servicing import schedules
from lending.servicing.models import ACCEPTED, ACTIVE, Installment, Loan

LINE_REVIEW_MONTHS = 12


class NotApproved(Conflict):
    code = "application-not-approved"
    title = lazy_gettext("The application is not approved: there is no offer to accept")


class AlreadyAccepted(Conflict):
    code = "offer-already-accepted"
    title = lazy_gettext("This offer has been accepted already")


@dataclass(frozen=True)
class NextDue:
    """The first installment not fully paid: when, and what of it is still to pay."""

    seq: int
    due_date: date
    principal_fen: int
    interest_fen: int

    @property
    def amount_fen(self) -> int:
        return self.principal_fen + self.interest_fen


# --- accepting --------------------------------------------------------------------------------

def check_offer(application: Application) -> None:
    """409 ``application-not-approved`` unless the application is approved."""
    if application.state != states.APPROVED or not application.approved_amount_fen:
        raise NotApproved(_("An application in state %(state)s has no offer to accept",
                            state=application.state))


def _lock(session: DbSession, application: Application) -> None:
    """Take the application's row lock (PostgreSQL), so two accepts run one after the other."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(Application.id).where(Application.id == application.id)
                        .with_for_update())


def _existing(session: DbSession, application: Application) -> int | None:
    return session.scalar(sa.select(Loan.id).where(Loan.application_id == application.id))


def county_code(session: DbSession, village_id: int) -> str:
    return session.get_one(Village, village_id).township.county.code


def penalty_rate_bp(annual_rate_bp: int) -> int:
    pct = int(current_app.config["NONGDAI_PENALTY_RATE_PCT"])
    return annual_rate_bp * pct // 100


def new_loan(session: DbSession, application: Application, start: date) -> Loan:
    """The loan an application's offer makes, not yet added to the session."""
    terms = {**_product_terms(application), **application.terms}
    amount = application.approved_amount_fen or application.amount_fen
    line = terms["repayment_type"] == schedules.LINE
    rate = int(terms["annual_rate_bp"])
    loan = Loan(
        application_id=application.id, farmer_id=application.farmer_id,
        village_id=application.village_id, product_id=application.product_id,
        kind="line" if line else "term", repayment_type=terms["repayment_type"],
        crop=application.crop, county_code=county_code(session, application.village_id),
        terms=application.terms, principal_fen=amount, term_months=application.term_months,
        annual_rate_bp=rate, penalty_rate_bp=penalty_rate_bp(rate),
        day_count=terms["day_count"], grace_months=int(terms["grace_months"]),
        status=ACTIVE if line else ACCEPTED)
    if line:
        loan.limit_fen = amount
        loan.line_ends_on = loan.maturity_date = schedules.add_months(
            start, application.term_months)
        loan.next_review_on = schedules.add_months(start, LINE_REVIEW_MONTHS)
    return loan


def _product_terms(application: Application) -> dict[str, Any]:
    product = application.product
    return {"repayment_type": product.repayment_type, "annual_rate_bp": product.annual_rate_bp,
            "day_count": product.day_count, "grace_months": product.grace_months}


def accept(session: DbSession, application: Application, *, actor: Principal) -> Loan:
    """The farmer accepts the offer of their approved application: the loan, audited, and an
    SMS in the farmer's language."""
    _lock(session, application)
    check_offer(application)
    if _existing(session, application) is not None:
        raise AlreadyAccepted()
    loan = new_loan(session, application, business_date())
    try:
        with session.begin_nested():
            session.add(loan)
            session.flush()
    except IntegrityError as exc:  # a concurrent accept won the unique application_id
        raise AlreadyAccepted() from exc
    audit.record(session, "loan.accept", loan, actor=actor.ref, summary={
        "application_id": str(application.public_id), "kind": loan.kind,
        "principal_fen": loan.principal_fen, "annual_rate_bp": loan.annual_rate_bp,
        "repayment_type": loan.repayment_type, "status": loan.status})
    _tell(session, application, loan)
    return loan


def long_date(day: date) -> str:
    """A date as the reader writes it: ``2027年10月31日``, ``October 31, 2027``."""
    return format_date(day, "long", locale=current_locale())


def _sms_text(loan: Loan) -> str:
    amount = yuan(loan.principal_fen)
    if loan.kind == "line":
        return _("[Nongdai] Your credit line of %(amount)s yuan is open until %(date)s. "
                 "Draw and repay in the app at any time.", amount=amount,
                 date=long_date(loan.line_ends_on) if loan.line_ends_on else "")
    return _("[Nongdai] You accepted the loan of %(amount)s yuan. The bank will pay it out "
             "to you soon; we will tell you by SMS.", amount=amount)


def _tell(session: DbSession, application: Application, loan: Loan) -> None:
    farmer = application.farmer
    with in_locale(farmer.language):
        body = _sms_text(loan)
    outbox.queue_sms(session, farmer.phone, body)


# --- what is due ------------------------------------------------------------------------------

def _remaining(row: Installment) -> NextDue:
    return NextDue(seq=row.seq, due_date=row.due_date,
                   principal_fen=max(0, row.principal_due_fen - row.principal_paid_fen),
                   interest_fen=max(0, row.interest_due_fen - row.interest_paid_fen))


def next_due(session: DbSession, loan: Loan) -> NextDue | None:
    """The first installment not fully paid, or None (no schedule, or all paid)."""
    row = session.scalars(sa.select(Installment).where(
        Installment.loan_id == loan.id, Installment.paid_on.is_(None))
        .order_by(Installment.seq).limit(1)).first()
    return _remaining(row) if row is not None else None


def next_dues(session: DbSession, loan_ids: list[int]) -> dict[int, NextDue]:
    """:func:`next_due` for many loans in one query."""
    if not loan_ids:
        return {}
    first = sa.select(sa.func.min(Installment.seq).label("seq"), Installment.loan_id).where(
        Installment.loan_id.in_(loan_ids), Installment.paid_on.is_(None)).group_by(
        Installment.loan_id).subquery()
    rows = session.scalars(sa.select(Installment).join(first, sa.and_(
        Installment.loan_id == first.c.loan_id, Installment.seq == first.c.seq)))
    return {row.loan_id: _remaining(row) for row in rows}
