"""The revolving household line: draws from the phone within the limit and the line's state,
booked like a disbursement; repayments that open room again; the annual review (renew, lower,
freeze, unfreeze) and the job that freezes a line whose review lapsed."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from threading import Barrier
from typing import Any

import pytest
import sqlalchemy as sa

from core import jobs
from core.audit import AuditEvent
from core.authz import Principal
from core.db import utcnow
from core.errors import Forbidden, NotFound, ValidationFailed
from core.outbox import OutboxMessage
from core.people.models import Farmer, Staff
from lending.ledger import accounts
from lending.ledger.models import JournalEntry, JournalTransaction
from lending.servicing import lines, loans, payouts, repayments
from lending.servicing.line_models import LineReview
from lending.servicing.models import Disbursement, Installment, Loan, PayoutInstruction
from tests import factories as f
from tests.core.test_people_helpers import assert_problem, creating
from tests.servicing import world as w
from tests.servicing.active import active_loan, assert_consistent, pin

START = date(2027, 3, 1)
LIMIT = 5_000_000  # 50,000 yuan


@pytest.fixture
def world(app: Any, session: Any) -> w.World:
    pin(app, START)
    built = w.build(session)
    session.commit()
    return built


def farmer_principal(farmer: Farmer) -> Principal:
    return Principal(kind="farmer", id=farmer.id, public_id=farmer.public_id,
                     roles=frozenset({"farmer"}))


def staff_principal(staff: Staff) -> Principal:
    return Principal(kind="staff", id=staff.id, public_id=staff.public_id,
                     roles=staff.role_set)


def open_line(session: Any, world: w.World, *, limit: int = LIMIT,
              term_months: int = 36) -> Loan:
    """A line the farmer accepted on START (through the acceptance service)."""
    farmer = w.farmer(session, world)
    application = w.approved(session, world, farmer, product=world.line, amount_fen=limit,
                             term_months=term_months)
    loan = loans.accept(session, application, actor=farmer_principal(farmer))
    session.commit()
    return loan


def draws_url(loan: Loan) -> str:
    return f"{w.API}/loans/{loan.public_id}/draws"


def reviews_url(loan: Loan) -> str:
    return f"{w.API}/loans/{loan.public_id}/line-reviews"


def draw(client: Any, session: Any, loan: Loan, amount: int, **headers: str) -> Any:
    send = creating(f.auth_headers(session, loan.farmer))
    return client.post(draws_url(loan), json={"amount_fen": amount}, headers={**send, **headers})


def act(client: Any, session: Any, loan: Loan, staff: Staff, action: str,
        **body: Any) -> Any:
    return client.post(reviews_url(loan), json={"action": action, "reason": "年度审查", **body},
                       headers=creating(f.auth_headers(session, staff)))


def repay(session: Any, loan: Loan, amount: int) -> None:
    """A payment through the repayment service (as the channel notification books it)."""
    loan = session.get(Loan, loan.id)
    repayments.book(session, loan, channel="demo-pay", reference=f"R-{uuid.uuid4().hex[:12]}",
                    amount_fen=amount, received_at=utcnow(), fingerprint="x" * 64,
                    actor="system")
    session.commit()


def fresh(session: Any, loan: Loan) -> Loan:
    session.expire_all()
    return session.get_one(Loan, loan.id)


def entries(session: Any, journal_id: int) -> dict[tuple[str, int | None], int]:
    rows = session.execute(sa.select(JournalEntry.account, JournalEntry.loan_id,
                                     JournalEntry.amount_fen)
                           .where(JournalEntry.journal_id == journal_id)).all()
    return {(account, loan_id): amount for account, loan_id, amount in rows}


# --- drawing ----------------------------------------------------------------------------------

def test_a_line_is_active_at_once_with_its_limit_dates_and_nothing_owed(
        session: Any, world: w.World) -> None:
    loan = open_line(session, world)

    assert (loan.kind, loan.status, loan.limit_fen) == ("line", "active", LIMIT)
    assert (loan.line_ends_on, loan.next_review_on) == (date(2030, 3, 1), date(2028, 3, 1))
    assert lines.state(loan, START) == {
        "limit_fen": LIMIT, "drawn_fen": 0, "available_fen": LIMIT, "frozen": False,
        "ends_on": date(2030, 3, 1), "next_review_on": date(2028, 3, 1)}


def test_a_draw_within_the_limit_is_booked_paid_out_and_due_in_a_year(
        client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)

    response = draw(client, session, loan, 1_200_000)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["seq"], body["amount_fen"], body["status"]) == (1, 1_200_000, "authorised")
    assert (body["drawn_on"], body["due_date"]) == ("2027-03-01", "2028-03-01")
    assert body["payout_status"] == "pending"
    assert body["line"]["drawn_fen"] == 1_200_000
    assert body["line"]["available_fen"] == LIMIT - 1_200_000
    row = session.scalars(sa.select(Disbursement).where(Disbursement.loan_id == loan.id)).one()
    assert row.initiated_by == f"farmer:{loan.farmer.public_id}"
    assert row.journal_id is not None
    assert entries(session, row.journal_id) == {
        (accounts.LOAN_PRINCIPAL, loan.id): 1_200_000, (accounts.PAYOUT_CLEARING, None): -1_200_000}
    payout = session.scalars(sa.select(PayoutInstruction)
                             .where(PayoutInstruction.disbursement_id == row.id)).one()
    assert payout.amount_fen == 1_200_000
    [installment] = session.scalars(sa.select(Installment).where(Installment.loan_id == loan.id))
    assert (installment.seq, installment.principal_due_fen, installment.interest_due_fen,
            installment.due_date) == (1, 1_200_000, 0, date(2028, 3, 1))
    assert fresh(session, loan).status == "active"
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "line.draw")) == 1
    assert_consistent(session)


def test_draws_count_up_and_are_due_no_later_than_the_line_ends(
        app: Any, client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world, term_months=18)
    assert draw(client, session, loan, 100_000).status_code == 201
    pin(app, "2027-12-15")

    second = draw(client, session, loan, 200_000).get_json()

    assert (second["seq"], second["due_date"]) == (2, "2028-09-01")  # the line's end
    listed = client.get(draws_url(loan), headers=f.auth_headers(session, loan.farmer))
    assert listed.status_code == 200
    assert [(d["seq"], d["amount_fen"], d["due_date"]) for d in listed.get_json()["items"]] == [
        (1, 100_000, "2028-03-01"), (2, 200_000, "2028-09-01")]
    staff = client.get(draws_url(loan), headers=f.auth_headers(session, world.reviewer))
    assert len(staff.get_json()["items"]) == 2


def test_a_draw_above_what_is_available_is_refused(
        client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    assert draw(client, session, loan, LIMIT - 100).status_code == 201

    assert_problem(draw(client, session, loan, 101), 409, "limit-exceeded")
    assert draw(client, session, loan, 100).status_code == 201  # exactly what is left

    assert_problem(draw(client, session, loan, 1), 409, "limit-exceeded")
    assert fresh(session, loan).principal_outstanding_fen == LIMIT
    assert_consistent(session)


@pytest.mark.parametrize("amount", [0, -5, 1.5, "100"])
def test_a_draw_must_be_a_positive_whole_number_of_fen(
        client: Any, session: Any, world: w.World, amount: Any) -> None:
    loan = open_line(session, world)

    assert_problem(draw(client, session, loan, amount), 422, "validation-failed")
    with pytest.raises(ValidationFailed):
        lines.draw(session, fresh(session, loan), farmer_principal(loan.farmer), amount_fen=0)


def test_a_retried_draw_with_the_same_key_pays_out_once(
        client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    headers = creating(f.auth_headers(session, loan.farmer))

    first = client.post(draws_url(loan), json={"amount_fen": 300_000}, headers=headers)
    again = client.post(draws_url(loan), json={"amount_fen": 300_000}, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert session.scalar(sa.select(sa.func.count()).select_from(Disbursement)) == 1
    assert fresh(session, loan).principal_outstanding_fen == 300_000


def test_another_farmers_line_is_not_found(client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    stranger = w.farmer(session, world)
    headers = f.auth_headers(session, stranger)

    assert_problem(client.post(draws_url(loan), json={"amount_fen": 100},
                               headers=creating(headers)), 404, "not-found")
    assert_problem(client.get(draws_url(loan), headers=headers), 404, "not-found")
    with pytest.raises(NotFound):
        lines.draw(session, fresh(session, loan), farmer_principal(stranger), amount_fen=100)
    assert session.scalar(sa.select(sa.func.count()).select_from(Disbursement)) == 0


def test_a_term_loan_cannot_be_drawn(client: Any, session: Any, world: w.World) -> None:
    loan = active_loan(session, world)
    session.commit()

    assert_problem(draw(client, session, loan, 100), 409, "not-a-line")


def test_an_ended_line_takes_no_draw_and_no_review(
        app: Any, client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world, term_months=12)
    pin(app, "2028-02-29")
    assert draw(client, session, loan, 100).status_code == 201  # its last day but one
    pin(app, "2028-03-01")

    assert_problem(draw(client, session, loan, 100), 409, "line-ended")
    assert_problem(act(client, session, loan, world.approver, "freeze"), 409, "line-ended")


# --- repaying ---------------------------------------------------------------------------------

def test_repaying_opens_room_to_draw_again(
        app: Any, client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world, limit=1_000_000)
    assert draw(client, session, loan, 1_000_000).status_code == 201
    assert_problem(draw(client, session, loan, 1), 409, "limit-exceeded")
    pin(app, "2027-04-01")  # 31 days of interest on the drawn balance: 1,000,000 x 4.8% / 360

    repay(session, loan, 404_133)

    line = fresh(session, loan)
    assert line.interest_outstanding_fen == 0
    assert line.principal_outstanding_fen == 600_000  # 4,133 paid the interest first
    assert lines.available(line) == 400_000
    assert draw(client, session, loan, 400_000).status_code == 201
    assert_problem(draw(client, session, loan, 1), 409, "limit-exceeded")
    assert fresh(session, loan).status == "active"
    assert_consistent(session)


def test_repayments_pay_the_oldest_draw_first(
        app: Any, client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    draw(client, session, loan, 300_000)
    pin(app, "2027-06-01")
    draw(client, session, loan, 200_000)

    repay(session, loan, 600_000)  # interest, both draws, the rest overpaid

    paid = {i.seq: (i.principal_paid_fen, i.paid_on) for i in session.scalars(
        sa.select(Installment).where(Installment.loan_id == loan.id))}
    assert paid == {1: (300_000, date(2027, 6, 1)), 2: (200_000, date(2027, 6, 1))}


# --- reviews ----------------------------------------------------------------------------------

def test_a_frozen_line_takes_no_draw_but_is_still_repaid_and_unfreezes(
        client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    draw(client, session, loan, 500_000)

    frozen = act(client, session, loan, world.approver, "freeze")

    assert frozen.status_code == 201, frozen.get_json()
    assert (frozen.get_json()["frozen"], frozen.get_json()["line"]["available_fen"]) == (True, 0)
    assert_problem(draw(client, session, loan, 100), 409, "line-frozen")
    assert_problem(act(client, session, loan, world.approver, "freeze"), 409,
                   "line-already-frozen")
    repay(session, loan, 100_000)  # what is owed goes on as before
    assert fresh(session, loan).principal_outstanding_fen == 400_000

    assert act(client, session, loan, world.approver, "unfreeze").status_code == 201

    assert draw(client, session, loan, 100).status_code == 201
    assert_problem(act(client, session, loan, world.approver, "unfreeze"), 409,
                   "line-not-frozen")
    assert_consistent(session)


def test_a_limit_lowered_below_the_drawn_balance_changes_nothing_owed(
        client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    draw(client, session, loan, 1_500_000)

    lowered = act(client, session, loan, world.approver, "lower", limit_fen=1_000_000)

    assert lowered.status_code == 201, lowered.get_json()
    assert lowered.get_json()["line"] == {
        "limit_fen": 1_000_000, "drawn_fen": 1_500_000, "available_fen": 0, "frozen": False,
        "ends_on": "2030-03-01", "next_review_on": "2028-03-01"}
    line = fresh(session, loan)
    assert (line.principal_outstanding_fen, line.limit_fen) == (1_500_000, 1_000_000)
    assert_problem(draw(client, session, loan, 1), 409, "limit-exceeded")
    repay(session, loan, 600_000)  # the same business day: no interest yet
    assert draw(client, session, loan, 100_000).status_code == 201
    assert_problem(draw(client, session, loan, 1), 409, "limit-exceeded")
    assert_problem(act(client, session, loan, world.approver, "lower", limit_fen=1_000_000),
                   422, "validation-failed")  # not lower
    assert_problem(act(client, session, loan, world.approver, "lower"), 422,
                   "validation-failed")
    assert_consistent(session)


def test_renewing_moves_the_review_a_year_on_and_may_raise_the_limit(
        client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    maximum = world.line.max_amount_fen

    assert_problem(act(client, session, loan, world.approver, "renew", limit_fen=maximum + 1),
                   422, "validation-failed")
    renewed = act(client, session, loan, world.approver, "renew", limit_fen=maximum)

    assert renewed.status_code == 201, renewed.get_json()
    body = renewed.get_json()
    assert (body["old_limit_fen"], body["new_limit_fen"]) == (LIMIT, maximum)
    assert (body["old_review_on"], body["new_review_on"]) == ("2028-03-01", "2029-03-01")
    act(client, session, loan, world.approver, "renew")
    third = act(client, session, loan, world.approver, "renew").get_json()
    assert third["new_review_on"] == "2030-03-01"  # never past the line's end
    assert third["new_limit_fen"] == maximum
    assert fresh(session, loan).line_ends_on == date(2030, 3, 1)  # renewing never extends it

    listed = client.get(reviews_url(loan), headers=f.auth_headers(session, world.reviewer))
    assert listed.status_code == 200
    items = listed.get_json()["items"]
    assert [i["action"] for i in items] == ["renew"] * 3
    assert items[0]["staff"]["id"] == str(world.approver.public_id)
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "line.renew")) == 3


def test_only_an_approver_reviews_a_line(client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)

    assert_problem(act(client, session, loan, world.reviewer, "freeze"), 403, "forbidden")
    assert_problem(client.post(reviews_url(loan), json={"action": "freeze", "reason": "x"},
                               headers=creating(f.auth_headers(session, loan.farmer))),
                   403, "forbidden")
    assert_problem(client.get(reviews_url(loan), headers=f.auth_headers(session, loan.farmer)),
                   403, "forbidden")
    with pytest.raises(Forbidden):
        lines.review(session, fresh(session, loan), staff_principal(world.reviewer),
                     action="freeze", reason="x")
    assert not fresh(session, loan).line_frozen
    assert session.scalar(sa.select(sa.func.count()).select_from(LineReview)) == 0


def test_freeze_and_unfreeze_take_no_limit(client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)

    assert_problem(act(client, session, loan, world.approver, "freeze", limit_fen=1), 422,
                   "validation-failed")
    assert_problem(act(client, session, loan, world.approver, "close"), 422,
                   "validation-failed")


# --- the review job ---------------------------------------------------------------------------

def test_a_lapsed_review_freezes_the_line_until_renewed(
        app: Any, client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    draw(client, session, loan, 100_000)
    pin(app, "2028-03-01")  # the review date itself: still open
    assert draw(client, session, loan, 100).status_code == 201
    pin(app, "2028-03-02")
    assert_problem(draw(client, session, loan, 100), 409, "line-frozen")  # before the job too

    with app.app_context():
        assert jobs.run(lines.JOB_NAME) == "ok"
        assert jobs.run(lines.JOB_NAME) == "ok"  # the same day again: nothing more

    line = fresh(session, loan)
    assert line.line_frozen
    [lapse] = session.scalars(sa.select(LineReview)).all()
    assert (lapse.action, lapse.actor, lapse.staff_id, lapse.frozen) == (
        "lapse", "system", None, True)
    assert line.principal_outstanding_fen == 100_100
    told = session.scalars(sa.select(OutboxMessage.body)
                           .where(OutboxMessage.recipient == loan.farmer.phone)).all()
    assert any("annual review" in body or "年审" in body for body in told), told

    renewed = act(client, session, loan, world.approver, "renew").get_json()

    assert (renewed["frozen"], renewed["new_review_on"]) == (False, "2029-03-01")
    assert draw(client, session, loan, 100).status_code == 201


def test_renewing_keeps_a_freeze_a_person_set(
        app: Any, client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    act(client, session, loan, world.approver, "freeze")

    renewed = act(client, session, loan, world.approver, "renew").get_json()

    assert renewed["frozen"] is True
    assert_problem(draw(client, session, loan, 100), 409, "line-frozen")


def test_the_job_settles_an_ended_line_that_owes_nothing(
        app: Any, client: Any, session: Any, world: w.World) -> None:
    repaid = open_line(session, world, term_months=12)
    owing = open_line(session, world, term_months=12)
    draw(client, session, repaid, 100_000)
    draw(client, session, owing, 100_000)
    repay(session, repaid, 100_000)
    pin(app, "2028-03-01")

    with app.app_context():
        jobs.run(lines.JOB_NAME)

    assert (fresh(session, repaid).status, fresh(session, repaid).settled_on) == (
        "settled", date(2028, 3, 1))
    assert fresh(session, owing).status == "active"
    assert not fresh(session, owing).line_frozen  # an ended line is not frozen for review


# --- a failed payout --------------------------------------------------------------------------

def test_undoing_a_failed_draw_keeps_the_installments_equal_to_the_balance(
        client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    draw(client, session, loan, 300_000)
    draw(client, session, loan, 200_000)
    second = session.scalars(sa.select(Disbursement).where(Disbursement.seq == 2)).one()

    lines.undo_draw(session, second, START)

    rows = {i.seq: (i.principal_due_fen, i.paid_on) for i in session.scalars(
        sa.select(Installment).where(Installment.loan_id == loan.id))}
    assert rows == {1: (300_000, None), 2: (0, START)}


def test_a_failed_draw_payout_leaves_the_installments_equal_to_the_balance(
        client: Any, session: Any, world: w.World) -> None:
    loan = open_line(session, world)
    draw(client, session, loan, 300_000)
    draw(client, session, loan, 200_000)
    second = session.scalars(sa.select(Disbursement).where(Disbursement.seq == 2)).one()
    instruction = session.scalars(sa.select(PayoutInstruction).where(
        PayoutInstruction.disbursement_id == second.id)).one()

    payouts.fail(session, instruction, reason="账户冻结", business_date=START, actor="system")
    session.commit()

    unpaid = session.scalar(sa.select(sa.func.sum(
        Installment.principal_due_fen - Installment.principal_paid_fen))
        .where(Installment.loan_id == loan.id))
    assert fresh(session, loan).principal_outstanding_fen == 300_000
    assert unpaid == 300_000
    assert_consistent(session)


# --- concurrency (PostgreSQL) -----------------------------------------------------------------

@pytest.mark.postgres
def test_concurrent_draws_never_exceed_the_limit(app: Any, session: Any,
                                                 world: w.World) -> None:
    loan = open_line(session, world, limit=1_000_000)
    headers, url = f.auth_headers(session, loan.farmer), draws_url(loan)
    session.commit()
    threads = 12
    barrier = Barrier(threads)

    def fire(_n: int) -> Any:
        client = app.test_client()
        barrier.wait()
        return client.post(url, json={"amount_fen": 300_000}, headers=creating(headers))

    with ThreadPoolExecutor(threads) as pool:
        responses = list(pool.map(fire, range(threads)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [409] * (threads - 3), [r.get_json() for r in responses]
    assert {r.get_json()["code"] for r in responses if r.status_code == 409} == {
        "limit-exceeded"}
    assert fresh(session, loan).principal_outstanding_fen == 900_000
    assert sorted(session.scalars(sa.select(Disbursement.seq))) == [1, 2, 3]
    assert session.scalar(sa.select(sa.func.count()).select_from(JournalTransaction)
                          .where(JournalTransaction.kind == "disbursement")) == 3
    assert_consistent(session)

