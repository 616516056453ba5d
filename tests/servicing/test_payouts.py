"""Payouts: the core system collects instructions (API and file), confirms or fails each,
once; the ledger balances after every step and a failed payout unwinds the disbursement."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from lending.ledger import accounts
from lending.ledger.models import JournalTransaction
from lending.ledger.posting import Line, loan_balances, post
from lending.servicing import payouts
from lending.servicing.models import Disbursement, Installment, Loan, PayoutInstruction, Repayment
from tests import factories as f
from tests.core.test_people_helpers import assert_problem
from tests.servicing import world as w
from tests.servicing.test_disbursement import (
    TODAY,
    accepted_loan,
    bank_balance,
    count,
    disburse,
    fresh,
    headers,
    ledger_total,
    setup_world,
    sms_to,
)

API = w.API


@pytest.fixture
def world(app: Any, session: Any) -> w.World:
    return setup_world(app, session)


@pytest.fixture
def core(session: Any, world: w.World) -> dict[str, str]:
    """The core banking system's account: a staff member with the admin role."""
    system = f.staff(session, ("admin",))
    session.commit()
    return headers(session, system)


def booked(client: Any, session: Any, world: w.World, amount_fen: int = 2_000_000,
           ) -> tuple[Loan, dict[str, Any]]:
    loan = accepted_loan(session, world, amount_fen=amount_fen)
    session.commit()
    return loan, disburse(client, session, world, loan)


def confirm(client: Any, hdrs: dict[str, str], payout_id: str, ref: str = "CBS-1") -> Any:
    return client.post(f"{API}/payouts/{payout_id}/confirm", json={"core_reference": ref},
                       headers=hdrs)


def fail(client: Any, hdrs: dict[str, str], payout_id: str, reason: str = "账户已销户") -> Any:
    return client.post(f"{API}/payouts/{payout_id}/fail", json={"reason": reason},
                       headers=hdrs)


def export(client: Any, hdrs: dict[str, str], **body: Any) -> Any:
    return client.post(f"{API}/payouts/export", json=body, headers=hdrs)


# --- collection over the API ------------------------------------------------------------------

def test_pending_instructions_are_listed_for_the_core_system(
        client: Any, session: Any, world: w.World, core: dict[str, str]) -> None:
    loan, dis = booked(client, session, world)

    answer = client.get(f"{API}/payouts?status=pending", headers=core)

    assert answer.status_code == 200, answer.get_json()
    (item,) = answer.get_json()["items"]
    assert item["id"] == dis["payout_id"]
    assert (item["disbursement_id"], item["loan_id"]) == (dis["id"], str(loan.public_id))
    assert (item["amount_fen"], item["status"], item["batch"]) == (2_000_000, "pending", None)
    assert item["payee"]["id_number_masked"] == loan.farmer.id_number_masked
    assert client.get(f"{API}/payouts?status=confirmed", headers=core).get_json()["items"] == []


def test_export_takes_the_pending_into_a_batch_and_a_retry_gets_the_same_batch(
        client: Any, session: Any, world: w.World, core: dict[str, str]) -> None:
    booked(client, session, world, 1_000_000)
    booked(client, session, world, 2_500_000)

    first = export(client, core, batch="B-1")
    assert first.status_code == 200, first.get_json()
    _, later = booked(client, session, world, 700_000)  # arrives after the batch
    again = export(client, core, batch="B-1")

    assert again.get_json() == first.get_json()
    batch = first.get_json()
    assert batch["batch"] == "B-1"
    assert sorted(i["amount_fen"] for i in batch["items"]) == [1_000_000, 2_500_000]
    assert {i["status"] for i in batch["items"]} == {"exported"}
    assert batch["csv"].splitlines()[0] == ",".join(payouts.CSV_COLUMNS)
    pending = client.get(f"{API}/payouts?status=pending", headers=core).get_json()["items"]
    assert [i["id"] for i in pending] == [later["payout_id"]]
    assert ledger_total(session) == 0


def test_an_export_without_a_batch_id_makes_a_new_one(
        client: Any, session: Any, world: w.World, core: dict[str, str]) -> None:
    booked(client, session, world)

    first = export(client, core).get_json()
    second = export(client, core).get_json()

    assert first["batch"].startswith("20270301-")
    assert len(first["items"]) == 1
    assert second["batch"] != first["batch"]
    assert second["items"] == []


# --- confirm ----------------------------------------------------------------------------------

def test_a_confirmation_settles_the_clearing_account_once(
        client: Any, session: Any, world: w.World, core: dict[str, str]) -> None:
    loan, dis = booked(client, session, world)
    export(client, core, batch="B-2")

    answer = confirm(client, core, dis["payout_id"], "CBS-0001")
    again = confirm(client, core, dis["payout_id"], "CBS-0001")

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["status"] == "confirmed"
    assert answer.get_json()["core_reference"] == "CBS-0001"
    assert again.status_code == 200
    assert count(session, JournalTransaction, JournalTransaction.kind == "payout_confirm") == 1
    assert bank_balance(session, accounts.PAYOUT_CLEARING) == 0
    assert bank_balance(session, accounts.CORE_SETTLEMENT) == -2_000_000
    assert loan_balances(session, loan.id)["loan_principal"] == 2_000_000
    assert ledger_total(session) == 0
    assert_problem(confirm(client, core, dis["payout_id"], "CBS-0002"), 409, "payout-answered")
    assert_problem(fail(client, core, dis["payout_id"]), 409, "payout-answered")
    assert count(session, AuditEvent, AuditEvent.action == "payout.confirm") == 1


def test_a_pending_instruction_may_be_confirmed_without_a_batch(
        client: Any, session: Any, world: w.World, core: dict[str, str]) -> None:
    _, dis = booked(client, session, world)

    assert confirm(client, core, dis["payout_id"]).status_code == 200
    assert export(client, core).get_json()["items"] == []


# --- fail -------------------------------------------------------------------------------------

def test_a_failed_payout_puts_the_term_loan_back_to_accepted(
        app: Any, client: Any, session: Any, world: w.World, core: dict[str, str]) -> None:
    loan, dis = booked(client, session, world)
    loan.farmer.language = "en"
    session.commit()
    export(client, core, batch="B-3")

    answer = fail(client, core, dis["payout_id"])

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["status"] == "failed"
    row = fresh(session, Loan, loan.id)
    assert (row.status, row.disbursed_on, row.maturity_date) == ("accepted", None, None)
    assert row.principal_outstanding_fen == 0
    assert all(v == 0 for v in loan_balances(session, loan.id).values())
    assert count(session, Installment, Installment.loan_id == loan.id) == 0
    assert bank_balance(session, accounts.PAYOUT_CLEARING) == 0
    assert ledger_total(session) == 0
    reversal = session.scalars(sa.select(JournalTransaction).where(
        JournalTransaction.kind == "reversal")).one()
    assert reversal.reference == f"disbursement:{dis['id']}"
    assert session.scalars(sa.select(Disbursement)).one().status == "failed"
    assert "did not go through" in sms_to(app, loan.farmer.phone)[-1]
    # the same answer again changes nothing; a confirmation now is refused
    assert fail(client, core, dis["payout_id"]).status_code == 200
    assert count(session, JournalTransaction, JournalTransaction.kind == "reversal") == 1
    assert_problem(confirm(client, core, dis["payout_id"]), 409, "payout-answered")


def test_after_a_failed_payout_the_loan_is_disbursed_again_with_four_eyes(
        client: Any, session: Any, world: w.World, core: dict[str, str]) -> None:
    loan, dis = booked(client, session, world)
    fail(client, core, dis["payout_id"])

    again = disburse(client, session, world, loan)

    assert again["seq"] == 2
    assert fresh(session, Loan, loan.id).status == "active"
    assert loan_balances(session, loan.id)["loan_principal"] == 2_000_000
    assert count(session, Installment, Installment.loan_id == loan.id) > 0
    assert bank_balance(session, accounts.PAYOUT_CLEARING) == -2_000_000
    assert ledger_total(session) == 0


def test_interest_accrued_before_the_failure_is_written_off(
        client: Any, session: Any, world: w.World, core: dict[str, str]) -> None:
    loan, dis = booked(client, session, world)
    post(session, kind="accrual", reference=f"test:{loan.id}", business_date=TODAY,
         actor="system", loan_id=loan.id,
         lines=[Line(accounts.INTEREST_RECEIVABLE, 321, loan.id),
                Line(accounts.INTEREST_INCOME, -321)])
    session.commit()

    assert fail(client, core, dis["payout_id"]).status_code == 200

    assert all(v == 0 for v in loan_balances(session, loan.id).values())
    assert fresh(session, Loan, loan.id).interest_outstanding_fen == 0
    assert bank_balance(session, accounts.INTEREST_INCOME) == 0
    assert ledger_total(session) == 0


def test_a_failure_after_a_repayment_is_left_to_staff(
        client: Any, session: Any, world: w.World, core: dict[str, str]) -> None:
    loan, dis = booked(client, session, world)
    session.add(Repayment(loan_id=loan.id, channel="branch", reference="R-1", fingerprint="0",
                          amount_fen=100, received_at=fresh(session, Loan, loan.id).created_at,
                          business_date=TODAY))
    session.commit()

    assert_problem(fail(client, core, dis["payout_id"]), 409, "payout-repaid")
    assert fresh(session, Loan, loan.id).status == "active"
    assert count(session, JournalTransaction, JournalTransaction.kind == "reversal") == 0


def test_a_failed_line_draw_leaves_the_line_active(session: Any,
                                                   world: w.World) -> None:
    from lending.servicing import disbursement  # noqa: PLC0415

    loan = accepted_loan(session, world, kind="line", status="active", amount_fen=5_000_000)
    draw = Disbursement(loan_id=loan.id, seq=1, amount_fen=800_000, status="authorised",
                        initiated_by="farmer:x")
    session.add(draw)
    session.flush()
    disbursement.book(session, draw, business_date=TODAY, actor="system")
    session.add(Installment(loan_id=loan.id, seq=1, due_date=TODAY.replace(month=9),
                            principal_due_fen=800_000, interest_due_fen=0))
    instruction = session.scalars(sa.select(PayoutInstruction)).one()

    _, failed = payouts.fail(session, instruction, reason="退回", business_date=TODAY,
                             actor="system")
    assert failed
    session.commit()

    row = fresh(session, Loan, loan.id)
    assert (row.status, row.principal_outstanding_fen) == ("active", 0)
    assert row.disbursed_on == TODAY  # the line was drawn; this draw is undone
    installment = session.scalars(sa.select(Installment)).one()
    assert (installment.principal_due_fen, installment.paid_on) == (0, TODAY)
    assert session.scalars(sa.select(Disbursement)).one().status == "failed"
    assert ledger_total(session) == 0


# --- the file ---------------------------------------------------------------------------------

def test_the_cli_writes_the_pending_to_a_csv_file_and_marks_them_exported(
        client: Any, runner: Any, session: Any, world: w.World, tmp_path: Path) -> None:
    loan, dis = booked(client, session, world, 1_234_500)
    out = tmp_path / "export"

    result = runner.invoke(args=["payouts", "export", "--out", str(out)])

    assert result.exit_code == 0, result.output
    (written,) = out.glob("payouts-*.csv")
    rows = list(csv.DictReader(io.StringIO(written.read_text(encoding="utf-8"))))
    farmer = loan.farmer
    assert rows == [{
        "instruction_id": dis["payout_id"], "loan_id": str(loan.public_id),
        "amount_fen": "1234500", "payee_name": farmer.name,
        "id_number_masked": farmer.id_number_masked, "phone": farmer.phone,
        "created_at": rows[0]["created_at"]}]
    instruction = session.scalars(sa.select(PayoutInstruction)).one()
    assert instruction.status == "exported"
    assert written.name == f"payouts-{instruction.batch}.csv"
    assert instruction.created_at.isoformat() == rows[0]["created_at"]
    assert "1234500 fen" in result.output


def test_the_cli_uses_the_configured_folder_and_skips_an_empty_export(
        client: Any, runner: Any, session: Any, world: w.World, tmp_path: Path) -> None:
    runner.app.config["NONGDAI_PAYOUT_EXPORT_DIR"] = str(tmp_path / "outbox")
    empty = runner.invoke(args=["payouts", "export"])
    assert empty.exit_code == 0
    assert "No pending" in empty.output
    assert not (tmp_path / "outbox").exists()

    booked(client, session, world)
    assert runner.invoke(args=["payouts", "export"]).exit_code == 0
    assert len(list((tmp_path / "outbox").glob("payouts-*.csv"))) == 1
    assert runner.invoke(args=["payouts", "export"]).output.startswith("No pending")


# --- who may -----------------------------------------------------------------------------------

def test_only_approvers_and_admins_answer_for_payouts(
        client: Any, session: Any, world: w.World) -> None:
    loan, dis = booked(client, session, world)
    for who in (world.reviewer, world.coordinator, loan.farmer):
        hdrs = headers(session, who)
        assert_problem(client.get(f"{API}/payouts", headers=hdrs), 403, "forbidden")
        assert_problem(export(client, hdrs), 403, "forbidden")
        assert_problem(confirm(client, hdrs, dis["payout_id"]), 403, "forbidden")
        assert_problem(fail(client, hdrs, dis["payout_id"]), 403, "forbidden")
    approver = headers(session, world.approver)
    assert_problem(confirm(client, approver, str(uuid.uuid4())), 404, "not-found")
    assert confirm(client, approver, dis["payout_id"]).status_code == 200
    assert session.scalars(sa.select(PayoutInstruction)).one().status == "confirmed"


def test_a_stale_second_confirmation_posts_nothing(
        client: Any, session: Any, world: w.World, core: dict[str, str]) -> None:
    _, dis = booked(client, session, world)
    stale = session.scalars(sa.select(PayoutInstruction)).one()
    assert confirm(client, core, dis["payout_id"], "CBS-A").status_code == 200

    with pytest.raises(payouts.PayoutAnswered):
        payouts.confirm(session, stale, core_reference="CBS-B", business_date=TODAY,
                        actor="system")
    session.rollback()
    assert count(session, JournalTransaction, JournalTransaction.kind == "payout_confirm") == 1
