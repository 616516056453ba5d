"""Relief tests' starting points: active loans seeded straight through the models and the
ledger (disbursement D loan_principal / C payout_clearing, penalties D penalty_receivable /
C penalty_income, the schedule from ``schedules.plan_for``), the farmer's insurance consent,
claims planted in the reference registry, and the ledger checks every test ends with."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import requests
import sqlalchemy as sa

from core.db import utcnow
from core.people.models import Consent, Farmer
from lending.ledger import accounts
from lending.ledger.models import JournalEntry
from lending.ledger.posting import Line, loan_balances, post
from lending.servicing import schedules
from lending.servicing.models import Installment, Loan
from tests.servicing import world as w

DAY = date(2027, 8, 1)  # the business date of most tests: after a July drought
DISBURSED = date(2027, 3, 1)


def active_loan(session: Any, world: w.World, *, farmer: Farmer | None = None,
                principal: int = 1_000_000, repayment_type: str = "bullet_at_harvest",
                disbursed_on: date = DISBURSED, term_months: int = 8, crop: str = "rice",
                penalty_fen: int = 0, consent: bool = True, kind: str = "term") -> Loan:
    """A loan disbursed on ``disbursed_on`` with its schedule, and ``penalty_fen`` accrued."""
    who = farmer or w.farmer(session, world)
    product = world.line if kind == "line" else world.products[repayment_type]
    application = w.approved(session, world, who, product=product, amount_fen=principal,
                             term_months=term_months, crop=crop)
    loan = Loan(application_id=application.id, farmer_id=who.id, farmer=who,
                village_id=who.village_id, product_id=product.id, kind=kind,
                repayment_type=product.repayment_type, crop=crop, county_code=w.COUNTY,
                terms=application.terms, principal_fen=principal, term_months=term_months,
                annual_rate_bp=product.annual_rate_bp,
                penalty_rate_bp=product.annual_rate_bp * 3 // 2, day_count=product.day_count,
                status="active", disbursed_on=disbursed_on,
                limit_fen=principal if kind == "line" else None)
    session.add(loan)
    session.flush()
    post(session, kind="disbursement", reference=f"{loan.public_id}:1",
         business_date=disbursed_on, actor="system", loan_id=loan.id,
         lines=[Line(accounts.LOAN_PRINCIPAL, principal, loan.id),
                Line(accounts.PAYOUT_CLEARING, -principal)])
    if kind == "term":
        schedules.install(session, loan, disbursed_on)
    if penalty_fen:
        post(session, kind="penalty_accrual", reference=f"{loan.public_id}:penalty",
             business_date=disbursed_on, actor="system", loan_id=loan.id,
             lines=[Line(accounts.PENALTY_RECEIVABLE, penalty_fen, loan.id),
                    Line(accounts.PENALTY_INCOME, -penalty_fen)])
    if consent and farmer is None:
        grant(session, who)
    session.flush()
    return loan


def grant(session: Any, farmer: Farmer, *, purpose: str = "insurance", days: int = 365,
          revoked: bool = False) -> Consent:
    now = utcnow()
    consent = Consent(farmer=farmer, purpose=purpose, granted_at=now - timedelta(days=1),
                      expires_at=now + timedelta(days=days), channel="coordinator",
                      recorded_by="staff:test", revoked_at=now if revoked else None)
    session.add(consent)
    session.flush()
    return consent


def plant_claim(registry: Any, farmer: Farmer, *, crop: str = "rice", event: str = "drought",
                event_date: date = date(2027, 7, 15), loss_ratio: str = "0.60",
                status: str = "assessed") -> dict[str, Any]:
    """A claim on the farmer's ``crop`` policy (one is made if they have none)."""
    response = requests.post(
        f"{registry.url}/_control/holders/{farmer.id_number_hash}/claims", timeout=10,
        json={"crop": crop, "event": event, "event_date": event_date.isoformat(),
              "loss_ratio": loss_ratio, "status": status})
    assert response.status_code == 201, response.text
    return response.json()


def uninsured(registry: Any, farmer: Farmer) -> None:
    registry.plant(farmer.id_number_hash, insurance={"policies": [], "claims": []})


def ledger_consistent(session: Any, *loans: Loan) -> None:
    """Every journal balances and each loan's cached balances equal its ledger accounts."""
    unbalanced = session.execute(
        sa.select(JournalEntry.journal_id).group_by(JournalEntry.journal_id)
        .having(sa.func.sum(JournalEntry.amount_fen) != 0)).all()
    assert unbalanced == []
    for loan in loans:
        session.refresh(loan)
        ledger = loan_balances(session, loan.id)
        for account, (column, sign) in accounts.LOAN_COLUMNS.items():
            assert getattr(loan, column) == sign * ledger[account], account


def installments(session: Any, loan: Loan) -> list[Installment]:
    return list(session.scalars(sa.select(Installment).where(Installment.loan_id == loan.id)
                                .order_by(Installment.seq)))
