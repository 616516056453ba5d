"""Concurrency on PostgreSQL: 50 threads x 20 signed repayment notifications against 5 loans,
while approvers race to authorise the disbursements of 5 fresh accepted loans. Afterwards:
one disbursement journal per loan, every fen accounted for, the cached balances equal to the
ledger, and the ledger balanced."""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from core.authz import Principal
from core.db import db
from core.errors import NongdaiError
from lending.ledger.models import JournalEntry, JournalTransaction
from lending.servicing import disbursement
from lending.servicing.models import Disbursement, Loan, Repayment
from tests.servicing import world as w
from tests.servicing.active import active_loan, assert_consistent, notification, notify, pin

pytestmark = pytest.mark.postgres

THREADS, PER_THREAD, LOANS, FRESH, AUTHORISERS = 50, 20, 5, 5, 4
PRINCIPAL = 50_000_000
TODAY = date(2027, 3, 1)


def _amount(thread: int, n: int) -> int:
    return 1_000 + (thread * 37 + n * 11) % 900


def _staff(row: Any, role: str) -> Principal:
    return Principal(kind="staff", id=row.id, public_id=row.public_id, roles=frozenset({role}))


def _repay(app: Any, loans: list[str], thread: int) -> list[tuple[int, dict[str, Any]]]:
    client = app.test_client()
    answers = []
    for n in range(PER_THREAD):
        loan = loans[(thread * PER_THREAD + n) % LOANS]
        body = notification(loan, _amount(thread, n), f"T{thread}-{n}")
        answer = notify(client, body)
        answers.append((answer.status_code, answer.json))
        if n % 5 == 0:  # a channel delivering the same notification again
            again = notify(client, body)
            answers.append((again.status_code, {"again": again.json == answer.json}))
    return answers


def _authorise(app: Any, disbursement_id: int, who: Principal, start: threading.Barrier) -> str:
    start.wait()
    with app.app_context():
        try:
            row = db.session.get(Disbursement, disbursement_id)
            disbursement.authorise(db.session, row, who)
            db.session.commit()
            return "booked"
        except NongdaiError as exc:
            db.session.rollback()
            return exc.code
        finally:
            db.session.remove()


def test_concurrent_repayments_and_disbursements(app: Any, session: Any) -> None:
    pin(app, TODAY)
    world = w.build(session)
    third = w.f.staff(session, ("approver",))
    loans = [active_loan(session, world, principal=PRINCIPAL) for _ in range(LOANS)]
    fresh = [active_loan(session, world, principal=800_000, accepted=True)
             for _ in range(FRESH)]
    reviewer = _staff(world.reviewer, "reviewer")
    initiated = [disbursement.initiate(session, loan, reviewer).id for loan in fresh]
    approvers = [_staff(s, "approver") for s in (world.approver, world.second_approver, third)]
    session.commit()
    ids = [str(loan.public_id) for loan in loans]
    start = threading.Barrier(FRESH * AUTHORISERS)
    with ThreadPoolExecutor(max_workers=THREADS + FRESH * AUTHORISERS) as pool:
        decided = [pool.submit(_authorise, app, d, approvers[k % len(approvers)], start)
                   for d in initiated for k in range(AUTHORISERS)]
        repaid = [pool.submit(_repay, app, ids, t) for t in range(THREADS)]
        outcomes = [future.result() for future in decided]
        answers = [a for future in repaid for a in future.result()]

    assert outcomes.count("booked") == FRESH
    assert all(status == 200 for status, _ in answers), {s for s, _ in answers}
    assert all(body.get("again", True) for _, body in answers)
    _check_disbursements(session, fresh)
    _check_repayments(session, loans)
    assert_consistent(session)


def _check_disbursements(session: Any, fresh: list[Loan]) -> None:
    session.expire_all()
    for loan in fresh:
        journals = session.scalars(sa.select(JournalTransaction).where(
            JournalTransaction.loan_id == loan.id, JournalTransaction.kind == "disbursement"))
        assert len(list(journals)) == 1
        assert session.get(Loan, loan.id).status == "active"
        assert session.get(Loan, loan.id).principal_outstanding_fen == 800_000


def _check_repayments(session: Any, loans: list[Loan]) -> None:
    rows = list(session.scalars(sa.select(Repayment)))
    assert len(rows) == THREADS * PER_THREAD
    expected = sum(_amount(t, n) for t in range(THREADS) for n in range(PER_THREAD))
    assert sum(r.amount_fen for r in rows) == expected
    by_loan: dict[int, list[Repayment]] = defaultdict(list)
    for row in rows:
        assert row.amount_fen == (row.penalty_fen + row.interest_fen + row.principal_fen
                                  + row.overpaid_fen)
        by_loan[row.loan_id].append(row)
    cleared = session.scalar(sa.select(sa.func.sum(JournalEntry.amount_fen)).where(
        JournalEntry.account == "repayment_clearing"))
    assert cleared == expected
    for loan in loans:
        fresh = session.get(Loan, loan.id)
        paid = by_loan[loan.id]
        accrued = session.scalar(sa.select(sa.func.sum(JournalEntry.amount_fen)).where(
            JournalEntry.loan_id == loan.id, JournalEntry.account == "interest_receivable",
            JournalEntry.amount_fen > 0))
        assert accrued == (PRINCIPAL * 720 * 59) // 3_600_000  # one accrual, to the day
        assert fresh.principal_outstanding_fen == PRINCIPAL - sum(r.principal_fen for r in paid)
        assert fresh.interest_outstanding_fen == accrued - sum(r.interest_fen for r in paid)
        assert fresh.overpaid_fen == sum(r.overpaid_fen for r in paid) == 0
