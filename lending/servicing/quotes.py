"""Interest and penalty to a day for one loan, and the settlement quote built on it.

:func:`charges` is the arithmetic a single loan's accrual (:func:`lending.servicing.repayments.
accrue_to`) books and a quote shows without booking, so a settlement paid on the quoted day
settles exactly. Per day ``d`` after ``loan.accrued_through`` (or ``disbursed_on``) up to and
including ``through``, with ``w = interest.weight(loan.day_count, d)``:

- interest: numerator ``interest_carry + principal_outstanding * annual_rate_bp * w`` over
  ``interest.denominator(day_count)``; whole fen booked, the remainder carried;
- penalty (not while ``relief_paused``): numerator ``penalty_carry + overdue(d) *
  penalty_rate_bp * w``, the same way, where ``overdue(d)`` is the principal of installments
  whose ``due_date < d``, less what is paid of it (``principal_due_fen -
  principal_paid_fen``). A line has one installment per draw (due at the draw's due date),
  so an overdue draw accrues penalty here as in the daily job.

The balances do not change between two accruals (every repayment accrues first), so days of
equal ``overdue`` are summed at once: :func:`lending.servicing.interest.accrue` over their
summed weight books the same fen and carry as day by day. The daily job's set-based SQL
(one day at a time) must book the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import sqlalchemy as sa

from core.db import DbSession
from core.errors import Conflict, ValidationFailed
from core.i18n import _, lazy_gettext
from core.jobs import business_date
from lending.servicing import interest
from lending.servicing.models import ACTIVE, SETTLED, Installment, Loan


class LoanNotActive(Conflict):
    code = "loan-not-active"
    title = lazy_gettext("The loan is not active")


@dataclass(frozen=True)
class Charges:
    """What accrues on a loan from its last accrual to a day: whole fen and new carries."""

    interest_fen: int
    interest_carry: int
    penalty_fen: int
    penalty_carry: int


def accrual_start(loan: Loan) -> date | None:
    """The last day already accrued (the disbursement day accrues nothing)."""
    return loan.accrued_through or loan.disbursed_on


def open_installments(session: DbSession, loan: Loan) -> list[Installment]:
    """The loan's installments not fully paid, in due order."""
    return list(session.scalars(_OPEN_INSTALLMENTS, {"loan_id": loan.id}))


_OPEN_INSTALLMENTS = (sa.select(Installment)
                      .where(Installment.loan_id == sa.bindparam("loan_id"),
                             Installment.paid_on.is_(None))
                      .order_by(Installment.due_date, Installment.seq))
"""Built once: a request pays for binding its parameter, not for building the statement."""


class Scheduled(Protocol):
    """What accrual reads of an installment: an :class:`Installment`, or a row read with Core."""

    @property
    def due_date(self) -> date: ...

    @property
    def principal_due_fen(self) -> int: ...

    @property
    def principal_paid_fen(self) -> int: ...


def _overdue_steps(installments: Sequence[Scheduled], after: date,
                   through: date) -> list[tuple[date, date, int]]:
    """``(from, to, overdue)``: the days ``(from, to]`` of ``(after, through]`` on which the
    overdue principal is ``overdue``."""
    dues = [(i.due_date, i.principal_due_fen - i.principal_paid_fen) for i in installments]
    cuts = sorted({due for due, _amount in dues if after < due < through})
    steps, start = [], after
    for end in [*cuts, through]:
        overdue = sum(amount for due, amount in dues if due <= start)
        steps.append((start, end, overdue))
        start = end
    return steps


def charges(loan: Loan, installments: Sequence[Scheduled], through: date) -> Charges:
    """Interest and penalty from :func:`accrual_start` through ``through`` (see the module
    docstring), without booking anything."""
    start = accrual_start(loan)
    if start is None or through <= start:
        return Charges(0, loan.interest_carry, 0, loan.penalty_carry)
    days = interest.days_weight(loan.day_count, start, through)
    interest_fen, interest_carry = interest.accrue(
        loan.principal_outstanding_fen, loan.annual_rate_bp, loan.day_count,
        loan.interest_carry, days)
    penalty_fen, penalty_carry = 0, loan.penalty_carry
    if not loan.relief_paused:
        for after, upto, overdue in _overdue_steps(installments, start, through):
            if overdue > 0:
                booked, penalty_carry = interest.accrue(
                    overdue, loan.penalty_rate_bp, loan.day_count, penalty_carry,
                    interest.days_weight(loan.day_count, after, upto))
                penalty_fen += booked
    return Charges(interest_fen, interest_carry, penalty_fen, penalty_carry)


def settlement(session: DbSession, loan: Loan, on: date) -> dict[str, Any]:
    """What settles ``loan`` on ``on``: principal, interest and penalty recomputed to the day
    (nothing booked), the overpaid credit (shown, refundable, not netted: a payment must
    cover ``total_fen``), and the total."""
    today = business_date()
    if on < today:
        raise ValidationFailed(errors={"on": [_("Must be the business date or later.")]})
    if loan.status not in (ACTIVE, SETTLED):
        raise LoanNotActive()
    due = charges(loan, open_installments(session, loan), on)
    principal = loan.principal_outstanding_fen
    interest_fen = loan.interest_outstanding_fen + due.interest_fen
    penalty = loan.penalty_outstanding_fen + due.penalty_fen
    return {"loan_id": loan.public_id, "on": on, "principal_fen": principal,
            "interest_fen": interest_fen, "penalty_fen": penalty,
            "overpaid_fen": loan.overpaid_fen, "total_fen": principal + interest_fen + penalty}
