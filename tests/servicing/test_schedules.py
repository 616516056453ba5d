"""Schedules: month-end dates, the harvest calendar, every repayment type with and without
grace, the equal-instalment rounding, and the plan's interest matching daily accrual."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise
from typing import Any

import pytest

from lending.servicing import interest, loans, schedules
from lending.servicing.schedules import CropCalendar, Planned, add_months, next_harvest, plan
from tests.servicing import world as w

RICE = CropCalendar(crop="rice", county_code=w.COUNTY, planting_from="05-01",
                    planting_to="05-31", harvest_from="09-01", harvest_to="10-31")
TYPES = ("bullet_at_harvest", "interest_monthly_principal_at_maturity", "equal_instalments")


def _plan(repayment_type: str, *, principal: int = 2_000_000, rate: int = 435,
          day_count: str = "ACT/360", term: int = 8, grace: int = 0,
          start: date = date(2027, 3, 1), cal: CropCalendar | None = RICE) -> list[Planned]:
    return plan(repayment_type=repayment_type, principal_fen=principal, annual_rate_bp=rate,
                day_count=day_count, term_months=term, grace_months=grace, start=start,
                calendar=cal)


# --- dates ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("start", "months", "expected"), [
    (date(2027, 1, 31), 1, date(2027, 2, 28)),
    (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
    (date(2027, 1, 31), 2, date(2027, 3, 31)),
    (date(2027, 1, 31), 3, date(2027, 4, 30)),
    (date(2027, 1, 30), 1, date(2027, 2, 28)),
    (date(2027, 1, 30), 2, date(2027, 3, 30)),  # not a month end: the day is kept
    (date(2027, 1, 29), 13, date(2028, 2, 29)),
    (date(2027, 2, 28), 1, date(2027, 3, 31)),  # from a month end: month ends
    (date(2027, 4, 30), 1, date(2027, 5, 31)),
    (date(2027, 3, 15), 10, date(2028, 1, 15)),
    (date(2027, 12, 31), 1, date(2028, 1, 31)),
])
def test_months_are_added_with_month_end_rules(start: date, months: int,
                                               expected: date) -> None:
    assert add_months(start, months) == expected


def test_monthly_due_dates_from_the_31st_keep_to_month_ends() -> None:
    rows = _plan("interest_monthly_principal_at_maturity", term=4, start=date(2027, 1, 31))
    assert [r.due_date for r in rows] == [date(2027, 2, 28), date(2027, 3, 31),
                                          date(2027, 4, 30), date(2027, 5, 31)]
    rows = _plan("equal_instalments", term=3, start=date(2027, 11, 29))
    assert [r.due_date for r in rows] == [date(2027, 12, 29), date(2028, 1, 29),
                                          date(2028, 2, 29)]


@pytest.mark.parametrize(("after", "expected"), [
    (date(2027, 3, 1), date(2027, 10, 31)),
    (date(2027, 9, 15), date(2027, 10, 31)),  # inside the window: its end
    (date(2027, 10, 31), date(2028, 10, 31)),  # the window ends on the day: the next one
    (date(2027, 11, 15), date(2028, 10, 31)),
])
def test_next_harvest_is_the_end_of_the_first_window_ending_after(after: date,
                                                                  expected: date) -> None:
    assert next_harvest(RICE, after) == expected


# --- bullet at harvest ------------------------------------------------------------------------

def test_bullet_falls_due_at_the_rice_harvest_within_the_term() -> None:
    rows = _plan("bullet_at_harvest", term=8)  # 2027-03-01 + 8 months = 2027-11-01
    assert len(rows) == 1
    only = rows[0]
    assert (only.seq, only.due_date, only.principal_due_fen) == (1, date(2027, 10, 31),
                                                                 2_000_000)
    # 244 days (1 March to 31 October) at 4.35 % ACT/360: 58,966.66... fen
    assert only.interest_due_fen == 2_000_000 * 435 * 244 // (360 * 10_000) == 58_966


def test_bullet_without_a_harvest_in_the_term_falls_due_at_its_end() -> None:
    rows = _plan("bullet_at_harvest", term=6)  # the term ends 2027-09-01, before 31 October
    assert [r.due_date for r in rows] == [date(2027, 9, 1)]
    assert rows[0].interest_due_fen == 2_000_000 * 435 * 184 // 3_600_000


def test_bullet_without_a_crop_calendar_falls_due_at_the_term_end() -> None:
    rows = _plan("bullet_at_harvest", term=8, cal=None)
    assert [(r.due_date, r.principal_due_fen) for r in rows] == [(date(2027, 11, 1), 2_000_000)]


def test_bullet_grace_changes_nothing() -> None:
    assert _plan("bullet_at_harvest", grace=3) == _plan("bullet_at_harvest")


# --- monthly interest, principal at maturity -------------------------------------------------

@pytest.mark.parametrize("grace", [0, 3])
def test_interest_monthly_principal_at_maturity(grace: int) -> None:
    rows = _plan("interest_monthly_principal_at_maturity", term=6, grace=grace)
    assert [r.due_date for r in rows] == [date(2027, m, 1) for m in range(4, 10)]
    assert [r.principal_due_fen for r in rows] == [0, 0, 0, 0, 0, 2_000_000]
    # March has 31 days: 2,000,000 * 435 * 31 / 3,600,000 = 7,491.66 fen, the 0.66 carried
    assert rows[0].interest_due_fen == 7_491
    assert rows[1].interest_due_fen == 7_250  # 30 days: 7,250 exactly (+ the carry's 0.66)
    total = sum(r.interest_due_fen for r in rows)
    assert total == 2_000_000 * 435 * (date(2027, 9, 1) - date(2027, 3, 1)).days // 3_600_000


# --- equal instalments --------------------------------------------------------------------------

def _level(rows: list[Planned]) -> int:
    """The one payment of every installment but the last (asserted to be one)."""
    payments = {r.total_fen for r in rows[:-1] if r.principal_due_fen}
    assert len(payments) == 1, payments
    return payments.pop()


def test_equal_instalments_pay_the_same_each_month_and_the_last_takes_the_remainder() -> None:
    rows = _plan("equal_instalments", principal=1_000_001, rate=520, term=12)
    monthly = 0.052 * 365 / 360 / 12  # ACT/360: a year's interest is 365/360 of the rate
    formula = round(1_000_001 * monthly / (1 - (1 + monthly) ** -12))
    assert schedules.annuity_payment(1_000_001, 520, 12, "ACT/360") == formula == 85_732
    payment = _level(rows)
    assert abs(payment - formula) <= 30  # nudged for the months' unequal lengths
    assert abs(rows[-1].total_fen - payment) <= 12  # the remainder: a few fen
    assert sum(r.principal_due_fen for r in rows) == 1_000_001
    assert all(r.principal_due_fen > 0 for r in rows)
    principal = [r.principal_due_fen for r in rows[:-1]]
    interest_ = [r.interest_due_fen for r in rows]
    assert interest_[0] > interest_[-1]
    assert principal[0] < principal[-1]


@pytest.mark.parametrize(("day_count", "monthly"), [("ACT/365", 0.06 / 12),
                                                     ("30/360", 0.06 / 12)])
def test_the_annuity_rate_follows_the_day_count(day_count: str, monthly: float) -> None:
    expected = round(500_000 * monthly / (1 - (1 + monthly) ** -24))
    assert schedules.annuity_payment(500_000, 600, 24, day_count) == expected
    rows = _plan("equal_instalments", principal=500_000, rate=600, day_count=day_count,
                 term=24)
    assert abs(_level(rows) - expected) <= 30
    assert abs(rows[-1].total_fen - _level(rows)) <= 24


@pytest.mark.parametrize("case", [
    (30_000_000, 2_400, "ACT/360", 36, 1, date(2026, 11, 30)),
    (100_000, 100, "30/360", 7, 0, date(2028, 2, 29)),
    (12_345_678, 1_180, "ACT/365", 24, 3, date(2027, 1, 31)),
])
def test_the_last_instalment_is_within_a_fen_per_instalment(
        case: tuple[int, int, str, int, int, date]) -> None:
    principal, rate, day_count, term, grace, start = case
    rows = _plan("equal_instalments", principal=principal, rate=rate, day_count=day_count,
                 term=term, grace=grace, start=start)
    assert abs(rows[-1].total_fen - _level(rows)) <= term - grace
    assert sum(r.principal_due_fen for r in rows) == principal


def test_equal_instalments_with_grace_pay_interest_only_first() -> None:
    rows = _plan("equal_instalments", principal=1_200_000, rate=520, term=12, grace=3)
    assert [r.principal_due_fen for r in rows[:3]] == [0, 0, 0]
    assert [r.total_fen for r in rows[:3]] == [r.interest_due_fen for r in rows[:3]]
    assert all(r.interest_due_fen > 0 for r in rows[:3])
    payment = _level(rows)
    assert abs(payment - schedules.annuity_payment(1_200_000, 520, 9, "ACT/360")) <= 30
    assert all(r.principal_due_fen > 0 for r in rows[3:])
    assert sum(r.principal_due_fen for r in rows) == 1_200_000


def test_grace_as_long_as_the_term_leaves_one_installment() -> None:
    rows = _plan("equal_instalments", term=3, grace=5)
    assert [r.principal_due_fen for r in rows] == [0, 0, 2_000_000]


def test_zero_rate_equal_instalments_split_the_principal() -> None:
    rows = _plan("equal_instalments", principal=1_000, rate=0, term=3)
    assert [(r.principal_due_fen, r.interest_due_fen) for r in rows] == [
        (333, 0), (333, 0), (334, 0)]


# --- the plan's interest is what the ledger accrues ----------------------------------------------

def _accrued_daily(rows: list[Planned], principal: int, rate: int, day_count: str,
                   start: date) -> list[int]:
    """Accrue day by day as the daily job does (one day's weight at a time, carry kept), the
    principal falling by what each installment repays on its due date."""
    dues = {r.due_date: r for r in rows}
    periods, carry, booked, day = [], 0, 0, start
    while day < rows[-1].due_date:
        day += timedelta(days=1)
        fen, carry = interest.accrue(principal, rate, day_count, carry,
                                     interest.weight(day_count, day))
        booked += fen
        if day in dues:
            periods.append(booked)
            booked = 0
            principal -= dues[day].principal_due_fen
    return periods


@pytest.mark.parametrize("day_count", ["ACT/360", "ACT/365", "30/360"])
@pytest.mark.parametrize("repayment_type", TYPES)
@pytest.mark.parametrize("grace", [0, 2])
def test_a_loan_repaid_on_schedule_pays_the_planned_interest(repayment_type: str,
                                                             day_count: str,
                                                             grace: int) -> None:
    start = date(2027, 1, 31)
    rows = _plan(repayment_type, principal=3_333_333, rate=611, day_count=day_count, term=13,
                 grace=grace, start=start)
    daily = _accrued_daily(rows, 3_333_333, 611, day_count, start)
    assert len(daily) == len(rows)
    for planned, accrued in zip(rows, daily, strict=True):
        assert abs(planned.interest_due_fen - accrued) <= 1
    assert sum(r.principal_due_fen for r in rows) == 3_333_333


@pytest.mark.parametrize("repayment_type", TYPES)
def test_totals_add_up(repayment_type: str) -> None:
    rows = _plan(repayment_type, term=12)
    assert sum(r.principal_due_fen for r in rows) == 2_000_000
    assert sum(r.total_fen for r in rows) == 2_000_000 + sum(r.interest_due_fen for r in rows)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert all(a.due_date < b.due_date for a, b in pairwise(rows))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"repayment_type": "revolving_line"}, "no schedule"),
    ({"repayment_type": "balloon"}, "no schedule"),
    ({"term": 0}, "positive term"),
    ({"principal": 0}, "positive term"),
    ({"day_count": "ACT/ACT"}, "day count"),
])
def test_what_has_no_schedule_is_refused(kwargs: dict[str, Any], message: str) -> None:
    args = {"repayment_type": "equal_instalments", **kwargs}
    with pytest.raises(ValueError, match=message):
        _plan(args.pop("repayment_type"), **args)


# --- the crop calendar and installing a schedule (database) -------------------------------------

def test_calendar_for_reads_the_policy_in_force(session: Any) -> None:
    w.build(session)
    cal = schedules.calendar_for(session, "rice", w.COUNTY)
    assert cal == RICE
    assert schedules.calendar_for(session, "tea", w.COUNTY) is None
    assert schedules.calendar_for(session, "rice", "110101") is None


def test_no_policy_in_force_means_no_calendar(session: Any) -> None:
    assert schedules.calendar_for(session, "rice", w.COUNTY) is None


def _accepted(session: Any, world: w.World, product_type: str, **kwargs: Any) -> Any:
    farmer = w.farmer(session, world)
    application = w.approved(session, world, farmer, product=world.products[product_type],
                             **kwargs)
    return loans.accept(session, application, actor=_principal(farmer))


def _principal(farmer: Any) -> Any:
    from core.authz import Principal  # noqa: PLC0415

    return Principal(kind="farmer", id=farmer.id, public_id=farmer.public_id,
                     roles=frozenset({"farmer"}))


def test_install_writes_the_rows_and_the_maturity(app: Any, session: Any) -> None:
    app.config["NONGDAI_BUSINESS_DATE"] = "2027-03-01"
    world = w.build(session)
    loan = _accepted(session, world, "bullet_at_harvest", term_months=8)
    assert loan.maturity_date is None

    rows = schedules.install(session, loan, date(2027, 3, 1))
    session.commit()

    assert [(r.seq, r.due_date, r.principal_due_fen, r.interest_due_fen) for r in rows] == [
        (1, date(2027, 10, 31), 2_000_000, 58_966)]
    assert loan.maturity_date == date(2027, 10, 31)
    assert [r.id for r in loan.installments] == [r.id for r in rows]
    with pytest.raises(ValueError, match="already has a schedule"):
        schedules.install(session, loan, date(2027, 3, 1))


def test_install_uses_the_loans_terms(app: Any, session: Any) -> None:
    app.config["NONGDAI_BUSINESS_DATE"] = "2027-03-01"
    world = w.build(session)
    loan = _accepted(session, world, "equal_instalments", amount_fen=600_000, term_months=6)
    rows = schedules.install(session, loan, date(2027, 1, 31))
    assert [r.due_date for r in rows][:3] == [date(2027, 2, 28), date(2027, 3, 31),
                                              date(2027, 4, 30)]
    assert sum(r.principal_due_fen for r in rows) == 600_000
    assert loan.maturity_date == date(2027, 7, 31)


def test_a_line_has_no_schedule_to_install(app: Any, session: Any) -> None:
    app.config["NONGDAI_BUSINESS_DATE"] = "2027-03-01"
    world = w.build(session)
    loan = _accepted(session, world, "revolving_line", amount_fen=5_000_000, term_months=36)
    with pytest.raises(ValueError, match="no schedule"):
        schedules.install(session, loan, date(2027, 3, 1))
