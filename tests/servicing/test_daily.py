"""The daily job: accrual (every day count, catch-up, month ends), penalties, days past due and
buckets, paused ageing, the ledger, post-loan visits, and re-runs that change nothing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core import jobs
from core.outbox import OutboxMessage
from lending.applications.models import FieldAssignment
from lending.ledger import accounts
from lending.ledger.models import JournalEntry, JournalTransaction
from lending.servicing import daily, interest
from lending.servicing.daily_sql import day360_of
from lending.servicing.models import Installment, Loan
from sync.feed.changes import SyncChange
from tests.servicing import world as w
from tests.servicing.daily_helpers import assert_ledger_consistent, ledger_of, loan, run

START = date(2027, 1, 25)
DAY_COUNTS = ("ACT/360", "ACT/365", "30/360")


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_day360_positions_give_the_30_360_weights() -> None:
    for after in _days(date(2027, 1, 1), date(2028, 12, 31))[::7]:
        for through in (after + timedelta(days=n) for n in (1, 2, 30, 61)):
            assert day360_of(through) - day360_of(after) == interest.days_weight(
                "30/360", after, through), (after, through)


@pytest.mark.parametrize("day_count", DAY_COUNTS)
def test_daily_accrual_matches_the_interest_module(session: Any, day_count: str) -> None:
    world = w.build(session)
    row = loan(session, world, principal_fen=1_234_567, rate_bp=735, day_count=day_count,
               disbursed_on=START)
    carry, booked = 0, 0
    for day in _days(START + timedelta(days=1), date(2027, 3, 2)):  # Jan 31, Feb 28, Mar 1
        run(session, day)
        fen, carry = interest.accrue(1_234_567, 735, day_count, carry,
                                     interest.weight(day_count, day))
        booked += fen
        assert (row.interest_outstanding_fen, row.interest_carry) == (booked, carry), day
        assert row.accrued_through == day
    assert ledger_of(session, row.id)[accounts.INTEREST_RECEIVABLE] == booked
    assert_ledger_consistent(session)


@pytest.mark.parametrize("day_count", DAY_COUNTS)
def test_catch_up_over_missed_days_books_the_same(session: Any, day_count: str) -> None:
    world = w.build(session)
    caught = loan(session, world, principal_fen=987_654, rate_bp=650, day_count=day_count,
                  disbursed_on=START)
    run(session, date(2027, 2, 10))
    run(session, date(2027, 3, 3))  # several missed days over the end of February
    expected = interest.accrue(987_654, 650, day_count, 0,
                               interest.days_weight(day_count, START, date(2027, 3, 3)))
    assert (caught.interest_outstanding_fen, caught.interest_carry) == expected
    assert_ledger_consistent(session)


def test_one_journal_per_chunk_with_one_income_credit(session: Any, app: Any) -> None:
    app.config["NONGDAI_DAILY_CHUNK"] = 2
    world = w.build(session)
    rows = [loan(session, world, principal_fen=500_000 + n) for n in range(5)]
    run(session, date(2027, 1, 11))
    journals = session.scalars(sa.select(JournalTransaction)
                               .where(JournalTransaction.kind == daily.KIND)).all()
    assert len(journals) == 3  # chunks of 2, 2 and 1 loans
    for journal in journals:
        income = [e for e in journal.entries if e.account == accounts.INTEREST_INCOME]
        assert len(income) == 1
        assert income[0].loan_id is None
    assert all(r.interest_outstanding_fen == 1_000 for r in rows)  # 10 days at 7.2 % / 360
    assert_ledger_consistent(session)


def test_zero_fen_accruals_write_no_entry(session: Any) -> None:
    world = w.build(session)
    tiny = loan(session, world, principal_fen=100, rate_bp=100)
    run(session, date(2027, 1, 2))
    assert tiny.interest_outstanding_fen == 0
    assert tiny.interest_carry == 100 * 100
    assert tiny.accrued_through == date(2027, 1, 2)
    assert session.scalar(sa.select(sa.func.count()).select_from(JournalTransaction)
                          .where(JournalTransaction.kind == daily.KIND)) == 0
    assert_ledger_consistent(session)


def test_a_loan_accrued_to_the_day_already_is_not_accrued_again(session: Any) -> None:
    world = w.build(session)
    row = loan(session, world)
    row.accrued_through = date(2027, 1, 5)  # as a repayment's accrue_to leaves it
    run(session, date(2027, 1, 5))
    assert row.interest_outstanding_fen == 0
    assert row.aged_through == date(2027, 1, 5)
    run(session, date(2027, 1, 6))
    assert row.interest_outstanding_fen == 200  # one day on 1,000,000 at 7.2 %


def _overdue_schedule() -> list[tuple[date, int, int]]:
    return [(date(2027, 1, 10), 400_000, 0), (date(2027, 9, 30), 600_000, 0)]


def test_penalty_only_on_overdue_principal_and_not_while_paused(session: Any) -> None:
    world = w.build(session)
    overdue = loan(session, world, schedule=_overdue_schedule())
    paused = loan(session, world, schedule=_overdue_schedule(), paused=True)
    current = loan(session, world)
    run(session, date(2027, 1, 10))
    assert overdue.penalty_outstanding_fen == 0  # due today: not overdue yet
    run(session, date(2027, 1, 20))
    fen, carry = interest.accrue(400_000, 1080, "ACT/360", 0, 10)  # days Jan 11..20
    assert (overdue.penalty_outstanding_fen, overdue.penalty_carry) == (fen, carry)
    assert fen == 1200
    assert paused.penalty_outstanding_fen == 0
    assert current.penalty_outstanding_fen == 0
    assert overdue.interest_outstanding_fen == paused.interest_outstanding_fen == 3_800
    assert ledger_of(session, overdue.id)[accounts.PENALTY_RECEIVABLE] == 1200
    income = session.scalar(sa.select(sa.func.sum(JournalEntry.amount_fen))
                            .where(JournalEntry.account == accounts.PENALTY_INCOME))
    assert income == -1200
    assert_ledger_consistent(session)


def test_paid_installments_are_not_overdue(session: Any) -> None:
    world = w.build(session)
    row = loan(session, world, schedule=_overdue_schedule())
    first = session.scalars(sa.select(Installment).where(Installment.loan_id == row.id,
                                                         Installment.seq == 1)).one()
    first.principal_paid_fen, first.paid_on = 400_000, date(2027, 1, 10)
    run(session, date(2027, 1, 20))
    assert (row.dpd, row.bucket, row.penalty_outstanding_fen) == (0, "current", 0)
    assert row.oldest_due_date is None


@pytest.mark.parametrize(("on", "dpd", "bucket"), [
    (date(2027, 1, 10), 0, "current"), (date(2027, 1, 11), 1, "1-30"),
    (date(2027, 2, 9), 30, "1-30"), (date(2027, 2, 10), 31, "31-60"),
    (date(2027, 3, 12), 61, "61-90"), (date(2027, 4, 10), 90, "61-90"),
    (date(2027, 4, 11), 91, "90+")])
def test_days_past_due_and_buckets(session: Any, on: date, dpd: int, bucket: str) -> None:
    world = w.build(session)
    row = loan(session, world, schedule=_overdue_schedule())
    run(session, on)
    assert (row.dpd, row.bucket, row.aged_through) == (dpd, bucket, on)
    assert row.oldest_due_date == (date(2027, 1, 10) if on >= date(2027, 1, 10) else None)


def test_a_loan_moves_through_every_bucket(session: Any) -> None:
    world = w.build(session)
    row = loan(session, world, schedule=_overdue_schedule())
    seen = []
    for on in (date(2027, 1, 5), date(2027, 1, 11), date(2027, 2, 10), date(2027, 3, 12),
               date(2027, 4, 11)):
        run(session, on)
        seen.append(row.bucket)
    assert seen == ["current", "1-30", "31-60", "61-90", "90+"]
    assert_ledger_consistent(session)


def test_relief_pauses_ageing(session: Any) -> None:
    world = w.build(session)
    row = loan(session, world, schedule=_overdue_schedule())
    run(session, date(2027, 1, 15))
    assert row.dpd == 5
    row.relief_paused = True
    run(session, date(2027, 2, 20))
    assert (row.dpd, row.bucket) == (5, "1-30")
    row.relief_paused = False
    run(session, date(2027, 2, 21))
    assert (row.dpd, row.bucket) == (42, "31-60")


def _assignments(session: Any, row: Loan) -> list[tuple[str, date | None]]:
    stmt = (sa.select(FieldAssignment.kind, FieldAssignment.due_on)
            .where(FieldAssignment.loan_id == row.id))
    return sorted(tuple(r) for r in session.execute(stmt).all())


def _visited(session: Any, row: Loan) -> None:
    """A coordinator closes the loan's open visits."""
    session.execute(sa.update(FieldAssignment).where(FieldAssignment.loan_id == row.id)
                    .values(status="done"))


def test_post_loan_visits_open_once_each_and_reach_devices(session: Any) -> None:
    world = w.build(session)
    row = loan(session, world, disbursed_on=date(2027, 1, 1),
               schedule=[(date(2027, 1, 20), 300_000, 0), (date(2027, 2, 10), 700_000, 0)])
    run(session, date(2027, 1, 2))
    run(session, date(2027, 1, 2))
    assert _assignments(session, row) == [("post_loan_disbursed", date(2027, 1, 31))]
    run(session, date(2027, 1, 10))  # 10 days before the harvest due date
    run(session, date(2027, 1, 10))
    # visits of different kinds are open together (the one-open rule is for field checks)
    assert _assignments(session, row) == [("post_loan_disbursed", date(2027, 1, 31)),
                                          ("post_loan_harvest", date(2027, 1, 20))]
    _visited(session, row)
    run(session, date(2027, 1, 21))  # past due: the overdue visit first
    _visited(session, row)
    run(session, date(2027, 1, 27))  # the next harvest due date is 14 days away
    run(session, date(2027, 1, 28))
    assert _assignments(session, row) == [
        ("post_loan_disbursed", date(2027, 1, 31)), ("post_loan_harvest", date(2027, 1, 20)),
        ("post_loan_harvest", date(2027, 2, 10)), ("post_loan_overdue", date(2027, 1, 27))]
    opened = session.scalars(sa.select(FieldAssignment).where(FieldAssignment.loan_id == row.id))
    for assignment in opened:
        assert assignment.application_id == row.application_id
        assert assignment.village_id == row.village_id
        assert assignment.completed_at is None
        assert assignment.public_id.version == 7
        assert session.scalar(sa.select(sa.func.count()).select_from(SyncChange).where(
            SyncChange.entity_id == assignment.public_id, SyncChange.kind == "assignment",
            SyncChange.village_id == row.village_id)) == 1


def _state(session: Any) -> dict[str, Any]:
    def rows(stmt: Any) -> list[Any]:
        return [tuple(r) for r in session.execute(stmt).all()]
    return {
        "loans": rows(sa.select(Loan.id, Loan.interest_outstanding_fen, Loan.interest_carry,
                                Loan.penalty_outstanding_fen, Loan.penalty_carry, Loan.dpd,
                                Loan.bucket, Loan.accrued_through).order_by(Loan.id)),
        "entries": rows(sa.select(JournalEntry.journal_id, JournalEntry.account,
                                  JournalEntry.loan_id, JournalEntry.amount_fen)
                        .order_by(JournalEntry.id)),
        "sms": rows(sa.select(OutboxMessage.recipient, OutboxMessage.body)
                    .order_by(OutboxMessage.id)),
        "assignments": rows(sa.select(FieldAssignment.id, FieldAssignment.kind)
                            .order_by(FieldAssignment.id)),
        "changes": rows(sa.select(sa.func.count()).select_from(SyncChange)),
    }


def test_running_a_day_twice_changes_nothing(session: Any) -> None:
    world = w.build(session)
    loan(session, world, schedule=_overdue_schedule())
    loan(session, world, schedule=[(date(2027, 2, 12), 1_000_000, 0)], language="en")
    loan(session, world, schedule=_overdue_schedule(), paused=True)
    loan(session, world, day_count="30/360")
    run(session, date(2027, 2, 10))
    first = _state(session)
    assert first["sms"]
    assert first["assignments"]
    assert first["entries"]
    assert run(session, date(2027, 2, 10)) == "ok"
    assert _state(session) == first
    assert_ledger_consistent(session)


def test_run_day_in_a_session_flushes_without_committing(session: Any) -> None:
    world = w.build(session)
    row = loan(session, world)
    totals = daily.run_day(session, date(2027, 1, 11))
    assert (totals.accrued, totals.chunks, totals.loans) == (1, 1, 1)
    session.expire_all()
    assert row.interest_outstanding_fen == 2_000
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(JournalTransaction)
                          .where(JournalTransaction.kind == daily.KIND)) == 0


def test_the_scheduler_catches_up_missed_dates_in_order(session: Any, app: Any) -> None:
    world = w.build(session)
    row = loan(session, world, schedule=_overdue_schedule())
    session.commit()
    app.config["NONGDAI_BUSINESS_DATE"] = "2027-01-09"
    assert jobs.run(daily.JOB) == "ok"  # the first run ever: today only
    app.config["NONGDAI_BUSINESS_DATE"] = "2027-01-12"
    assert jobs.run(daily.JOB) == "ok"  # 10, 11 and 12 January, oldest first
    session.expire_all()
    assert (row.accrued_through, row.dpd, row.bucket) == (date(2027, 1, 12), 2, "1-30")
    assert row.interest_outstanding_fen == 11 * 200  # 2 to 12 January
    days = session.scalars(sa.select(JournalTransaction.business_date)
                           .where(JournalTransaction.kind == daily.KIND)
                           .order_by(JournalTransaction.id)).all()
    assert days == [date(2027, 1, d) for d in (9, 10, 11, 12)]
