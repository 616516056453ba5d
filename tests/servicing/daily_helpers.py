"""Loans seeded directly for the daily job's tests (rows, a schedule and the disbursement's
journal through ``lending.ledger.posting.post``), and the job run as the scheduler runs it."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from core import jobs
from lending.ledger import accounts
from lending.ledger.models import JournalEntry, JournalTransaction
from lending.ledger.posting import Line, post
from lending.servicing.models import Installment, Loan
from tests.servicing import world as w


def loan(session: Any, world: w.World, *, principal_fen: int = 1_000_000,
         rate_bp: int = 720, penalty_bp: int = 1080, day_count: str = "ACT/360",
         disbursed_on: date = date(2027, 1, 1),
         schedule: list[tuple[date, int, int]] | None = None, language: str = "zh_CN",
         village: Any = None, paused: bool = False,
         repayment_type: str = "bullet_at_harvest") -> Loan:
    """An active loan disbursed on ``disbursed_on`` with ``schedule`` [(due, principal,
    interest)] (default: all principal on 2027-09-30)."""
    farmer = w.farmer(session, world, village)
    farmer.language = language
    application = w.approved(session, world, farmer, amount_fen=principal_fen)
    row = Loan(application_id=application.id, farmer_id=farmer.id, village_id=farmer.village_id,
               product_id=world.spring.id, kind="term", repayment_type=repayment_type,
               crop="rice", county_code=w.COUNTY, terms={}, principal_fen=principal_fen,
               term_months=8, annual_rate_bp=rate_bp, penalty_rate_bp=penalty_bp,
               day_count=day_count, status="active", disbursed_on=disbursed_on,
               relief_paused=paused)
    session.add(row)
    session.flush()
    for seq, (due, principal, interest) in enumerate(
            schedule or [(date(2027, 9, 30), principal_fen, 0)], start=1):
        session.add(Installment(loan_id=row.id, seq=seq, due_date=due,
                                principal_due_fen=principal, interest_due_fen=interest))
    post(session, kind="disbursement", reference=f"test:{row.id}", business_date=disbursed_on,
         lines=[Line(accounts.LOAN_PRINCIPAL, principal_fen, row.id),
                Line(accounts.PAYOUT_CLEARING, -principal_fen)], actor="test", loan_id=row.id)
    session.flush()
    return row


def run(session: Any, on: date) -> str:
    """Run ``servicing.daily`` for ``on`` through ``core.jobs.run``; reload what it changed."""
    session.commit()
    status = jobs.run("servicing.daily", on=on)
    session.expire_all()
    return status


def ledger_of(session: Any, loan_id: int) -> dict[str, int]:
    rows = session.execute(sa.select(JournalEntry.account, sa.func.sum(JournalEntry.amount_fen))
                           .where(JournalEntry.loan_id == loan_id)
                           .group_by(JournalEntry.account)).all()
    return {account: int(total) for account, total in rows}


def assert_ledger_consistent(session: Any) -> None:
    """Every journal balances; every loan's cached balances equal its ledger accounts."""
    unbalanced = session.execute(
        sa.select(JournalEntry.journal_id).group_by(JournalEntry.journal_id)
        .having(sa.func.sum(JournalEntry.amount_fen) != 0)).all()
    assert unbalanced == []
    empty = session.scalars(sa.select(JournalTransaction.id).where(
        ~sa.exists().where(JournalEntry.journal_id == JournalTransaction.id))).all()
    assert empty == []
    for row in session.scalars(sa.select(Loan)):
        ledger = ledger_of(session, row.id)
        for account, (column, sign) in accounts.LOAN_COLUMNS.items():
            assert getattr(row, column) == sign * ledger.get(account, 0), (row.id, account)
