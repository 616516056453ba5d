"""Manual reschedules (four eyes, a reason, audited) and what a reschedule does to a schedule:
paid installments kept, a partly paid one closed at what was paid, the rest replaced by a plan
of the outstanding principal to the new maturity; no money moves but a penalty waiver."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from lending.ledger import accounts
from lending.ledger.models import JournalTransaction
from lending.ledger.posting import Line, post
from lending.servicing import reschedule
from lending.servicing.models import Loan
from lending.servicing.relief_models import ReliefCase
from tests import factories as f
from tests.servicing import relief_seed as seed
from tests.servicing import world as w

API = w.API
NEW = date(2028, 8, 31)


@pytest.fixture
def world(app: Any, session: Any) -> w.World:
    app.config["NONGDAI_BUSINESS_DATE"] = seed.DAY.isoformat()
    return w.build(session)


def propose(client: Any, session: Any, staff: Any, loan: Loan, **body: Any) -> Any:
    body = {"new_maturity_date": NEW.isoformat(), "reason": "家中变故收入推迟", **body}
    return client.post(f"{API}/loans/{loan.public_id}/reschedules", json=body,
                       headers=f.auth_headers(session, staff))


def act(client: Any, session: Any, staff: Any, case_id: str, action: str) -> Any:
    return client.post(f"{API}/relief-cases/{case_id}/actions",
                       json={"action": action, "reason": "同意"},
                       headers=f.auth_headers(session, staff))


def repay(session: Any, loan: Loan, seq: int, *, principal: int, interest: int) -> None:
    """Book a repayment of ``seq`` (interest accrued first) and mark the installment."""
    if interest:
        post(session, kind="interest_accrual", reference=f"{loan.public_id}:{seq}",
             business_date=seed.DAY, actor="system", loan_id=loan.id,
             lines=[Line(accounts.INTEREST_RECEIVABLE, interest, loan.id),
                    Line(accounts.INTEREST_INCOME, -interest)])
    post(session, kind="repayment", reference=f"{loan.public_id}:{seq}", business_date=seed.DAY,
         actor="system", loan_id=loan.id,
         lines=[Line(accounts.REPAYMENT_CLEARING, principal + interest),
                Line(accounts.LOAN_PRINCIPAL, -principal, loan.id),
                Line(accounts.INTEREST_RECEIVABLE, -interest, loan.id)])
    row = seed.installments(session, loan)[seq - 1]
    row.principal_paid_fen, row.interest_paid_fen = principal, interest
    if (principal, interest) == (row.principal_due_fen, row.interest_due_fen):
        row.paid_on = seed.DAY
    session.flush()


def test_a_manual_reschedule_with_a_reason_and_four_eyes(app, session, client, world) -> None:
    loan = seed.active_loan(session, world, repayment_type="equal_instalments",
                            term_months=12, principal=1_200_000)
    first = seed.installments(session, loan)[0]
    repay(session, loan, 1, principal=first.principal_due_fen,
          interest=first.interest_due_fen)
    repay(session, loan, 2, principal=50_000, interest=0)
    session.commit()
    journals = session.scalar(sa.select(sa.func.count()).select_from(JournalTransaction))

    proposed = propose(client, session, world.reviewer, loan)
    assert proposed.status_code == 201, proposed.json
    case = proposed.json
    assert (case["kind"], case["status"], case["reason"]) == ("manual", "recommended",
                                                              "家中变故收入推迟")
    assert case["recommended_by"]["id"] == str(world.reviewer.public_id)
    assert case["proposal"]["new_maturity_date"] == NEW.isoformat()
    assert act(client, session, world.reviewer, case["id"], "approve").status_code == 403

    done = act(client, session, world.approver, case["id"], "approve")

    assert done.status_code == 200, done.json
    session.expire_all()
    rows = seed.installments(session, loan)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].paid_on == seed.DAY  # paid: kept
    assert (rows[1].principal_due_fen, rows[1].interest_due_fen, rows[1].paid_on) == (
        50_000, 0, seed.DAY)  # partly paid: closed at what was paid
    new = rows[2:]
    assert new[-1].due_date == NEW
    assert all(r.paid_on is None for r in new)
    assert all(seed.DAY < r.due_date <= NEW for r in new)
    assert len(new) == 13  # monthly from 1 September 2027 to 31 August 2028
    session.refresh(loan)
    assert sum(r.principal_due_fen for r in new) == loan.principal_outstanding_fen
    assert loan.maturity_date == NEW
    assert session.scalar(sa.select(sa.func.count()).select_from(JournalTransaction)) == journals
    seed.ledger_consistent(session, loan)
    actions = session.scalars(sa.select(AuditEvent.action).where(
        AuditEvent.object_id == case["id"]).order_by(AuditEvent.id)).all()
    assert actions == ["relief_case.propose", "relief_case.approve"]
    detail = client.get(f"{API}/relief-cases/{case['id']}",
                        headers=f.auth_headers(session, world.reviewer)).json
    assert len(detail["reschedule"]["old_schedule"]) == 12
    assert detail["reschedule"]["new_schedule"][-1]["due_date"] == NEW.isoformat()


def test_the_proposer_cannot_approve_and_reject_keeps_the_schedule(app, session, client,
                                                                   world) -> None:
    loan = seed.active_loan(session, world)
    case = propose(client, session, world.approver, loan).json

    own = act(client, session, world.approver, case["id"], "approve")
    rejected = act(client, session, world.second_approver, case["id"], "reject")

    assert (own.status_code, own.json["code"]) == (409, "four-eyes")
    assert rejected.status_code == 200
    session.expire_all()
    session.refresh(loan)
    assert loan.maturity_date == date(2027, 10, 31)
    assert [r.due_date for r in seed.installments(session, loan)] == [date(2027, 10, 31)]


def test_a_manual_reschedule_may_waive_penalties(app, session, client, world) -> None:
    loan = seed.active_loan(session, world, penalty_fen=3_000)
    case = propose(client, session, world.reviewer, loan, waive_penalties=True).json

    done = act(client, session, world.approver, case["id"], "approve")

    assert done.json["waived_fen"] == 3_000
    session.expire_all()
    session.refresh(loan)
    assert loan.penalty_outstanding_fen == 0
    seed.ledger_consistent(session, loan)


@pytest.mark.parametrize("body", [{"new_maturity_date": "2027-08-01"},
                                  {"new_maturity_date": "2031-01-01"},
                                  {"reason": ""}, {"reason": None}])
def test_a_proposal_needs_a_future_maturity_and_a_reason(app, session, client, world,
                                                         body) -> None:
    loan = seed.active_loan(session, world)

    refused = propose(client, session, world.reviewer, loan, **body)

    assert refused.status_code == 422
    assert session.scalars(sa.select(ReliefCase)).all() == []


def test_one_open_case_per_loan_and_only_active_term_loans(app, session, client,
                                                           world) -> None:
    loan = seed.active_loan(session, world)
    line = seed.active_loan(session, world, kind="line")
    assert propose(client, session, world.reviewer, loan).status_code == 201

    twice = propose(client, session, world.approver, loan)
    on_line = propose(client, session, world.reviewer, line)

    assert (twice.status_code, twice.json["code"]) == (409, "relief-case-open")
    assert (on_line.status_code, on_line.json["code"]) == (409, "loan-not-reschedulable")


def test_a_farmer_cannot_propose(app, session, client, world) -> None:
    loan = seed.active_loan(session, world)
    assert propose(client, session, loan.farmer, loan).status_code == 403


def test_the_poll_waits_while_a_manual_case_is_open(app, session, client, world,
                                                    registry) -> None:
    from tests.servicing.test_relief import cases, run_poll  # noqa: PLC0415

    loan = seed.active_loan(session, world)
    seed.plant_claim(registry, loan.farmer)
    case = propose(client, session, world.reviewer, loan).json
    run_poll(app, session)
    assert [c.kind for c in cases(session)] == ["manual"]

    act(client, session, world.approver, case["id"], "approve")
    run_poll(app, session, date(2027, 8, 2))

    assert [c.kind for c in cases(session)] == ["manual", "insurance"]


# --- the plan ---------------------------------------------------------------------------------

def plan_loan(repayment_type: str) -> Loan:
    return Loan(repayment_type=repayment_type, annual_rate_bp=480, day_count="ACT/360")


def test_monthly_dues_end_on_the_maturity() -> None:
    assert reschedule.monthly_dues(date(2027, 1, 31), date(2027, 4, 15)) == [
        date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 15)]
    assert reschedule.monthly_dues(date(2027, 1, 1), date(2027, 1, 20)) == [date(2027, 1, 20)]


@pytest.mark.parametrize("repayment_type", ["bullet_at_harvest", "equal_instalments",
                                            "interest_monthly_principal_at_maturity"])
def test_a_new_plan_repays_exactly_the_principal(repayment_type: str) -> None:
    rows = reschedule.new_plan(plan_loan(repayment_type), principal_fen=987_654,
                               start=date(2027, 8, 1), maturity=date(2028, 10, 31))
    assert sum(r.principal_due_fen for r in rows) == 987_654
    assert rows[-1].due_date == date(2028, 10, 31)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert all(r.interest_due_fen > 0 for r in rows)
    if repayment_type == "bullet_at_harvest":
        assert len(rows) == 1
    else:
        assert len(rows) == 15
