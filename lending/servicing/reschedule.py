"""Rescheduling a term loan: its unpaid installments replaced by a plan to a new maturity.

Installments fully paid stay as they are. One partly paid is closed at what was paid (its dues
become its payments, paid on the reschedule's day) and the rest of its principal moves into
the new plan. The unpaid ones are replaced by the new plan, numbered after the ones kept, so
``(loan_id, seq)`` stays unique; rows are reused in order (their ids stay valid for whatever
refers to them), extra ones deleted, missing ones added. The schedule before and after is kept
as JSON in a :class:`~lending.servicing.relief_models.LoanReschedule`.

The new plan spreads the outstanding principal (the ledger's, the loan's cached column) from
the business date to the new maturity in the loan's repayment type: a bullet at the new
maturity, monthly interest with the principal at the end, or monthly equal payments. Its
interest is the estimate :mod:`lending.servicing.schedules` makes (the ledger's arithmetic);
interest already accrued and unpaid is added to the first new installment. A reschedule moves
no money: interest keeps accruing daily on the outstanding principal as before.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from core.db import DbSession, utcnow
from lending.servicing import interest, schedules
from lending.servicing.models import Installment, Loan
from lending.servicing.relief_models import LoanReschedule, ReliefCase
from lending.servicing.schedules import Planned


def monthly_dues(start: date, maturity: date) -> list[date]:
    """Monthly due dates after ``start``, the last one the maturity itself."""
    dues, k = [], 1
    while (due := schedules.add_months(start, k)) < maturity:
        dues.append(due)
        k += 1
    return [*dues, maturity]


def new_plan(loan: Loan, *, principal_fen: int, start: date, maturity: date) -> list[Planned]:
    """The plan for ``principal_fen`` from ``start`` to ``maturity`` (seq from 1)."""
    dues = [maturity] if loan.repayment_type == schedules.BULLET else monthly_dues(
        start, maturity)
    rows: list[Planned] = []
    outstanding, since, carry = principal_fen, start, 0
    payment = schedules.annuity_payment(principal_fen, loan.annual_rate_bp, len(dues))
    for seq, due in enumerate(dues, start=1):
        weight = interest.days_weight(loan.day_count, since, due)
        owed, carry = interest.accrue(outstanding, loan.annual_rate_bp, loan.day_count, carry,
                                      weight)
        if seq == len(dues):
            part = outstanding
        elif loan.repayment_type == schedules.EQUAL:
            part = max(0, min(outstanding, payment - owed))
        else:
            part = 0
        rows.append(Planned(seq, due, part, owed))
        outstanding, since = outstanding - part, due
    return rows


def as_json(rows: list[Installment]) -> list[dict[str, Any]]:
    return [{"seq": r.seq, "due_date": r.due_date.isoformat(),
             "principal_due_fen": r.principal_due_fen, "interest_due_fen": r.interest_due_fen,
             "principal_paid_fen": r.principal_paid_fen, "interest_paid_fen": r.interest_paid_fen,
             "paid_on": r.paid_on.isoformat() if r.paid_on else None} for r in rows]


def _split(rows: list[Installment], day: date) -> tuple[list[Installment], list[Installment]]:
    """(kept, replaced): partly paid rows are closed at what was paid and kept."""
    kept: list[Installment] = []
    replaced: list[Installment] = []
    for row in rows:
        if row.paid_on is None and (row.principal_paid_fen or row.interest_paid_fen):
            row.principal_due_fen, row.interest_due_fen = (row.principal_paid_fen,
                                                           row.interest_paid_fen)
            row.paid_on = day
        (kept if row.paid_on is not None else replaced).append(row)
    return kept, replaced


def apply(session: DbSession, loan: Loan, case: ReliefCase, *, maturity: date, day: date,
          approved_by_id: int) -> LoanReschedule:
    """Replace the loan's unpaid installments by a plan to ``maturity`` (flushes)."""
    rows = list(session.scalars(sa.select(Installment).where(Installment.loan_id == loan.id)
                                .order_by(Installment.seq)))
    before = as_json(rows)
    kept, replaced = _split(rows, day)
    planned = new_plan(loan, principal_fen=loan.principal_outstanding_fen, start=day,
                       maturity=maturity) if loan.principal_outstanding_fen > 0 else []
    if planned:
        first = planned[0]
        planned[0] = Planned(first.seq, first.due_date, first.principal_due_fen,
                             first.interest_due_fen + loan.interest_outstanding_fen)
    _replace(session, loan, replaced, planned, base=max((r.seq for r in kept), default=0))
    after = list(session.scalars(sa.select(Installment).where(Installment.loan_id == loan.id)
                                 .order_by(Installment.seq)))
    record = LoanReschedule(loan_id=loan.id, case=case, business_date=day,
                            old_maturity_date=loan.maturity_date, new_maturity_date=maturity,
                            principal_fen=loan.principal_outstanding_fen, old_schedule=before,
                            new_schedule=as_json(after), approved_by_id=approved_by_id,
                            approved_at=utcnow())
    session.add(record)
    loan.maturity_date = maturity
    session.flush()
    return record


def _replace(session: DbSession, loan: Loan, replaced: list[Installment],
             planned: list[Planned], *, base: int) -> None:
    """Reuse the replaced rows for the plan (seq after ``base``), add or delete the rest."""
    for row in replaced:  # out of the way first: seq stays unique at every flush
        row.seq = -row.id
    session.flush()
    for index, item in enumerate(planned):
        row = replaced[index] if index < len(replaced) else Installment(loan_id=loan.id)
        row.seq, row.due_date = base + item.seq, item.due_date
        row.principal_due_fen, row.interest_due_fen = item.principal_due_fen, item.interest_due_fen
        row.principal_paid_fen, row.interest_paid_fen, row.paid_on = 0, 0, None
        session.add(row)
    for row in replaced[len(planned):]:
        session.delete(row)
    session.flush()
