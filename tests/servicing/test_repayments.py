"""Repayments: allocation (penalty, interest, principal, overpayment), installments, early
repayment, signed channel notifications, branch records and refunds, over HTTP."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from core.db import db, utcnow
from core.errors import ValidationFailed
from lending.ledger.models import JournalTransaction
from lending.servicing import interest, repayments
from lending.servicing.models import Installment, Loan, Repayment
from tests import factories as f
from tests.servicing import world as w
from tests.servicing.active import (
    active_loan,
    assert_consistent,
    notification,
    notify,
    pin,
    sign,
)

TODAY = date(2027, 3, 1)
API = w.API


@pytest.fixture
def world(session: Any) -> w.World:
    built = w.build(session)
    session.commit()
    return built


@pytest.fixture(autouse=True)
def _today(app: Any) -> None:
    pin(app, TODAY)


def _interest(principal: int, rate_bp: int, days: int, day_count: str = "ACT/360") -> int:
    return interest.accrue(principal, rate_bp, day_count, 0, days)[0]


def _installments(session: Any, loan: Loan) -> list[Installment]:
    session.expire_all()
    return list(session.scalars(sa.select(Installment).where(Installment.loan_id == loan.id)
                                .order_by(Installment.seq)))


def _pay(client: Any, loan: Loan, amount: int, reference: str) -> Any:
    answer = notify(client, notification(loan, amount, reference))
    assert answer.status_code == 200, answer.json
    return answer.json


def test_interest_before_principal(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world)
    session.commit()
    accrued = _interest(1_000_000, 720, 59)  # 2 January to 1 March
    assert accrued == 11_800
    paid = _pay(client, loan, 20_000, "R-1")
    assert (paid["penalty_fen"], paid["interest_fen"], paid["principal_fen"],
            paid["overpaid_fen"]) == (0, 11_800, 8_200, 0)
    assert paid["business_date"] == "2027-03-01"
    assert paid["loan_id"] == str(loan.public_id)
    session.refresh(loan)
    assert loan.principal_outstanding_fen == 991_800
    assert loan.interest_outstanding_fen == 0
    assert loan.accrued_through == TODAY
    assert loan.status == "active"
    [only] = _installments(session, loan)
    assert (only.principal_paid_fen, only.interest_paid_fen, only.paid_on) == (8_200, 11_800, None)
    assert_consistent(session)


def test_penalty_first_then_interest_then_overdue_principal(client: Any, session: Any,
                                                              world: w.World) -> None:
    loan = active_loan(session, world, schedule=[(date(2027, 2, 1), 500_000, 3_000),
                                                 (date(2027, 10, 1), 500_000, 30_000)])
    session.commit()
    penalty = _interest(500_000, 1_080, 28)  # overdue from 2 February to 1 March
    assert penalty == 4_200
    paid = _pay(client, loan, 4_200 + 11_800 + 500_000, "R-2")
    assert (paid["penalty_fen"], paid["interest_fen"], paid["principal_fen"]) == (
        4_200, 11_800, 500_000)
    first, second = _installments(session, loan)
    assert (first.principal_paid_fen, first.interest_paid_fen, first.paid_on) == (
        500_000, 3_000, TODAY)
    assert (second.principal_paid_fen, second.interest_paid_fen, second.paid_on) == (
        0, 8_800, None)
    session.refresh(loan)
    assert loan.penalty_outstanding_fen == 0
    assert loan.principal_outstanding_fen == 500_000
    assert_consistent(session)


def test_small_payment_goes_to_penalty_only(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world, schedule=[(date(2027, 2, 1), 500_000, 3_000),
                                                 (date(2027, 10, 1), 500_000, 30_000)])
    session.commit()
    paid = _pay(client, loan, 3_000, "R-3")
    assert (paid["penalty_fen"], paid["interest_fen"], paid["principal_fen"]) == (3_000, 0, 0)
    session.refresh(loan)
    assert loan.penalty_outstanding_fen == 1_200
    assert loan.interest_outstanding_fen == 11_800
    assert_consistent(session)


def test_partial_payments_across_installments(client: Any, session: Any,
                                              world: w.World) -> None:
    schedule = [(date(2027, 1, 15), 300_000, 0), (date(2027, 2, 1), 300_000, 0),
                (date(2027, 5, 1), 400_000, 0)]
    loan = active_loan(session, world, schedule=schedule, rate_bp=0)
    session.commit()
    _pay(client, loan, 450_000, "R-4a")
    first, second, third = _installments(session, loan)
    assert (first.principal_paid_fen, first.paid_on) == (300_000, TODAY)
    assert (second.principal_paid_fen, second.paid_on) == (150_000, None)
    assert third.principal_paid_fen == 0
    paid = _pay(client, loan, 200_000, "R-4b")
    assert paid["penalty_fen"] == 0  # penalty rate is 150 % of a zero contract rate
    first, second, third = _installments(session, loan)
    assert (second.principal_paid_fen, second.paid_on) == (300_000, TODAY)
    assert third.principal_paid_fen == 50_000  # the current installment next
    assert_consistent(session)


def test_early_repayment_reduces_from_the_last_installment(client: Any, session: Any,
                                                           world: w.World) -> None:
    schedule = [(date(2027, m, 1), 250_000, 6_000) for m in (4, 5, 6, 7)]
    loan = active_loan(session, world, schedule=schedule)
    session.commit()
    paid = _pay(client, loan, 11_800 + 400_000, "R-5")
    assert (paid["interest_fen"], paid["principal_fen"]) == (11_800, 400_000)
    april, may, june, july = _installments(session, loan)
    assert april.principal_paid_fen == 250_000  # the current installment first
    assert (may.principal_paid_fen, june.principal_paid_fen, july.principal_paid_fen) == (
        0, 0, 150_000)  # then from the last one backwards
    assert april.interest_paid_fen == 6_000
    assert april.paid_on == TODAY
    assert_consistent(session)


def test_settlement_to_the_day_equals_the_quote(app: Any, client: Any, session: Any,
                                               world: w.World) -> None:
    loan = active_loan(session, world, schedule=[(date(2027, 2, 1), 500_000, 3_000),
                                                 (date(2027, 10, 1), 500_000, 30_000)])
    headers = f.auth_headers(session, loan.farmer)
    quote = client.get(f"{API}/loans/{loan.public_id}/quote?on=2027-03-10", headers=headers)
    assert quote.status_code == 200, quote.json
    days_interest = _interest(1_000_000, 720, 68)
    days_penalty = _interest(500_000, 1_080, 37)
    assert quote.json == {"loan_id": str(loan.public_id), "on": "2027-03-10",
                          "principal_fen": 1_000_000, "interest_fen": days_interest,
                          "penalty_fen": days_penalty, "overpaid_fen": 0,
                          "total_fen": 1_000_000 + days_interest + days_penalty}
    pin(app, "2027-03-10")
    paid = _pay(client, loan, quote.json["total_fen"], "R-6")
    assert paid["overpaid_fen"] == 0
    session.refresh(loan)
    assert (loan.status, loan.settled_on) == ("settled", date(2027, 3, 10))
    assert all(i.paid_on == date(2027, 3, 10) for i in _installments(session, loan))
    again = _pay(client, loan, quote.json["total_fen"], "R-6")  # a repeat still answers
    assert again == paid
    late = notify(client, notification(loan, 100, "R-6b"))
    assert late.status_code == 409
    assert late.json["code"] == "loan-not-active"
    assert_consistent(session)


def test_quote_rules(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world)
    other = w.farmer(session, world)
    staff = f.auth_headers(session, world.reviewer)
    url = f"{API}/loans/{loan.public_id}/quote"
    today = client.get(url, headers=staff)
    assert today.status_code == 200
    assert today.json["on"] == "2027-03-01"
    assert today.json["interest_fen"] == 11_800
    assert today.json["total_fen"] == 1_011_800
    past = client.get(f"{url}?on=2027-02-28", headers=staff)
    assert past.status_code == 422
    assert client.get(url, headers=f.auth_headers(session, other)).status_code == 404
    session.expire_all()
    assert session.get(Loan, loan.id).accrued_through is None  # a quote books nothing


def test_overpayment_and_refund(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world)
    session.commit()
    paid = _pay(client, loan, 1_011_800 + 5_000, "R-7")
    assert (paid["interest_fen"], paid["principal_fen"], paid["overpaid_fen"]) == (
        11_800, 1_000_000, 5_000)
    session.refresh(loan)
    assert (loan.status, loan.overpaid_fen) == ("settled", 5_000)
    staff = f.auth_headers(session, world.approver)
    url = f"{API}/loans/{loan.public_id}/refunds"
    refund = client.post(url, json={"amount_fen": 3_000, "reason": "多付退还"}, headers=staff)
    assert refund.status_code == 201, refund.json
    assert (refund.json["amount_fen"], refund.json["overpaid_fen"]) == (3_000, 2_000)
    assert session.scalar(sa.select(JournalTransaction.kind).where(
        JournalTransaction.public_id == uuid.UUID(refund.json["id"]))) == "refund"
    too_much = client.post(url, json={"amount_fen": 2_001, "reason": "x"}, headers=staff)
    assert too_much.status_code == 409
    assert too_much.json["code"] == "refund-exceeds-credit"
    farmer = f.auth_headers(session, loan.farmer)
    assert client.post(url, json={"amount_fen": 1, "reason": "x"},
                       headers=farmer).status_code == 403
    session.refresh(loan)
    assert loan.overpaid_fen == 2_000
    journal = session.scalars(sa.select(JournalTransaction).where(
        JournalTransaction.kind == "refund")).one()
    assert {(e.account, e.amount_fen) for e in journal.entries} == {
        ("overpayment", 3_000), ("repayment_clearing", -3_000)}
    assert_consistent(session)


def test_line_interest_then_drawn_principal(app: Any, client: Any, session: Any,
                                           world: w.World) -> None:
    loan = active_loan(session, world, kind="line", principal=300_000,
                       line_ends_on=date(2027, 2, 19))
    session.commit()
    accrued = _interest(300_000, 720, 59)
    paid = _pay(client, loan, 100_000, "L-1")
    # no installments, so no overdue principal and no penalty (as in the daily job)
    assert (paid["penalty_fen"], paid["interest_fen"], paid["principal_fen"]) == (
        0, accrued, 100_000 - accrued)
    rest = 300_000 - paid["principal_fen"]
    paid = _pay(client, loan, rest + 700, "L-2")
    assert (paid["principal_fen"], paid["overpaid_fen"]) == (rest, 700)
    session.refresh(loan)
    assert loan.status == "settled"  # repaid after the line's end
    assert_consistent(session)


def test_open_line_stays_active_when_repaid(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world, kind="line", principal=200_000,
                       line_ends_on=date(2029, 12, 31))
    session.commit()
    paid = _pay(client, loan, 300_000, "L-3")
    assert paid["penalty_fen"] == 0
    assert paid["principal_fen"] == 200_000
    session.refresh(loan)
    assert (loan.status, loan.principal_outstanding_fen) == ("active", 0)
    assert loan.overpaid_fen == 100_000 - paid["interest_fen"]
    assert_consistent(session)


@pytest.mark.parametrize("how", ["bad", "missing", "unknown-channel", "other-body",
                                 "not-json"])
def test_signature_refused(client: Any, session: Any, world: w.World, how: str) -> None:
    loan = active_loan(session, world)
    session.commit()
    body = notification(loan, 10_000, "S-1")
    signature = {"bad": "0" * 64, "missing": "", "unknown-channel": sign(body),
                 "other-body": sign(notification(loan, 10_001, "S-1")),
                 "not-json": sign(b"[1]")}[how]
    if how == "unknown-channel":
        body = notification(loan, 10_000, "S-1", channel="other-pay")
        signature = sign(body)
    if how == "not-json":
        body = b"[1]"
    headers = {"Content-Type": "application/json"}
    if signature:
        headers["X-Nongdai-Signature"] = signature
    answer = client.post(f"{API}/payments/notify", data=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json["code"] == "payment-signature-invalid"
    assert session.scalar(sa.select(sa.func.count()).select_from(Repayment)) == 0


def test_signature_of_exact_bytes(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world)
    session.commit()
    body = json.dumps({"paid_at": "2027-03-01T01:30:00Z", "amount_fen": 10_000,
                       "loan_id": str(loan.public_id), "reference": "S-2",
                       "channel": "demo-pay"}, indent=2).encode()
    answer = notify(client, body)
    assert answer.status_code == 200
    assert answer.json["received_at"].startswith("2027-03-01T01:30:00")


def test_repeat_notification_books_once(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world)
    session.commit()
    body = notification(loan, 30_000, "R-8")
    first, second = notify(client, body), notify(client, body)
    assert first.status_code == second.status_code == 200
    assert first.json == second.json
    # the same content, written another way (another offset for the same instant)
    third = notify(client, notification(loan, 30_000, "R-8", paid_at="2027-03-01T01:30:00Z"))
    assert third.status_code == 200
    assert third.json == first.json
    assert session.scalar(sa.select(sa.func.count()).select_from(Repayment)) == 1
    assert session.scalar(sa.select(sa.func.count()).select_from(JournalTransaction).where(
        JournalTransaction.kind == "repayment")) == 1
    reused = notify(client, notification(loan, 30_001, "R-8"))
    assert reused.status_code == 409
    assert reused.json["code"] == "reference-reused"
    other = active_loan(session, world)
    session.commit()
    elsewhere = notify(client, notification(other, 30_000, "R-8"))
    assert elsewhere.status_code == 409
    assert elsewhere.json["code"] == "reference-reused"
    assert_consistent(session)


def test_loan_not_active(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world)
    loan.status = "accepted"
    session.commit()
    answer = notify(client, notification(loan, 1_000, "N-1"))
    assert answer.status_code == 409
    assert answer.json["code"] == "loan-not-active"
    staff = f.auth_headers(session, world.reviewer)
    branch = client.post(f"{API}/loans/{loan.public_id}/repayments",
                         json={"reference": "B-1", "amount_fen": 1_000}, headers=staff)
    assert branch.status_code == 409
    unknown = notify(client, _unknown_loan_body())
    assert unknown.status_code == 404
    assert_consistent(session)


def _unknown_loan_body() -> bytes:
    return json.dumps({"channel": "demo-pay", "reference": "N-2",
                       "loan_id": "0190f3c2-0000-7000-8000-000000000000", "amount_fen": 1_000,
                       "paid_at": "2027-03-01T09:30:00+08:00"}).encode()


@pytest.mark.parametrize("amount", [0, -5, 1.5, "100"])
def test_amount_must_be_positive_fen(client: Any, session: Any, world: w.World,
                                     amount: Any) -> None:
    loan = active_loan(session, world)
    session.commit()
    body = json.dumps({"channel": "demo-pay", "reference": "A-1",
                       "loan_id": str(loan.public_id), "amount_fen": amount,
                       "paid_at": "2027-03-01T09:30:00+08:00"}).encode()
    assert notify(client, body).status_code == 422
    staff = f.auth_headers(session, world.reviewer)
    branch = client.post(f"{API}/loans/{loan.public_id}/repayments",
                         json={"reference": "B-2", "amount_fen": amount}, headers=staff)
    assert branch.status_code == 422


def test_amount_checked_by_the_service(session: Any, world: w.World) -> None:
    loan = active_loan(session, world)
    with pytest.raises(ValidationFailed):
        repayments.book(session, loan, channel="branch", reference="x", amount_fen=0,
                        received_at=utcnow(), fingerprint="f", actor="system")


def test_branch_repayment_by_staff(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world)
    staff = f.auth_headers(session, world.reviewer)
    url = f"{API}/loans/{loan.public_id}/repayments"
    body = {"reference": "B-3", "amount_fen": 50_000}
    created = client.post(url, json=body, headers={**staff, "Idempotency-Key": "k-1"})
    assert created.status_code == 201, created.json
    assert created.json["channel"] == "branch"
    assert created.json["interest_fen"] == 11_800
    replay = client.post(url, json=body, headers={**staff, "Idempotency-Key": "k-1"})
    assert replay.status_code == 201
    assert replay.json == created.json
    same_receipt = client.post(url, json=body, headers=staff)
    assert same_receipt.status_code == 201
    assert same_receipt.json == created.json
    farmer = f.auth_headers(session, loan.farmer)
    assert client.post(url, json={**body, "reference": "B-4"},
                       headers=farmer).status_code == 403
    row = session.scalars(sa.select(Repayment)).one()
    assert row.recorded_by_staff_id == world.reviewer.id
    assert_consistent(session)


def test_second_payment_same_day_accrues_nothing_more(client: Any, session: Any,
                                                      world: w.World) -> None:
    loan = active_loan(session, world)
    session.commit()
    _pay(client, loan, 5_000, "D-1")
    second = _pay(client, loan, 10_000, "D-2")
    assert (second["interest_fen"], second["principal_fen"]) == (6_800, 3_200)
    assert session.scalar(sa.select(sa.func.count()).select_from(JournalTransaction).where(
        JournalTransaction.kind == "accrual")) == 1
    assert_consistent(session)


@pytest.mark.parametrize("day_count", ["ACT/360", "ACT/365", "30/360"])
def test_accrue_to_day_by_day_equals_at_once(app: Any, session: Any, world: w.World,
                                             day_count: str) -> None:
    schedule = [(date(2027, 1, 20), 400_000, 0), (date(2027, 2, 27), 300_000, 0),
                (date(2027, 6, 1), 333_333, 0)]
    daily = active_loan(session, world, principal=1_033_333, rate_bp=735,
                        day_count=day_count, schedule=schedule)
    once = active_loan(session, world, principal=1_033_333, rate_bp=735,
                       day_count=day_count, schedule=schedule)
    day = date(2027, 1, 2)
    while day <= date(2027, 3, 31):
        repayments.accrue_to(session, daily, day)
        day = date.fromordinal(day.toordinal() + 1)
    repayments.accrue_to(session, once, date(2027, 3, 31))
    session.flush()
    for attr in ("interest_outstanding_fen", "penalty_outstanding_fen", "interest_carry",
                 "penalty_carry", "accrued_through"):
        assert getattr(daily, attr) == getattr(once, attr), attr
    assert once.penalty_outstanding_fen > 0
    session.commit()
    assert_consistent(session)


def test_relief_pauses_penalty(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world, schedule=[(date(2027, 2, 1), 500_000, 3_000),
                                                 (date(2027, 10, 1), 500_000, 30_000)])
    loan.relief_paused = True
    session.commit()
    paid = _pay(client, loan, 20_000, "P-1")
    assert (paid["penalty_fen"], paid["interest_fen"]) == (0, 11_800)
    assert_consistent(session)


def _count(session: Any, loan: Loan, client: Any, reference: str) -> int:
    statements: list[str] = []

    def on_execute(*args: Any) -> None:
        statements.append(args[2])

    engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        _pay(client, loan, 1_000, reference)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return sum(1 for s in statements if not s.lstrip().upper().startswith(
        ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")))


def test_statements_per_notification_do_not_grow(client: Any, session: Any,
                                                 world: w.World) -> None:
    short = active_loan(session, world, schedule=[(date(2027, 10, 1), 1_000_000, 0)])
    long = active_loan(session, world, schedule=[
        (date(2027, 1 + n, 25), 1_000_000 // 12 + (1 if n < 4 else 0), 0)
        for n in range(11)] + [(date(2028, 1, 1), 1_000_000 // 12, 0)])
    session.commit()
    few, many = _count(session, short, client, "C-1"), _count(session, long, client, "C-2")
    assert few == many
    assert few <= 16


# --- SQLite: read outside the write lock, book only on unchanged rows --------------------------

def _another_pays_between_read_and_write(monkeypatch: pytest.MonkeyPatch, client: Any,
                                         body: bytes) -> dict[str, Any]:
    """Make the next notification's read end, then let ``body`` book and commit (a whole other
    request) before its write begins: what another worker does in that gap."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL locks the loan row before it reads "
                    "(test_concurrency_pg covers it)")
    seen: dict[str, Any] = {"checks": []}
    end_read, unchanged = repayments.end_read, repayments._unchanged

    def end_read_then_another_pays(session: Any, *keep: Any) -> None:
        end_read(session, *keep)
        if "answer" not in seen:
            seen["answer"] = None  # the other request reads and writes without a gap
            other = threading.Thread(target=lambda: seen.update(answer=notify(client, body)))
            other.start()  # another worker: a thread of its own, with its own session
            other.join()

    def spied(*args: Any) -> bool:
        seen["checks"].append(unchanged(*args))
        return seen["checks"][-1]

    monkeypatch.setattr(repayments, "end_read", end_read_then_another_pays)
    monkeypatch.setattr(repayments, "_unchanged", spied)
    return seen


def test_payment_books_on_rows_changed_after_its_read(monkeypatch: pytest.MonkeyPatch,
                                                      client: Any, session: Any,
                                                      world: w.World) -> None:
    loan = active_loan(session, world)
    session.commit()
    seen = _another_pays_between_read_and_write(monkeypatch, client,
                                                notification(loan, 20_000, "GAP-1"))
    late = _pay(client, loan, 5_000, "GAP-2")
    first = seen["answer"]
    assert first.status_code == 200
    # the first paid all of the interest: read before it, the second would have paid it again
    assert (first.json["interest_fen"], first.json["principal_fen"]) == (11_800, 8_200)
    assert (late["interest_fen"], late["principal_fen"]) == (0, 5_000)
    assert seen["checks"] == [True, False]  # the other's own write, then this one's: changed
    session.refresh(loan)
    assert loan.principal_outstanding_fen == 1_000_000 - 8_200 - 5_000
    assert loan.interest_outstanding_fen == 0
    assert_consistent(session)


def test_same_notification_in_the_gap_is_answered_as_a_repeat(monkeypatch: pytest.MonkeyPatch,
                                                              client: Any, session: Any,
                                                              world: w.World) -> None:
    loan = active_loan(session, world)
    session.commit()
    body = notification(loan, 20_000, "GAP-3")
    seen = _another_pays_between_read_and_write(monkeypatch, client, body)
    again = notify(client, body)
    assert seen["answer"].status_code == again.status_code == 200
    assert again.json == seen["answer"].json
    assert session.scalar(sa.select(sa.func.count()).select_from(Repayment)) == 1
    assert_consistent(session)


def test_payment_books_at_once_on_unchanged_rows(monkeypatch: pytest.MonkeyPatch,
                                                 client: Any, session: Any,
                                                 world: w.World) -> None:
    loan, other = active_loan(session, world), active_loan(session, world)
    session.commit()
    # another loan's payment in the gap changes nothing this payment read
    seen = _another_pays_between_read_and_write(monkeypatch, client,
                                                notification(other, 20_000, "GAP-4"))
    paid = _pay(client, loan, 20_000, "GAP-5")
    assert seen["answer"].status_code == 200
    assert seen["checks"] == [True, True]
    assert (paid["interest_fen"], paid["principal_fen"]) == (11_800, 8_200)
    assert_consistent(session)
