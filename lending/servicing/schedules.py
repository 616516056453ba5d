"""Repayment schedules: when a term loan falls due and how much, planned from the product's
repayment type and the crop calendar (crop x county, the credit policy's data).

- ``bullet_at_harvest``: one installment, all principal and interest, on the last day of the
  first harvest window that ends after the start, if that day comes before the term ends;
  otherwise (or with no crop calendar) at the end of the term.
- ``interest_monthly_principal_at_maturity``: interest every month, the principal with the
  last installment.
- ``equal_instalments``: an annuity: every month the same payment (whole fen, at the monthly
  rate the day count makes of the annual rate), of which the interest accrued since the last
  due date is interest and the rest principal; the last one repays whatever principal is left,
  so the principal repaid is exactly the principal lent (and the last payment differs from the
  others by what rounding and the months' unequal lengths left, a few fen).
- ``grace_months``: during the first months no principal falls due, only interest (a bullet
  and interest-only loans have none before maturity anyway).

Monthly due dates count whole months from the start, held to the month's end: a loan that
starts on 31 January falls due on 28 (29) February, 31 March, 30 April; one that starts on the
last day of a month falls due on the last day of every month (the end-of-month rule).

The interest in a plan is an estimate of what the ledger will accrue: the same whole-fen
arithmetic with carry as the daily job (:mod:`lending.servicing.interest`) on the principal
expected to be outstanding between due dates, over the days ``(previous due, due]``. A loan
repaid exactly on schedule therefore pays the planned interest to the fen.

:func:`plan` is pure; :func:`install` writes a loan's rows. A revolving line has no schedule.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

import sqlalchemy as sa

from core.db import DbSession
from lending.policy import services as policy
from lending.servicing import interest
from lending.servicing.models import Installment, Loan

BULLET = "bullet_at_harvest"
INTEREST_ONLY = "interest_monthly_principal_at_maturity"
EQUAL = "equal_instalments"
LINE = "revolving_line"
SCHEDULED_TYPES = (BULLET, INTEREST_ONLY, EQUAL)


@dataclass(frozen=True)
class CropCalendar:
    """When a crop is planted and harvested in a county: ``"MM-DD"`` windows, any year."""

    crop: str
    county_code: str
    planting_from: str
    planting_to: str
    harvest_from: str
    harvest_to: str


@dataclass(frozen=True)
class Planned:
    """One planned installment."""

    seq: int
    due_date: date
    principal_due_fen: int
    interest_due_fen: int

    @property
    def total_fen(self) -> int:
        return self.principal_due_fen + self.interest_due_fen


# --- dates ------------------------------------------------------------------------------------

def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def add_months(start: date, months: int) -> date:
    """``start`` plus ``months`` whole months, held to the month's end; from the last day of a
    month, the last day of the target month (end-of-month rule)."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    last = _last_day(year, month + 1)
    if start.day == _last_day(start.year, start.month):
        return date(year, month + 1, last)
    return date(year, month + 1, min(start.day, last))


def _month_day(text: str, year: int) -> date:
    month, day = (int(part) for part in text.split("-"))
    return date(year, month, min(day, _last_day(year, month)))


def next_harvest(cal: CropCalendar, after: date) -> date:
    """The last day of the first harvest window that ends after ``after``."""
    end = _month_day(cal.harvest_to, after.year)
    return end if end > after else _month_day(cal.harvest_to, after.year + 1)


def bullet_due(start: date, term_months: int, cal: CropCalendar | None) -> date:
    """The bullet's due date: the next harvest's end within the term, else the term's end."""
    maturity = add_months(start, term_months)
    if cal is None:
        return maturity
    harvest = next_harvest(cal, start)
    return harvest if harvest <= maturity else maturity


# --- the crop calendar ------------------------------------------------------------------------

def calendar_for(session: DbSession, crop: str, county_code: str) -> CropCalendar | None:
    """The crop calendar of the credit policy in force, or None (no policy, or no figures for
    the crop in the county)."""
    try:
        current = policy.current_policy(session)
    except policy.NoPolicyInForce:
        return None
    ref = policy.crop_reference(session, current, crop, county_code)
    if ref is None:
        return None
    return CropCalendar(crop=ref.crop, county_code=ref.county_code,
                        planting_from=ref.planting_from, planting_to=ref.planting_to,
                        harvest_from=ref.harvest_from, harvest_to=ref.harvest_to)


# --- the plan ---------------------------------------------------------------------------------

class _Accrual:
    """The ledger's interest arithmetic over consecutive periods (carry kept between them)."""

    def __init__(self, rate_bp: int, day_count: str, start: date) -> None:
        self.rate_bp, self.day_count, self.since, self.carry = rate_bp, day_count, start, 0

    def to(self, due: date, principal_fen: int) -> int:
        weight = interest.days_weight(self.day_count, self.since, due)
        fen, self.carry = interest.accrue(principal_fen, self.rate_bp, self.day_count,
                                          self.carry, weight)
        self.since = due
        return fen


def monthly_rate(annual_rate_bp: int, day_count: str) -> Fraction:
    """A twelfth of a year's interest under ``day_count``, per unit of principal."""
    year = 360 if day_count == "30/360" else 365
    return Fraction(annual_rate_bp * year, 10_000 * 12 * interest.BASIS[day_count])


def annuity_payment(principal_fen: int, annual_rate_bp: int, months: int,
                    day_count: str = "ACT/365") -> int:
    """The level monthly payment (whole fen, rounded half up) repaying ``principal_fen`` over
    ``months``, at the monthly rate the day count makes of the annual rate: a twelfth of a
    year's interest (ACT/360 charges 365 days' interest a year at 1/360 each)."""
    rate = monthly_rate(annual_rate_bp, day_count)
    if rate == 0:
        exact = Fraction(principal_fen, months)
    else:
        exact = principal_fen * rate / (1 - (1 + rate) ** -months)
    return int(exact + Fraction(1, 2))


def _bullet(principal: int, accrual: _Accrual, due: date) -> list[Planned]:
    return [Planned(1, due, principal, accrual.to(due, principal))]


def _interest_only(principal: int, accrual: _Accrual, dues: list[date]) -> list[Planned]:
    last = len(dues)
    return [Planned(seq, due, principal if seq == last else 0, accrual.to(due, principal))
            for seq, due in enumerate(dues, start=1)]


def _equal_rows(principal: int, template: _Accrual, dues: list[date], grace: int,
                payment: int) -> list[Planned]:
    accrual = _Accrual(template.rate_bp, template.day_count, template.since)  # a fresh start
    rows, outstanding = [], principal
    for seq, due in enumerate(dues, start=1):
        owed = accrual.to(due, outstanding)
        if seq <= grace:
            part = 0
        elif seq == len(dues):
            part = outstanding  # the last installment takes the remainder
        else:
            part = max(0, min(outstanding, payment - owed))
        rows.append(Planned(seq, due, part, owed))
        outstanding -= part
    return rows


def _equal(principal: int, accrual: _Accrual, dues: list[date], grace: int) -> list[Planned]:
    """The annuity, its payment nudged (a few rounds) until the last one, which repays what is
    left after months of unequal length, is as close to the others as whole fen allow.

    One fen more on every payment leaves ``(1 + r)^(n-1) + ... + 1`` fen less for the last
    (``r`` the monthly rate): the step divides the difference by that sum.
    """
    count = len(dues) - grace
    payment = annuity_payment(principal, accrual.rate_bp, count, accrual.day_count)
    growth = 1 + monthly_rate(accrual.rate_bp, accrual.day_count)
    sensitivity = sum(growth ** k for k in range(count))
    rows = _equal_rows(principal, accrual, dues, grace, payment)
    for _round in range(8):
        step = round(Fraction(rows[-1].total_fen - payment) / sensitivity)
        if step == 0:
            break
        payment += step
        rows = _equal_rows(principal, accrual, dues, grace, payment)
    return rows


def plan(*, repayment_type: str, principal_fen: int, annual_rate_bp: int, day_count: str,
         term_months: int, grace_months: int, start: date,
         calendar: CropCalendar | None) -> list[Planned]:
    """The installments of a term loan of ``principal_fen`` disbursed on ``start``.

    ``ValueError`` for a revolving line (it has no schedule), an unknown type or a term, an
    amount or a grace that cannot make one.
    """
    if repayment_type not in SCHEDULED_TYPES:
        raise ValueError(f"no schedule for repayment type {repayment_type!r}")
    if term_months < 1 or principal_fen < 1 or grace_months < 0:
        raise ValueError("a schedule needs a positive term and principal, and grace >= 0")
    if day_count not in interest.BASIS:
        raise ValueError(f"unknown day count {day_count!r}")
    accrual = _Accrual(annual_rate_bp, day_count, start)
    if repayment_type == BULLET:
        return _bullet(principal_fen, accrual, bullet_due(start, term_months, calendar))
    dues = [add_months(start, k) for k in range(1, term_months + 1)]
    if repayment_type == INTEREST_ONLY:
        return _interest_only(principal_fen, accrual, dues)
    grace = min(grace_months, term_months - 1)
    return _equal(principal_fen, accrual, dues, grace)


def plan_for(session: DbSession, loan: Loan, start: date,
             principal_fen: int | None = None) -> list[Planned]:
    """:func:`plan` with a loan's terms (its crop calendar for a bullet)."""
    cal = calendar_for(session, loan.crop, loan.county_code) \
        if loan.repayment_type == BULLET else None
    return plan(repayment_type=loan.repayment_type,
                principal_fen=principal_fen or loan.principal_fen,
                annual_rate_bp=loan.annual_rate_bp, day_count=loan.day_count,
                term_months=loan.term_months, grace_months=loan.grace_months, start=start,
                calendar=cal)


def install(session: DbSession, loan: Loan, start: date) -> list[Installment]:
    """Write the schedule of a term loan disbursed on ``start`` and set its maturity.

    The principal is what was disbursed (the loan's outstanding principal once the
    disbursement is posted; the approved amount before). ``ValueError`` when the loan already
    has a schedule or is a line.
    """
    if loan.kind != "term":
        raise ValueError("a revolving line has no schedule")
    if session.scalar(sa.select(Installment.id).where(Installment.loan_id == loan.id).limit(1)):
        raise ValueError("the loan already has a schedule")
    planned = plan_for(session, loan, start, loan.principal_outstanding_fen or None)
    rows = [Installment(loan=loan, seq=p.seq, due_date=p.due_date,
                        principal_due_fen=p.principal_due_fen,
                        interest_due_fen=p.interest_due_fen) for p in planned]
    session.add_all(rows)
    loan.maturity_date = planned[-1].due_date
    session.flush()
    return rows
