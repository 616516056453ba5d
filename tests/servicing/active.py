"""Active loans for the repayment tests, built without the acceptance and disbursement code:
a Loan row from an approved application, its disbursement booked straight through the ledger
(D loan_principal / C payout_clearing), its installments written as rows. Also the checks every
repayment test ends with: the ledger balanced, the loans' cached balances equal to it."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date
from typing import Any

import sqlalchemy as sa

from lending.ledger import accounts
from lending.ledger.models import JournalEntry
from lending.ledger.posting import Line, loan_balances, post
from lending.servicing.models import Installment, Loan
from tests.servicing import world as w

SECRET = "demo-channel-secret"
CHANNEL = "demo-pay"


def active_loan(session: Any, world: w.World, *, principal: int = 1_000_000,
                rate_bp: int = 720, day_count: str = "ACT/360",
                disbursed_on: date = date(2027, 1, 1),
                schedule: list[tuple[date, int, int]] | None = None,
                kind: str = "term", line_ends_on: date | None = None,
                penalty_pct: int = 150, accepted: bool = False,
                who: Any = None) -> Loan:
    """A loan disbursed on ``disbursed_on`` for ``principal``, with ``schedule`` as
    ``(due date, principal due, interest due)`` rows (default: a bullet on 1 October 2027);
    ``accepted``: not disbursed yet (no journal, no installments)."""
    farmer = who or w.farmer(session, world)
    product = world.line if kind == "line" else world.spring
    application = w.approved(session, world, farmer, product=product, amount_fen=principal)
    loan = Loan(application_id=application.id, farmer_id=farmer.id, village_id=farmer.village_id,
                product_id=product.id, kind=kind, repayment_type=product.repayment_type,
                crop="rice", county_code=w.COUNTY, terms=application.terms,
                principal_fen=principal, term_months=8, annual_rate_bp=rate_bp,
                penalty_rate_bp=rate_bp * penalty_pct // 100, day_count=day_count,
                status="accepted" if accepted else "active",
                disbursed_on=None if accepted else disbursed_on,
                limit_fen=principal if kind == "line" else None, line_ends_on=line_ends_on)
    session.add(loan)
    session.flush()
    if accepted:
        return loan
    post(session, kind="disbursement", reference=f"{loan.public_id}:1",
         business_date=disbursed_on, actor="system", loan_id=loan.id,
         lines=[Line(accounts.LOAN_PRINCIPAL, principal, loan.id),
                Line(accounts.PAYOUT_CLEARING, -principal)])
    if kind == "term":
        rows = schedule or [(date(2027, 10, 1), principal, 50_000)]
        for seq, (due, principal_due, interest_due) in enumerate(rows, start=1):
            session.add(Installment(loan_id=loan.id, seq=seq, due_date=due,
                                    principal_due_fen=principal_due,
                                    interest_due_fen=interest_due))
        loan.maturity_date = rows[-1][0]
    session.flush()
    return loan


def pin(app: Any, day: date | str) -> None:
    app.config["NONGDAI_BUSINESS_DATE"] = str(day)


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def notification(loan: Loan | Any, amount_fen: int, reference: str, *,
                 paid_at: str = "2027-03-01T09:30:00+08:00",
                 channel: str = CHANNEL) -> bytes:
    return json.dumps({"channel": channel, "reference": reference,
                       "loan_id": str(getattr(loan, "public_id", loan)), "amount_fen": amount_fen,
                       "paid_at": paid_at}).encode()


def notify(client: Any, body: bytes, signature: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    headers["X-Nongdai-Signature"] = sign(body) if signature is None else signature
    return client.post(f"{w.API}/payments/notify", data=body, headers=headers)


def assert_consistent(session: Any) -> None:
    """The whole ledger sums to zero and every loan's cached balances equal its entries."""
    session.expire_all()
    total = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(JournalEntry.amount_fen), 0)))
    assert total == 0
    for loan in session.scalars(sa.select(Loan)):
        ledger = loan_balances(session, loan.id)
        assert loan.principal_outstanding_fen == ledger[accounts.LOAN_PRINCIPAL]
        assert loan.interest_outstanding_fen == ledger[accounts.INTEREST_RECEIVABLE]
        assert loan.penalty_outstanding_fen == ledger[accounts.PENALTY_RECEIVABLE]
        assert loan.overpaid_fen == -ledger[accounts.OVERPAYMENT]
