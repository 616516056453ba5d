"""Settlement quotes: interest and penalty recomputed to the day, nothing booked."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from lending.servicing import interest, quotes
from tests import factories as f
from tests.servicing import world as w
from tests.servicing.active import active_loan, assert_consistent, notification, notify, pin

API = w.API


@pytest.fixture
def world(session: Any) -> w.World:
    built = w.build(session)
    session.commit()
    return built


@pytest.fixture(autouse=True)
def _today(app: Any) -> None:
    pin(app, "2027-03-01")


def _fen(principal: int, rate_bp: int, days: int) -> int:
    return interest.accrue(principal, rate_bp, "ACT/360", 0, days)[0]


def test_future_quote_counts_penalty_once_an_installment_falls_due(
        client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world, schedule=[(date(2027, 4, 1), 500_000, 9_000),
                                                 (date(2027, 10, 1), 500_000, 18_000)])
    headers = f.auth_headers(session, world.approver)
    answer = client.get(f"{API}/loans/{loan.public_id}/quote?on=2027-04-11", headers=headers)
    assert answer.status_code == 200
    interest_fen = _fen(1_000_000, 720, 100)  # 2 January to 11 April
    penalty = _fen(500_000, 1_080, 10)  # 2 April to 11 April
    assert (answer.json["interest_fen"], answer.json["penalty_fen"]) == (interest_fen, penalty)
    assert answer.json["total_fen"] == 1_000_000 + interest_fen + penalty


def test_quote_adds_booked_balances_and_shows_credit(client: Any, session: Any,
                                                    world: w.World) -> None:
    loan = active_loan(session, world)
    session.commit()
    assert notify(client, notification(loan, 5_000, "Q-1")).status_code == 200
    headers = f.auth_headers(session, loan.farmer)
    answer = client.get(f"{API}/loans/{loan.public_id}/quote?on=2027-03-31", headers=headers)
    booked_left = 11_800 - 5_000
    assert answer.json["interest_fen"] == booked_left + _fen(1_000_000, 720, 30)
    assert answer.json["overpaid_fen"] == 0


def test_settled_loan_quotes_zero_with_its_credit(client: Any, session: Any,
                                                 world: w.World) -> None:
    loan = active_loan(session, world)
    session.commit()
    assert notify(client, notification(loan, 1_012_000, "Q-2")).status_code == 200
    headers = f.auth_headers(session, loan.farmer)
    answer = client.get(f"{API}/loans/{loan.public_id}/quote", headers=headers)
    assert answer.status_code == 200
    assert (answer.json["total_fen"], answer.json["overpaid_fen"]) == (0, 200)
    assert_consistent(session)


def test_quote_refused(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world)
    loan.status = "accepted"
    session.commit()
    url = f"{API}/loans/{loan.public_id}/quote"
    headers = f.auth_headers(session, loan.farmer)
    accepted = client.get(url, headers=headers)
    assert accepted.status_code == 409
    assert accepted.json["code"] == "loan-not-active"
    assert client.get(url).status_code == 401
    coordinator = f.auth_headers(session, world.coordinator)
    assert client.get(url, headers=coordinator).status_code == 403
    assert client.get(f"{url}?on=not-a-date", headers=headers).status_code == 422


def test_charges_match_what_accrual_books(session: Any, world: w.World) -> None:
    loan = active_loan(session, world, schedule=[(date(2027, 2, 10), 600_000, 0),
                                                 (date(2027, 8, 1), 400_000, 0)])
    projected = quotes.charges(loan, quotes.open_installments(session, loan), date(2027, 5, 9))
    from lending.servicing import repayments  # noqa: PLC0415

    repayments.accrue_to(session, loan, date(2027, 5, 9))
    session.flush()
    assert (loan.interest_outstanding_fen, loan.penalty_outstanding_fen) == (
        projected.interest_fen, projected.penalty_fen)
    assert (loan.interest_carry, loan.penalty_carry) == (projected.interest_carry,
                                                         projected.penalty_carry)
    session.commit()
    assert_consistent(session)


def test_an_overdue_line_draw_accrues_the_penalty_the_daily_job_books(
        app: Any, session: Any, world: w.World) -> None:
    from core.authz import Principal  # noqa: PLC0415
    from lending.servicing import daily, lines, loans, repayments  # noqa: PLC0415

    def line_with_a_draw() -> Any:
        farmer = w.farmer(session, world)
        who = Principal(kind="farmer", id=farmer.id, public_id=farmer.public_id,
                        roles=frozenset({"farmer"}))
        application = w.approved(session, world, farmer, product=world.line,
                                 amount_fen=500_000, term_months=36)
        loan = loans.accept(session, application, actor=who)
        lines.draw(session, loan, who, amount_fen=300_000)
        session.commit()
        return loan

    by_repayment, by_job = line_with_a_draw(), line_with_a_draw()
    [due] = [i.due_date for i in quotes.open_installments(session, by_repayment)]
    day = date.fromordinal(due.toordinal() + 10)
    pin(app, day.isoformat())
    repayments.accrue_to(session, by_repayment, day)
    session.commit()
    daily.run_day(session, day)  # skips the loan accrued to the day already
    session.commit()

    session.expire_all()
    penalty = interest.accrue(300_000, by_repayment.penalty_rate_bp, by_repayment.day_count, 0,
                              interest.days_weight(by_repayment.day_count, due, day))[0]
    assert by_repayment.penalty_outstanding_fen == penalty > 0  # the draw's 10 days overdue
    assert (by_repayment.interest_outstanding_fen, by_repayment.penalty_outstanding_fen,
            by_repayment.interest_carry, by_repayment.penalty_carry) == (
        by_job.interest_outstanding_fen, by_job.penalty_outstanding_fen,
        by_job.interest_carry, by_job.penalty_carry)
    assert_consistent(session)
