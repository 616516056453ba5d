"""The daily servicing job (``servicing.daily``): for business date D, over the active loans,
in chunks of ``NONGDAI_DAILY_CHUNK`` loan ids, each chunk one commit, set-based SQL only:

1. accrual: interest on ``principal_outstanding_fen`` for the days ``(accrued_through, D]``
   (from ``disbursed_on`` when never accrued), whole fen booked and the rest carried
   (:mod:`lending.servicing.interest`: ``numerator = carry + principal * rate_bp * weight``);
   the weight of several missed days is the difference of two day numbers
   (:class:`~lending.servicing.daily_sql.epoch_day`, or
   :class:`~lending.servicing.daily_sql.day360` under 30/360);
2. penalty interest at ``penalty_rate_bp`` on overdue principal (installments due before D and
   not paid), from the oldest such due date on, unless relief pauses it;
3. days past due (D - the oldest unpaid due date), bucket, ``aged_through``; a loan under
   relief keeps its days past due (ageing paused);
4. reminders (:mod:`lending.servicing.reminders`) and post-loan visits
   (:mod:`lending.servicing.postloan`);

and once at the end the portfolio-at-risk snapshot of D (:mod:`lending.servicing.portfolio`).

Each chunk posts ONE journal transaction (kind ``accrual_batch``): a debit per loan on
``interest_receivable`` / ``penalty_receivable`` (``INSERT ... SELECT``, zero fen writes
nothing) and one credit on ``interest_income`` / ``penalty_income`` for their sum, and moves
the cached balance columns by the same amounts in the same transaction. Every statement
selects only loans with ``accrued_through < D`` (and ``aged_through < D``): a re-run for D
changes nothing, and a loan a repayment accrued to D already (``accrue_to``) is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from core import audit
from core.db import DbSession, db, rowcount, table, utcnow
from core.jobs import DAILY_TICK, Job, JobRun, register
from lending.ledger import accounts
from lending.ledger.models import JournalEntry, JournalTransaction
from lending.servicing import (
    interest,
    portfolio,
    portfolio_views,
    postloan,
    reminders,
)
from lending.servicing.daily_sql import (
    day360,
    day360_of,
    epoch_day,
    epoch_day_of,
    millis_hex,
    new_public_id,
)
from lending.servicing.models import ACTIVE, Installment, Loan

log = logging.getLogger(__name__)

JOB = "servicing.daily"
ACTOR = "job:servicing.daily"
KIND = "accrual_batch"

LOANS = table(Loan)
INSTALLMENTS = table(Installment)
ENTRIES = table(JournalEntry)
JOURNALS = table(JournalTransaction)


@dataclass
class Totals:
    """What a run did, for the log and the audit trail."""

    chunks: int = 0
    loans: int = 0
    accrued: int = 0
    interest_fen: int = 0
    penalty_fen: int = 0
    aged: int = 0
    reminders: int = 0
    assignments: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def changed(self) -> bool:
        return bool(self.accrued or self.aged or self.reminders or self.assignments)


# --- the day's expressions ------------------------------------------------------------------

def _start() -> Any:
    return sa.func.coalesce(LOANS.c.accrued_through, LOANS.c.disbursed_on)


def _weight(since: Any, through: date) -> Any:
    """The summed day-count weight of the days ``(since, through]`` (``since`` an SQL date)."""
    return sa.case(
        (LOANS.c.day_count == "30/360", day360_of(through) - day360(since)),
        else_=epoch_day_of(through) - epoch_day(since))


def _denominator() -> Any:
    return sa.case(*((LOANS.c.day_count == name, interest.denominator(name))
                     for name in interest.BASIS), else_=interest.denominator("ACT/360"))


def _unpaid(through: date, *, before: bool) -> Any:
    """The loan's unpaid installments due on or before ``through`` (strictly before if
    ``before``): a correlated condition on ``loans``."""
    due = INSTALLMENTS.c.due_date < through if before else INSTALLMENTS.c.due_date <= through
    return sa.and_(INSTALLMENTS.c.loan_id == LOANS.c.id, INSTALLMENTS.c.paid_on.is_(None), due)


def oldest_due(through: date) -> Any:
    """The oldest unpaid due date on or before ``through`` (NULL when none)."""
    return (sa.select(sa.func.min(INSTALLMENTS.c.due_date))
            .where(_unpaid(through, before=False)).scalar_subquery())


@dataclass(frozen=True)
class Day:
    """The SQL expressions of business date D over ``loans`` rows, given the loan's oldest
    unpaid due date on or before D (``oldest``) and its overdue principal (``overdue``) as SQL
    expressions (NULL and 0 for a loan with nothing due)."""

    on: date

    def needs_accrual(self) -> Any:
        return sa.and_(_start().is_not(None), _start() < self.on)

    def interest_numerator(self) -> Any:
        return (LOANS.c.interest_carry + LOANS.c.principal_outstanding_fen
                * LOANS.c.annual_rate_bp * _weight(_start(), self.on))

    def penalty_accrues(self, oldest: Any) -> Any:
        return sa.and_(sa.not_(LOANS.c.relief_paused), oldest.is_not(None), oldest < self.on)

    def penalty_numerator(self, oldest: Any, overdue: Any) -> Any:
        since = sa.case((oldest > _start(), oldest), else_=_start())
        owed = sa.case((overdue > LOANS.c.principal_outstanding_fen,
                        LOANS.c.principal_outstanding_fen), else_=overdue)
        return sa.case((self.penalty_accrues(oldest), LOANS.c.penalty_carry
                        + owed * LOANS.c.penalty_rate_bp * _weight(since, self.on)),
                       else_=LOANS.c.penalty_carry)

    def dpd(self, oldest: Any) -> Any:
        computed = sa.func.coalesce(epoch_day_of(self.on) - epoch_day(oldest), 0)
        return sa.case((sa.and_(LOANS.c.relief_paused, LOANS.c.dpd < computed), LOANS.c.dpd),
                       else_=computed)

    def dues(self, after: int, upto: int) -> Any:
        """Per loan of ids ``(after, upto]`` with an unpaid installment due on or before D: the
        oldest such due date and the principal of those due before D (a derived table)."""
        owed = INSTALLMENTS.c.principal_due_fen - INSTALLMENTS.c.principal_paid_fen
        return (sa.select(INSTALLMENTS.c.loan_id,
                          sa.func.min(INSTALLMENTS.c.due_date).label("oldest"),
                          sa.cast(sa.func.sum(sa.case((INSTALLMENTS.c.due_date < self.on, owed),
                                                      else_=0)), sa.BigInteger)  # PG: numeric
                          .label("overdue"))
                .where(INSTALLMENTS.c.loan_id > after, INSTALLMENTS.c.loan_id <= upto,
                       INSTALLMENTS.c.paid_on.is_(None), INSTALLMENTS.c.due_date <= self.on)
                .group_by(INSTALLMENTS.c.loan_id).subquery("dues"))


def bucket_of(dpd: Any) -> Any:
    return sa.case((dpd <= 0, "current"), (dpd <= 30, "1-30"), (dpd <= 60, "31-60"),
                   (dpd <= 90, "61-90"), else_="90+")


# --- one chunk ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Chunk:
    day: Day
    first: int  # loan ids in (after, upto]
    after: int
    upto: int

    def loans(self) -> Any:
        return sa.and_(LOANS.c.status == ACTIVE, LOANS.c.id > self.after,
                       LOANS.c.id <= self.upto)


def _journal(session: DbSession, chunk: Chunk) -> int:
    """The chunk's journal transaction (a fresh reference if a run for D used it already)."""
    base = f"{chunk.day.on.isoformat()}:{chunk.after + 1}-{chunk.upto}"
    taken = session.scalar(sa.select(sa.func.count()).select_from(JOURNALS).where(
        JOURNALS.c.kind == KIND, sa.or_(JOURNALS.c.reference == base,
                                        JOURNALS.c.reference.like(f"{base}#%"))))
    reference = base if not taken else f"{base}#{int(taken) + 1}"
    return int(session.execute(sa.insert(JOURNALS).values(
        kind=KIND, reference=reference, business_date=chunk.day.on, actor=ACTOR,
        memo={"job": JOB, "loan_ids": [chunk.after + 1, chunk.upto]},
        public_id=new_public_id(sa.literal(millis_hex())), created_at=utcnow(),
    ).returning(JOURNALS.c.id)).scalar_one())


def _debits(session: DbSession, rows: sa.Select[Any]) -> None:
    session.execute(sa.insert(ENTRIES).from_select(
        ["journal_id", "account", "loan_id", "amount_fen"], rows))


def _credit(session: DbSession, journal_id: int, debit: str, credit: str) -> int:
    """The bank-side credit for the sum of the chunk's debits on ``debit``; returns it."""
    total = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(ENTRIES.c.amount_fen), 0))
                           .where(ENTRIES.c.journal_id == journal_id,
                                  ENTRIES.c.account == debit))
    if total:
        session.execute(sa.insert(ENTRIES).values(journal_id=journal_id, account=credit,
                                                  loan_id=None, amount_fen=-int(total)))
    return int(total or 0)


def _post_accruals(session: DbSession, chunk: Chunk, dues: Any, totals: Totals) -> None:
    """The chunk's journal: a debit per loan that accrues a nonzero amount, one credit."""
    day, den = chunk.day, _denominator()
    journal_id = _journal(session, chunk)
    interest_fen = day.interest_numerator() // den
    _debits(session, sa.select(sa.literal(journal_id), sa.literal(accounts.INTEREST_RECEIVABLE),
                               LOANS.c.id, interest_fen)
            .where(chunk.loans(), day.needs_accrual(), interest_fen != 0))
    penalty_fen = day.penalty_numerator(dues.c.oldest, dues.c.overdue) // den
    _debits(session, sa.select(sa.literal(journal_id), sa.literal(accounts.PENALTY_RECEIVABLE),
                               LOANS.c.id, penalty_fen)
            .select_from(LOANS.join(dues, dues.c.loan_id == LOANS.c.id))
            .where(chunk.loans(), day.needs_accrual(), day.penalty_accrues(dues.c.oldest),
                   penalty_fen != 0))
    got_interest = _credit(session, journal_id, accounts.INTEREST_RECEIVABLE,
                           accounts.INTEREST_INCOME)
    got_penalty = _credit(session, journal_id, accounts.PENALTY_RECEIVABLE,
                          accounts.PENALTY_INCOME)
    if not got_interest and not got_penalty:
        session.execute(sa.delete(JOURNALS).where(JOURNALS.c.id == journal_id))
    totals.interest_fen += got_interest
    totals.penalty_fen += got_penalty


def _accrue_and_age(session: DbSession, chunk: Chunk, dues: Any) -> int:
    """Move the cached balances by what :func:`_post_accruals` posted, keep the carries, and
    age the loans that accrue today: one UPDATE for those with something due (joined to
    ``dues``), one for the others (nothing due: current)."""
    day, den = chunk.day, _denominator()
    inum = day.interest_numerator()
    accrual = {"interest_outstanding_fen": LOANS.c.interest_outstanding_fen + inum // den,
               "interest_carry": inum % den, "accrued_through": day.on,
               "aged_through": day.on}
    pnum = day.penalty_numerator(dues.c.oldest, dues.c.overdue)
    dpd = day.dpd(dues.c.oldest)
    due = session.execute(sa.update(LOANS).where(
        LOANS.c.id == dues.c.loan_id, chunk.loans(), day.needs_accrual()).values(
        penalty_outstanding_fen=LOANS.c.penalty_outstanding_fen + pnum // den,
        penalty_carry=pnum % den, oldest_due_date=dues.c.oldest, dpd=dpd,
        bucket=bucket_of(dpd), **accrual))
    nothing_due = session.execute(sa.update(LOANS).where(
        chunk.loans(), day.needs_accrual(), LOANS.c.id.not_in(sa.select(dues.c.loan_id)))
        .values(oldest_due_date=None, dpd=0, bucket="current", **accrual))
    return rowcount(due) + rowcount(nothing_due)


def _age(session: DbSession, chunk: Chunk) -> int:
    """Age the loans accrued already (a repayment accrued them to D) and not aged yet: few,
    so correlated lookups."""
    day = chunk.day
    oldest = oldest_due(day.on)
    dpd = day.dpd(oldest)
    not_aged = sa.or_(LOANS.c.aged_through.is_(None), LOANS.c.aged_through < day.on)
    result = session.execute(sa.update(LOANS).where(chunk.loans(), not_aged).values(
        oldest_due_date=oldest, dpd=dpd, bucket=bucket_of(dpd), aged_through=day.on))
    return rowcount(result)


def _any_to_accrue(session: DbSession, chunk: Chunk) -> bool:
    return session.scalar(sa.select(LOANS.c.id).where(
        chunk.loans(), chunk.day.needs_accrual()).limit(1)) is not None


def run_chunk(session: DbSession, chunk: Chunk, totals: Totals) -> None:
    """Everything the job does for one chunk of loans, in the caller's transaction."""
    if _any_to_accrue(session, chunk):
        dues = chunk.day.dues(chunk.after, chunk.upto)
        _post_accruals(session, chunk, dues, totals)
        totals.accrued += _accrue_and_age(session, chunk, dues)
    totals.aged += _age(session, chunk)
    totals.reminders += reminders.queue(session, chunk.day.on, chunk.after, chunk.upto)
    totals.assignments += postloan.assign(session, chunk.day.on, chunk.after, chunk.upto)


# --- the run --------------------------------------------------------------------------------

def _next_upto(session: DbSession, after: int, size: int) -> int | None:
    """The last id of the next ``size`` active loans after ``after`` (None: none left)."""
    active = sa.and_(LOANS.c.status == ACTIVE, LOANS.c.id > after)
    upto = session.scalar(sa.select(LOANS.c.id).where(active).order_by(LOANS.c.id)
                          .offset(size - 1).limit(1))
    if upto is None:
        upto = session.scalar(sa.select(sa.func.max(LOANS.c.id)).where(active))
    return int(upto) if upto is not None else None


def run_day(session_or_run: DbSession | JobRun, business_date: date) -> Totals:
    """Service every active loan for ``business_date``. Given a :class:`JobRun`, each chunk is
    committed (the job); given a session, everything stays in its transaction (flushed)."""
    if isinstance(session_or_run, JobRun):
        session: DbSession = db.session
        commit: Callable[[], None] = session_or_run.commit
    else:
        session, commit = session_or_run, lambda: None
    size = max(1, int(current_app.config["NONGDAI_DAILY_CHUNK"]))
    day, totals, after, started = Day(business_date), Totals(), 0, time.monotonic()
    while (upto := _next_upto(session, after, size)) is not None:
        run_chunk(session, Chunk(day, after + 1, after, upto), totals)
        totals.chunks += 1
        commit()
        log.info("servicing.daily chunk", extra={
            "job": JOB, "business_date": business_date.isoformat(), "chunk": totals.chunks,
            "loan_ids": [after + 1, upto], "accrued": totals.accrued,
            "elapsed_s": round(time.monotonic() - started, 3)})
        after = upto
    totals.loans = portfolio.snapshot(session, business_date)
    if totals.changed():
        audit.record(session, "servicing.daily", None, actor=ACTOR, summary=_summary(
            business_date, totals))
    log.info("servicing.daily done", extra={"job": JOB, **_summary(business_date, totals)})
    return totals


def _summary(business_date: date, totals: Totals) -> dict[str, Any]:
    return {"business_date": business_date.isoformat(), "chunks": totals.chunks,
            "loans": totals.loans, "accrued": totals.accrued, "aged": totals.aged,
            "interest_fen": totals.interest_fen, "penalty_fen": totals.penalty_fen,
            "reminders": totals.reminders, "assignments": totals.assignments}


def daily(job_run: JobRun) -> None:
    """Job ``servicing.daily``: the business date's servicing (see the module docstring)."""
    run_day(job_run, job_run.business_date)


def init_app(app: Flask) -> None:
    """Register the job and the portfolio blueprint."""
    register(app, Job(JOB, daily, DAILY_TICK, lease_seconds=1800, daily=True))
    portfolio_views.init_app(app)
