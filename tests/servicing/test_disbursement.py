"""Disbursement with four eyes: initiate, authorise (booked with its ledger entries, the
schedule and the payout instruction), reject; exactly once under retries, races and a
second row; who may do what."""

from __future__ import annotations

import threading
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.audit import AuditEvent
from core.authz import Principal
from core.people.models import Staff
from lending.ledger.models import JournalEntry, JournalTransaction
from lending.ledger.posting import loan_balances
from lending.servicing import disbursement
from lending.servicing.models import Disbursement, Installment, Loan, PayoutInstruction
from tests import factories as f
from tests.core.test_people_helpers import assert_problem, creating
from tests.servicing import world as w

API = w.API
TODAY = date(2027, 3, 1)


def setup_world(app: Any, session: Any) -> w.World:
    """The servicing world, committed, on the business date 1 March 2027."""
    app.config["NONGDAI_BUSINESS_DATE"] = TODAY.isoformat()
    built = w.build(session)
    session.commit()
    return built


@pytest.fixture
def world(app: Any, session: Any) -> w.World:
    return setup_world(app, session)


def accepted_loan(session: Any, world: w.World, *, amount_fen: int = 2_000_000,
                  kind: str = "term", status: str = "accepted") -> Loan:
    """A loan as the farmer's acceptance leaves it: no schedule, no money yet."""
    farmer = w.farmer(session, world)
    product = world.line if kind == "line" else world.spring
    application = w.approved(session, world, farmer, product=product, amount_fen=amount_fen)
    terms = application.terms
    loan = Loan(application_id=application.id, farmer_id=farmer.id,
                village_id=farmer.village_id, product_id=product.id, kind=kind,
                repayment_type=product.repayment_type, crop="rice", county_code=w.COUNTY,
                terms=terms, principal_fen=amount_fen, term_months=8,
                annual_rate_bp=product.annual_rate_bp,
                penalty_rate_bp=product.annual_rate_bp * 3 // 2, day_count=product.day_count,
                grace_months=product.grace_months, status=status,
                limit_fen=amount_fen if kind == "line" else None)
    session.add(loan)
    session.flush()
    return loan


def headers(session: Any, who: Any) -> dict[str, str]:
    return f.auth_headers(session, who)


def initiate(client: Any, hdrs: dict[str, str], loan: Loan | uuid.UUID, **body: Any) -> Any:
    target = loan if isinstance(loan, uuid.UUID) else loan.public_id
    return client.post(f"{API}/loans/{target}/disbursements", json=body,
                       headers=creating(hdrs))


def authorise(client: Any, hdrs: dict[str, str], disbursement_id: Any) -> Any:
    return client.post(f"{API}/disbursements/{disbursement_id}/authorise", headers=hdrs)


def disburse(client: Any, session: Any, world: w.World, loan: Loan) -> dict[str, Any]:
    """Initiated by the reviewer, authorised by the approver: the disbursement's JSON."""
    made = initiate(client, headers(session, world.reviewer), loan, reason="首次放款")
    assert made.status_code == 201, made.get_json()
    done = authorise(client, headers(session, world.approver), made.get_json()["id"])
    assert done.status_code == 200, done.get_json()
    body: dict[str, Any] = done.get_json()
    return body


def count(session: Any, model: Any, *where: Any) -> int:
    session.rollback()
    return int(session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)))


def ledger_total(session: Any) -> int:
    session.rollback()
    return int(session.scalar(sa.select(sa.func.coalesce(sa.func.sum(JournalEntry.amount_fen),
                                                         0))))


def bank_balance(session: Any, account: str) -> int:
    return int(session.scalar(sa.select(sa.func.coalesce(sa.func.sum(JournalEntry.amount_fen),
                                                         0)).where(JournalEntry.account ==
                                                                   account)))


def fresh(session: Any, model: Any, row_id: int) -> Any:
    session.rollback()
    return session.get(model, row_id)


def only(session: Any, model: Any) -> Any:
    session.rollback()
    return session.scalars(sa.select(model)).one()


def sms_to(app: Any, phone: str) -> list[str]:
    """Bodies sent to ``phone`` through the log sender, in order."""
    log = Path(app.instance_path) / "sms.log"
    if not log.exists():
        return []
    lines = [line.split("\t", 2) for line in log.read_text(encoding="utf-8").splitlines()]
    return [body for _at, to, body in lines if to == phone]


# --- the happy path ---------------------------------------------------------------------------

def test_initiated_then_authorised_is_booked_with_its_entries(
        client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world, amount_fen=2_000_000)
    session.commit()

    made = initiate(client, headers(session, world.reviewer), loan, reason="首次放款")
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert (body["status"], body["seq"], body["amount_fen"]) == ("initiated", 1, 2_000_000)
    assert body["loan_id"] == str(loan.public_id)
    assert body["initiated_by"] == f"staff:{world.reviewer.public_id}"
    assert body["payout_id"] is None
    assert fresh(session, Loan, loan.id).status == "accepted"
    assert count(session, JournalTransaction) == 0

    done = authorise(client, headers(session, world.approver), body["id"])
    assert done.status_code == 200, done.get_json()
    booked = done.get_json()
    assert booked["status"] == "authorised"
    assert booked["authorised_by"] == str(world.approver.public_id)
    assert booked["business_date"] == "2027-03-01"
    assert booked["payout_status"] == "pending"

    row = fresh(session, Loan, loan.id)
    assert (row.status, row.disbursed_on) == ("active", TODAY)
    balances = loan_balances(session, loan.id)
    assert balances["loan_principal"] == 2_000_000 == row.principal_outstanding_fen
    assert balances["interest_receivable"] == 0 == row.interest_outstanding_fen
    assert bank_balance(session, "payout_clearing") == -2_000_000
    assert ledger_total(session) == 0
    (journal,) = session.scalars(sa.select(JournalTransaction))
    assert (journal.kind, journal.reference, journal.loan_id) == (
        "disbursement", booked["id"], loan.id)
    assert journal.business_date == TODAY
    dis = session.scalars(sa.select(Disbursement)).one()
    assert dis.journal_id == journal.id


def test_booking_installs_the_schedule_and_sets_maturity(
        client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world, amount_fen=1_500_000)
    session.commit()

    disburse(client, session, world, loan)

    row = fresh(session, Loan, loan.id)
    installments = list(session.scalars(sa.select(Installment).where(
        Installment.loan_id == loan.id).order_by(Installment.seq)))
    assert installments, "a term loan gets its schedule when it is disbursed"
    assert sum(i.principal_due_fen for i in installments) == 1_500_000
    assert all(i.due_date > TODAY for i in installments)
    assert row.maturity_date == installments[-1].due_date


def test_the_payout_instruction_names_the_farmer_with_a_masked_id(
        client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    session.commit()

    booked = disburse(client, session, world, loan)

    session.rollback()
    farmer = session.get(Loan, loan.id).farmer
    payout = session.scalars(sa.select(PayoutInstruction)).one()
    assert str(payout.public_id) == booked["payout_id"]
    assert (payout.status, payout.amount_fen, payout.loan_id) == ("pending", 2_000_000, loan.id)
    assert payout.payee == {"name": farmer.name, "id_number_masked": farmer.id_number_masked,
                            "phone": farmer.phone}
    assert "*" in payout.payee["id_number_masked"]


def test_the_farmer_is_told_by_sms_and_every_step_is_audited(
        app: Any, client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world, amount_fen=2_000_000)
    loan.farmer.language = "en"
    session.commit()

    booked = disburse(client, session, world, loan)

    texts = sms_to(app, loan.farmer.phone)
    assert len(texts) == 1
    assert "20,000" in texts[0]
    assert "paid to your account" in texts[0]
    actions = set(session.scalars(sa.select(AuditEvent.action).where(
        AuditEvent.object_id == booked["id"])))
    assert actions == {"disbursement.initiate", "disbursement.authorise", "disbursement.book"}


# --- four eyes --------------------------------------------------------------------------------

def test_the_initiator_cannot_authorise(client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    session.commit()
    own = headers(session, world.approver)
    made = initiate(client, own, loan).get_json()

    assert_problem(authorise(client, own, made["id"]), 409, "four-eyes")
    assert count(session, JournalTransaction) == 0
    assert fresh(session, Loan, loan.id).status == "accepted"

    done = authorise(client, headers(session, world.second_approver), made["id"])
    assert done.status_code == 200, done.get_json()


def test_a_reviewer_cannot_authorise(client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    other_reviewer = f.staff(session, ("reviewer",))
    session.commit()
    made = initiate(client, headers(session, world.reviewer), loan).get_json()

    assert_problem(authorise(client, headers(session, other_reviewer), made["id"]), 403,
                   "forbidden")
    assert only(session, Disbursement).status == "initiated"


def test_the_service_refuses_a_principal_without_the_approver_role(
        session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    maker = _principal(world.reviewer)
    row = disbursement.initiate(session, loan, maker, reason="")

    with pytest.raises(disbursement.AuthoriserRequired):
        disbursement.authorise(session, row, _principal(f.staff(session, ("reviewer",))))
    with pytest.raises(disbursement.FourEyes):
        disbursement.authorise(session, row, _principal(world.reviewer, "approver"))


def _principal(staff: Staff, *extra: str) -> Principal:
    return Principal(kind="staff", id=staff.id, public_id=staff.public_id,
                     roles=staff.role_set | set(extra))


# --- exactly once -----------------------------------------------------------------------------

def test_authorising_twice_books_once(client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    session.commit()
    booked = disburse(client, session, world, loan)

    again = authorise(client, headers(session, world.second_approver), booked["id"])

    assert_problem(again, 409, "disbursement-decided")
    assert count(session, JournalTransaction, JournalTransaction.kind == "disbursement") == 1
    assert count(session, PayoutInstruction) == 1
    assert loan_balances(session, loan.id)["loan_principal"] == 2_000_000


def test_a_stale_authorisation_loses_on_the_conditional_update(
        client: Any, session: Any, world: w.World) -> None:
    """The status check is the UPDATE itself: an approver holding an old copy of the row
    (read before another authorised it) cannot book it a second time."""
    loan = accepted_loan(session, world)
    session.commit()
    made = initiate(client, headers(session, world.reviewer), loan).get_json()
    stale = session.scalars(sa.select(Disbursement)).one()
    assert stale.status == "initiated"
    assert authorise(client, headers(session, world.approver), made["id"]).status_code == 200

    with pytest.raises(disbursement.NotInitiated):
        disbursement.authorise(session, stale, _principal(world.second_approver))
    session.rollback()
    assert count(session, JournalTransaction) == 1


def test_two_approvers_at_once_one_books(app: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    session.commit()
    made = initiate(app.test_client(), headers(session, world.reviewer), loan).get_json()
    approvers = [headers(session, world.approver), headers(session, world.second_approver)]
    session.commit()
    start = threading.Barrier(2)
    answers: list[Any] = []

    def act(hdrs: dict[str, str]) -> None:
        client = app.test_client()
        start.wait()
        answers.append(authorise(client, hdrs, made["id"]))

    threads = [threading.Thread(target=act, args=(h,)) for h in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a.status_code for a in answers) == [200, 409]
    assert count(session, JournalTransaction) == 1
    assert count(session, PayoutInstruction) == 1
    assert ledger_total(session) == 0
    assert fresh(session, Loan, loan.id).principal_outstanding_fen == 2_000_000


def test_a_second_initiation_is_refused(client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    session.commit()
    first = initiate(client, headers(session, world.reviewer), loan)
    assert first.status_code == 201

    second = initiate(client, headers(session, world.approver), loan)

    assert_problem(second, 409, "disbursement-exists")
    assert count(session, Disbursement) == 1


def test_a_booked_loan_cannot_be_initiated_again(client: Any, session: Any,
                                                  world: w.World) -> None:
    loan = accepted_loan(session, world)
    session.commit()
    disburse(client, session, world, loan)

    assert_problem(initiate(client, headers(session, world.reviewer), loan), 409,
                   "loan-not-disbursable")


@pytest.mark.parametrize(("kind", "status"), [("line", "active"), ("term", "active"),
                                              ("term", "cancelled")])
def test_only_an_accepted_term_loan_is_initiated(client: Any, session: Any, world: w.World,
                                                  kind: str, status: str) -> None:
    loan = accepted_loan(session, world, kind=kind, status=status)
    session.commit()

    assert_problem(initiate(client, headers(session, world.reviewer), loan), 409,
                   "loan-not-disbursable")
    assert count(session, Disbursement) == 0


def test_the_database_refuses_a_second_row_for_the_same_seq(session: Any,
                                                            world: w.World) -> None:
    loan = accepted_loan(session, world)
    row = disbursement.initiate(session, loan, _principal(world.reviewer), reason="")
    session.commit()

    session.add(Disbursement(loan_id=loan.id, seq=row.seq, amount_fen=1, status="initiated",
                             initiated_by="staff:x"))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


def test_a_race_past_the_check_meets_the_constraint(session: Any, world: w.World,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Two initiations that both saw no disbursement: the second collides on (loan_id, seq)
    and answers 409, and the session goes on (a savepoint)."""
    loan = accepted_loan(session, world)
    disbursement.initiate(session, loan, _principal(world.reviewer), reason="")
    monkeypatch.setattr(disbursement, "_live", lambda *_: False)
    monkeypatch.setattr(disbursement, "next_seq", lambda *_: 1)

    with pytest.raises(disbursement.AlreadyInitiated):
        disbursement.initiate(session, loan, _principal(world.approver), reason="")
    session.commit()
    assert count(session, Disbursement) == 1


def test_a_retried_initiation_answers_the_same_disbursement(client: Any, session: Any,
                                                             world: w.World) -> None:
    loan = accepted_loan(session, world)
    session.commit()
    hdrs = creating(headers(session, world.reviewer))
    url = f"{API}/loans/{loan.public_id}/disbursements"

    first = client.post(url, json={"reason": "放款"}, headers=hdrs)
    again = client.post(url, json={"reason": "放款"}, headers=hdrs)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert count(session, Disbursement) == 1


# --- reject -----------------------------------------------------------------------------------

def test_an_approver_rejects_and_the_loan_may_be_initiated_again(
        client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    session.commit()
    made = initiate(client, headers(session, world.reviewer), loan).get_json()

    rejected = client.post(f"{API}/disbursements/{made['id']}/reject",
                           json={"reason": "收款账户待核实"},
                           headers=headers(session, world.approver))

    assert rejected.status_code == 200, rejected.get_json()
    assert rejected.get_json()["status"] == "rejected"
    assert_problem(authorise(client, headers(session, world.approver), made["id"]), 409,
                   "disbursement-decided")
    event = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "disbursement.reject")).one()
    assert event.summary["reason"] == "收款账户待核实"
    again = initiate(client, headers(session, world.reviewer), loan)
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["seq"] == 2
    assert authorise(client, headers(session, world.approver),
                     again.get_json()["id"]).status_code == 200
    assert count(session, JournalTransaction) == 1


def test_the_initiator_may_withdraw_but_another_reviewer_may_not_reject(
        client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    other = f.staff(session, ("reviewer",))
    session.commit()
    made = initiate(client, headers(session, world.reviewer), loan).get_json()
    url = f"{API}/disbursements/{made['id']}/reject"

    assert_problem(client.post(url, json={"reason": "不行"}, headers=headers(session, other)),
                   403, "authoriser-required")
    mine = client.post(url, json={"reason": "金额有误"},
                       headers=headers(session, world.reviewer))
    assert mine.status_code == 200
    assert mine.get_json()["status"] == "rejected"


def test_a_reject_needs_a_reason(client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    session.commit()
    made = initiate(client, headers(session, world.reviewer), loan).get_json()

    answer = client.post(f"{API}/disbursements/{made['id']}/reject", json={"reason": "  "},
                         headers=headers(session, world.approver))

    assert_problem(answer, 422, "validation-failed")


# --- the queue and who sees what --------------------------------------------------------------

def test_the_staff_queue_lists_by_status(client: Any, session: Any, world: w.World) -> None:
    waiting, booked = accepted_loan(session, world), accepted_loan(session, world)
    admin = f.staff(session, ("admin",))
    session.commit()
    initiate(client, headers(session, world.reviewer), waiting)
    disburse(client, session, world, booked)

    queue = client.get(f"{API}/disbursements?status=initiated",
                       headers=headers(session, admin))
    everything = client.get(f"{API}/disbursements", headers=headers(session, world.reviewer))

    assert queue.status_code == 200, queue.get_json()
    assert [d["loan_id"] for d in queue.get_json()["items"]] == [str(waiting.public_id)]
    assert {d["status"] for d in everything.get_json()["items"]} == {"initiated",
                                                                      "authorised"}
    assert_problem(client.get(f"{API}/disbursements?status=paid",
                              headers=headers(session, admin)), 422)


def test_coordinators_and_farmers_cannot_touch_disbursements(
        client: Any, session: Any, world: w.World) -> None:
    loan = accepted_loan(session, world)
    session.commit()
    made = initiate(client, headers(session, world.reviewer), loan).get_json()
    for who in (world.coordinator, loan.farmer):
        hdrs = headers(session, who)
        assert_problem(initiate(client, hdrs, loan), 403, "forbidden")
        assert_problem(authorise(client, hdrs, made["id"]), 403, "forbidden")
        assert_problem(client.post(f"{API}/disbursements/{made['id']}/reject",
                                   json={"reason": "x"}, headers=hdrs), 403, "forbidden")
        assert_problem(client.get(f"{API}/disbursements", headers=hdrs), 403, "forbidden")
    assert only(session, Disbursement).status == "initiated"


def test_unknown_ids_are_404(client: Any, session: Any, world: w.World) -> None:
    hdrs = headers(session, world.approver)
    nobody = uuid.uuid4()

    assert_problem(initiate(client, hdrs, nobody), 404, "not-found")
    assert_problem(authorise(client, hdrs, nobody), 404, "not-found")
    assert_problem(client.post(f"{API}/disbursements/{nobody}/reject", json={"reason": "x"},
                               headers=hdrs), 404, "not-found")
