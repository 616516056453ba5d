"""The ledger: posting (balanced, refused, once per money event, cached balances moved,
reversal) and ``flask ledger check``: a clean ledger passes; each invariant, broken by a direct
SQL write, fails by name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from core.db import table, utcnow
from lending.ledger import accounts, check, posting
from lending.ledger.models import JournalEntry, JournalTransaction
from lending.ledger.posting import Line
from lending.servicing.models import Disbursement, Installment, Loan, Repayment
from tests.servicing import world as w

DAY = date(2027, 3, 1)
E = table(JournalEntry)
J = table(JournalTransaction)
AMOUNT = 2_000_000


def _loan(session: Any, world: w.World, amount_fen: int = AMOUNT) -> Loan:
    application = w.approved(session, world, w.farmer(session, world), amount_fen=amount_fen)
    loan = Loan(application_id=application.id, farmer_id=application.farmer_id,
                village_id=application.village_id, product_id=application.product_id,
                kind="term", repayment_type="bullet_at_harvest", crop="rice",
                county_code=w.COUNTY, terms=application.terms, principal_fen=amount_fen,
                term_months=8, annual_rate_bp=600, penalty_rate_bp=900, day_count="ACT/360")
    session.add(loan)
    session.flush()
    return loan


def _post(session: Any, kind: str, reference: str, *lines: Line,
          loan: Loan | None = None) -> JournalTransaction:
    return posting.post(session, kind=kind, reference=reference, business_date=DAY,
                        lines=lines, actor="system", loan_id=loan.id if loan else None)


def _disburse(session: Any, loan: Loan) -> Disbursement:
    paid = Disbursement(loan_id=loan.id, seq=1, amount_fen=loan.principal_fen,
                        status="authorised", initiated_by="staff:1", business_date=DAY)
    session.add(paid)
    session.flush()
    journal = _post(session, "disbursement", str(paid.public_id),
                    Line(accounts.LOAN_PRINCIPAL, loan.principal_fen, loan.id),
                    Line(accounts.PAYOUT_CLEARING, -loan.principal_fen), loan=loan)
    paid.journal_id = journal.id
    loan.status, loan.disbursed_on = "active", DAY
    return paid


def _accrue(session: Any, loan: Loan, fen: int, reference: str) -> JournalTransaction:
    return _post(session, "accrual", f"{loan.public_id}:{reference}",
                 Line(accounts.INTEREST_RECEIVABLE, fen, loan.id),
                 Line(accounts.INTEREST_INCOME, -fen), loan=loan)


def _repay(session: Any, loan: Loan, reference: str, *, interest: int, principal: int,
           overpaid: int = 0) -> Repayment:
    amount = interest + principal + overpaid
    journal = _post(session, "repayment", f"demo-pay:{reference}",
                    Line(accounts.REPAYMENT_CLEARING, amount),
                    Line(accounts.INTEREST_RECEIVABLE, -interest, loan.id),
                    Line(accounts.LOAN_PRINCIPAL, -principal, loan.id),
                    Line(accounts.OVERPAYMENT, -overpaid, loan.id), loan=loan)
    repayment = Repayment(loan_id=loan.id, channel="demo-pay", reference=reference,
                          fingerprint="f" * 64, amount_fen=amount, received_at=utcnow(),
                          business_date=DAY, interest_fen=interest, principal_fen=principal,
                          overpaid_fen=overpaid, journal_id=journal.id)
    session.add(repayment)
    session.flush()
    return repayment


@dataclass
class Books:
    loan: Loan
    settled: Loan
    disbursement: Disbursement
    accrual: JournalTransaction
    other_accrual: JournalTransaction
    reversal: JournalTransaction
    repayment: Repayment
    installment: Installment


@pytest.fixture
def books(session: Any) -> Books:
    """A clean ledger: an active loan (disbursed, interest accrued, an accrual reversed, part
    repaid, its installment part paid) and a settled one (repaid in full, with an overpayment)."""
    world = w.build(session)
    loan = _loan(session, world)
    paid = _disburse(session, loan)
    accrual = _accrue(session, loan, 4_000, "2027-03-01")
    other = _accrue(session, loan, 3_000, "2027-03-02")
    wrong = _accrue(session, loan, 999, "2027-03-02-twice")
    reversal = posting.reverse(session, wrong, business_date=DAY, actor="system")
    repayment = _repay(session, loan, "r-1", interest=4_000, principal=500_000)
    installment = Installment(loan_id=loan.id, seq=1, due_date=date(2027, 9, 30),
                              principal_due_fen=AMOUNT, interest_due_fen=70_000,
                              principal_paid_fen=500_000, interest_paid_fen=4_000)
    settled = _loan(session, world, amount_fen=100_000)
    _disburse(session, settled)
    _accrue(session, settled, 1_200, "2027-03-01")
    _repay(session, settled, "r-2", interest=1_200, principal=100_000, overpaid=300)
    settled.status = "settled"
    session.add(installment)
    session.commit()
    return Books(loan, settled, paid, accrual, other, reversal, repayment, installment)


def _entry(session: Any, journal: JournalTransaction, account: str) -> int:
    return int(session.scalar(sa.select(E.c.id).where(E.c.journal_id == journal.id,
                                                      E.c.account == account)))


def _sql(session: Any, statement: Any) -> None:
    session.execute(statement)
    session.commit()


def _failed(session: Any) -> set[str]:
    session.expire_all()
    report = check.run(session)
    session.rollback()
    return set(report.failed)


# --- posting ---------------------------------------------------------------------------------

def test_posting_writes_one_balanced_transaction_and_moves_the_cached_balances(
        session: Any, books: Books) -> None:
    loan = books.loan
    journal = _accrue(session, loan, 1_500, "2027-03-03")
    session.commit()

    amounts = session.execute(sa.select(E.c.account, E.c.loan_id, E.c.amount_fen)
                              .where(E.c.journal_id == journal.id).order_by(E.c.id)).all()
    assert amounts == [(accounts.INTEREST_RECEIVABLE, loan.id, 1_500),
                       (accounts.INTEREST_INCOME, None, -1_500)]
    session.refresh(loan)
    assert loan.interest_outstanding_fen == 3_000 + 1_500  # 4,000 accrued, paid; 3,000; now this
    assert loan.principal_outstanding_fen == AMOUNT - 500_000
    assert posting.loan_balances(session, loan.id) == {
        accounts.INTEREST_RECEIVABLE: 4_500, accounts.LOAN_PRINCIPAL: AMOUNT - 500_000,
        accounts.OVERPAYMENT: 0, accounts.PENALTY_RECEIVABLE: 0}


@pytest.mark.parametrize(("lines", "message"), [
    ([Line(accounts.INTEREST_RECEIVABLE, 100, 0), Line(accounts.INTEREST_INCOME, -99)],
     "sum to 1"),
    ([Line("suspense", 100), Line(accounts.INTEREST_INCOME, -100)], "unknown account"),
    ([Line(accounts.INTEREST_RECEIVABLE, 100), Line(accounts.INTEREST_INCOME, -100)],
     "loan id"),
    ([Line(accounts.CORE_SETTLEMENT, 100, 0), Line(accounts.INTEREST_INCOME, -100)],
     "loan id"),
    ([], "needs entries"),
], ids=["unbalanced", "unknown-account", "per-loan-without-loan", "bank-with-loan", "empty"])
def test_posting_refuses_what_is_not_one_valid_balanced_transaction(
        session: Any, books: Books, lines: list[Line], message: str) -> None:
    lines = [Line(x.account, x.amount_fen, books.loan.id if x.loan_id == 0 else x.loan_id)
             for x in lines]
    before = session.scalar(sa.select(sa.func.count()).select_from(J))

    with pytest.raises(posting.Unbalanced, match=message):
        _post(session, "adjustment", "bad", *lines, loan=books.loan)

    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(J)) == before


def test_a_money_event_is_posted_once(session: Any, books: Books) -> None:
    loan = books.loan
    _accrue(session, loan, 1_000, "2027-03-03")

    with pytest.raises(posting.AlreadyPosted):
        _accrue(session, loan, 1_000, "2027-03-03")

    session.commit()  # the savepoint kept the session usable; the first posting stands
    session.refresh(loan)
    assert loan.interest_outstanding_fen == 3_000 + 1_000
    assert session.scalar(sa.select(sa.func.count()).select_from(J).where(
        J.c.reference == f"{loan.public_id}:2027-03-03")) == 1
    assert check.run(session).ok


def test_a_reversal_mirrors_its_original_once(session: Any, books: Books) -> None:
    loan = books.loan
    reversal = posting.reverse(session, books.other_accrual, business_date=DAY, actor="system")
    session.commit()

    mirrored = session.execute(sa.select(E.c.account, E.c.loan_id, E.c.amount_fen)
                               .where(E.c.journal_id == reversal.id).order_by(E.c.id)).all()
    assert mirrored == [(accounts.INTEREST_RECEIVABLE, loan.id, -3_000),
                        (accounts.INTEREST_INCOME, None, 3_000)]
    assert reversal.reverses_id == books.other_accrual.id
    session.refresh(loan)
    assert loan.interest_outstanding_fen == 0
    with pytest.raises(posting.AlreadyPosted):
        posting.reverse(session, books.other_accrual, business_date=DAY, actor="system")
    session.rollback()
    assert check.run(session).ok


# --- ledger check: a clean ledger -----------------------------------------------------------

def test_a_clean_ledger_passes_every_invariant(runner: Any, books: Books) -> None:
    result = runner.invoke(args=["ledger", "check"])

    assert result.exit_code == 0, result.output
    assert "result: all 14 invariants hold" in result.output
    assert "FAIL" not in result.output
    assert "ledger check: 9 journals, 21 entries, 2 loans" in result.output


def test_the_json_report_names_every_invariant(runner: Any, books: Books) -> None:
    result = runner.invoke(args=["ledger", "check", "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert report["failed"] == []
    assert [item["name"] for item in report["invariants"]] == [
        name for name, _title, _query in check.INVARIANTS]
    assert all(item["failures"] == 0 and item["examples"] == []
               for item in report["invariants"])


def test_an_empty_ledger_passes(session: Any) -> None:
    report = check.run(session)

    assert report.ok
    assert report.totals == {"journals": 0, "entries": 0, "loans": 0}


# --- ledger check: each invariant, broken by a direct SQL write --------------------------------

def test_an_unbalanced_transaction_fails_balanced(runner: Any, session: Any,
                                                  books: Books) -> None:
    # two journals off by one fen each way: the ledger as a whole still sums to zero
    _sql(session, sa.update(E).where(E.c.id == _entry(session, books.accrual,
                                                       accounts.INTEREST_INCOME))
         .values(amount_fen=E.c.amount_fen + 1))
    _sql(session, sa.update(E).where(E.c.id == _entry(session, books.other_accrual,
                                                      accounts.INTEREST_INCOME))
         .values(amount_fen=E.c.amount_fen - 1))

    result = runner.invoke(args=["ledger", "check", "--json"])

    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["failed"] == ["balanced"]
    (balanced,) = [item for item in report["invariants"] if item["name"] == "balanced"]
    assert balanced["failures"] == 2
    assert sorted(example["sum_fen"] for example in balanced["examples"]) == [-1, 1]
    assert {example["journal"] for example in balanced["examples"]} == {
        str(books.accrual.public_id), str(books.other_accrual.public_id)}


def test_a_transaction_without_two_entries_fails(session: Any, books: Books) -> None:
    _sql(session, sa.insert(J).values(
        public_id=books.accrual.public_id.__class__(int=1), created_at=utcnow(),
        kind="adjustment", reference="empty", business_date=DAY, actor="system", memo={}))

    assert _failed(session) == {"two_entries"}


def test_a_zero_entry_fails(session: Any, books: Books) -> None:
    """The table's CHECK constraint refuses a zero entry; the check finds one all the same,
    written here with the constraint set aside (in a transaction rolled back afterwards)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
    else:
        connection.exec_driver_sql(
            "ALTER TABLE journal_entries DROP CONSTRAINT ck_journal_entries_nonzero")
    try:
        session.execute(sa.insert(E).values(journal_id=books.accrual.id,
                                            account=accounts.INTEREST_INCOME, amount_fen=0))
        report = check.run(session)
    finally:
        session.rollback()
        if connection.dialect.name == "sqlite":
            session.connection().exec_driver_sql("PRAGMA ignore_check_constraints = OFF")
            session.rollback()

    assert report.failed == ["nonzero_entries"]
    assert report.problems == ["nonzero_entries: no entry is zero (1 failing)"]
    assert report.findings[2].examples[0]["journal"] == str(books.accrual.public_id)


def test_an_unknown_account_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(E).where(E.c.id == _entry(session, books.accrual,
                                                       accounts.INTEREST_INCOME))
         .values(account="suspense"))

    assert _failed(session) == {"known_accounts"}


def test_a_bank_entry_with_a_loan_id_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(E).where(E.c.id == _entry(session, books.accrual,
                                                       accounts.INTEREST_INCOME))
         .values(loan_id=books.loan.id))

    assert _failed(session) == {"loan_ids"}


def test_a_per_loan_entry_without_its_loan_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(E).where(E.c.id == _entry(session, books.accrual,
                                                       accounts.INTEREST_RECEIVABLE))
         .values(loan_id=None))

    assert "loan_ids" in _failed(session)  # and the loan's cached interest no longer matches


def test_a_cached_balance_off_its_entries_fails(runner: Any, session: Any,
                                                books: Books) -> None:
    _sql(session, sa.update(Loan).where(Loan.id == books.loan.id)
         .values(interest_outstanding_fen=Loan.interest_outstanding_fen + 7))

    result = runner.invoke(args=["ledger", "check"])

    assert result.exit_code == 1
    assert "FAIL  cached_balances" in result.output
    assert str(books.loan.public_id) in result.output
    assert "result: 1 of 14 invariants fail" in result.output
    assert _failed(session) == {"cached_balances"}


def test_negative_principal_owed_fails(session: Any, books: Books) -> None:
    """Principal repaid twice over: the entries and the cache agree, and both are negative."""
    loan = books.loan
    entry = _entry(session, session.get(JournalTransaction, books.repayment.journal_id),
                   accounts.LOAN_PRINCIPAL)
    clearing = _entry(session, session.get(JournalTransaction, books.repayment.journal_id),
                      accounts.REPAYMENT_CLEARING)
    extra = AMOUNT  # the repayment's principal credit grows beyond what was lent
    _sql(session, sa.update(E).where(E.c.id == entry).values(amount_fen=E.c.amount_fen - extra))
    _sql(session, sa.update(E).where(E.c.id == clearing)
         .values(amount_fen=E.c.amount_fen + extra))
    _sql(session, sa.update(Loan).where(Loan.id == loan.id)
         .values(principal_outstanding_fen=Loan.principal_outstanding_fen - extra))
    _sql(session, sa.update(Repayment).where(Repayment.id == books.repayment.id)
         .values(principal_fen=Repayment.principal_fen + extra,
                 amount_fen=Repayment.amount_fen + extra))

    assert _failed(session) == {"non_negative"}


def test_a_negative_overpaid_cache_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(Loan).where(Loan.id == books.settled.id).values(overpaid_fen=-300))

    assert _failed(session) == {"non_negative", "cached_balances"}


def test_a_disbursement_booked_for_another_amount_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(Disbursement).where(Disbursement.id == books.disbursement.id)
         .values(amount_fen=AMOUNT + 1))

    assert _failed(session) == {"disbursements"}


def test_an_authorised_disbursement_without_its_journal_fails(session: Any,
                                                              books: Books) -> None:
    _sql(session, sa.update(J).where(J.c.id == books.disbursement.journal_id)
         .values(reference="somebody-else"))

    assert _failed(session) == {"disbursements", "disbursement_journals"}


def test_a_disbursement_pointing_at_another_journal_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(Disbursement).where(Disbursement.id == books.disbursement.id)
         .values(journal_id=books.accrual.id))

    assert _failed(session) == {"disbursements"}


def test_a_repayment_allocated_otherwise_than_posted_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(Repayment).where(Repayment.id == books.repayment.id)
         .values(interest_fen=Repayment.interest_fen + 1,
                 principal_fen=Repayment.principal_fen - 1))  # still sums to the amount

    assert _failed(session) == {"repayments"}


def test_a_repayment_whose_allocation_misses_its_amount_fails(session: Any,
                                                              books: Books) -> None:
    _sql(session, sa.update(Repayment).where(Repayment.id == books.repayment.id)
         .values(amount_fen=Repayment.amount_fen + 100))

    assert _failed(session) == {"repayments"}


def test_a_repayment_without_its_journal_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(Repayment).where(Repayment.id == books.repayment.id)
         .values(journal_id=None))

    assert _failed(session) == {"repayments"}


def test_a_reversal_of_other_entries_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(J).where(J.c.id == books.reversal.id)
         .values(reverses_id=books.other_accrual.id))  # 999 fen reversed, 3,000 named

    assert _failed(session) == {"reversals"}


def test_a_reversal_of_nothing_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(J).where(J.c.id == books.reversal.id).values(reverses_id=None))

    assert _failed(session) == {"reversals"}


def test_an_installment_paid_beyond_its_principal_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(Installment).where(Installment.id == books.installment.id)
         .values(principal_paid_fen=AMOUNT + 1))

    assert _failed(session) == {"installments"}


def test_a_settled_loan_that_owes_fails(session: Any, books: Books) -> None:
    _sql(session, sa.update(Loan).where(Loan.id == books.loan.id).values(status="settled"))

    assert _failed(session) == {"settled_loans"}


def test_a_ledger_that_does_not_sum_to_zero_fails(runner: Any, session: Any,
                                                  books: Books) -> None:
    _sql(session, sa.update(E).where(E.c.id == _entry(session, books.accrual,
                                                       accounts.INTEREST_INCOME))
         .values(amount_fen=E.c.amount_fen + 5))

    result = runner.invoke(args=["ledger", "check", "--json"])

    assert result.exit_code == 1
    report = json.loads(result.output)
    assert set(report["failed"]) == {"balanced", "ledger_total"}
    (total,) = [item for item in report["invariants"] if item["name"] == "ledger_total"]
    assert total["examples"] == [{"sum_fen": 5}]


def test_examples_are_capped(session: Any, books: Books) -> None:
    _sql(session, sa.update(Loan).values(principal_outstanding_fen=Loan.principal_outstanding_fen
                                         + 1))

    report = check.run(session, examples=1)

    (cached,) = [f for f in report.findings if f.name == "cached_balances"]
    assert (cached.failures, len(cached.examples)) == (2, 1)
