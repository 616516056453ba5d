"""The payout port: how a booked disbursement reaches the farmer, and what the bank's core
system answers.

:func:`lending.servicing.disbursement.book` hands every booked disbursement to the app's
:class:`PayoutAdapter` (:func:`adapter`; ``app.extensions["nongdai_payout_adapter"]``, the
:class:`OutboxAdapter` unless a deployment installs another). The outbox adapter writes a
:class:`~lending.servicing.models.PayoutInstruction` (``pending``) in the booking's own
transaction, so an instruction exists exactly when the money is booked. The core system
collects the outbox one of two ways:

- over the API: ``GET /payouts?status=pending``; ``POST /payouts/export`` takes every pending
  instruction into a batch (``exported``), and the same batch id sent again answers the same
  batch, so a retried collection never loses or doubles one;
- as a file: ``flask payouts export`` writes the pending instructions to a CSV file in
  ``NONGDAI_PAYOUT_EXPORT_DIR`` and marks them exported in the same transaction.

An instruction then ends ``confirmed`` or ``failed`` (from ``pending`` or ``exported``; a
collector that reads the API may answer without a batch), each once, by a conditional UPDATE:

- **confirm** (``core_reference``): the money left the bank's settlement account. Posts
  D payout_clearing / C core_settlement (kind ``payout_confirm``, the instruction's id as the
  reference). The same answer again is a no-op; another reference is 409.
- **fail** (``reason``): the money never left the bank, so the farmer owes nothing for it.
  The disbursement's journal is reversed (``posting.reverse``), the disbursement and the
  instruction are ``failed``, and the farmer is told. A term loan goes back to ``accepted`` as
  if never disbursed: its schedule is removed, ``disbursed_on``/``maturity_date`` cleared, and
  any interest or penalty accrued since the booking written off in one ``payout_failed``
  journal (D interest_income / C interest_receivable, likewise for penalty); staff fix the
  payee's details and initiate a new disbursement (the next ``seq``), again with four eyes.
  If the farmer has already repaid on that term loan, the unwinding is refused
  (409 ``payout-repaid``): money came in against money that never went out, and staff must
  correct it by hand. A line draw is reversed and the line stays active; its amount comes off
  the line's installments (:func:`lending.servicing.lines.undo_draw`), and principal repaid
  beyond what is still drawn becomes an overpayment (the farmer's credit, to refund). Interest
  the line accrued on the failed draw in the meantime is not recomputed here.

Either way the ledger stays balanced and money moves once: the conditional UPDATE and the
journal's unique ``(kind, reference)`` stop a second answer from posting twice.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import date
from pathlib import Path
from typing import Any, Final, Protocol

import sqlalchemy as sa
from flask import current_app

from core import audit, outbox
from core.db import DbSession, rowcount, table, utcnow, uuid7
from core.errors import Conflict
from core.i18n import _, in_locale, lazy_gettext
from lending.ledger import accounts, posting
from lending.ledger.models import JournalTransaction
from lending.products.services import yuan
from lending.servicing.disbursement_presenting import public_ids
from lending.servicing.models import (
    ACCEPTED,
    Disbursement,
    Installment,
    Loan,
    PayoutInstruction,
    Repayment,
)

PENDING: Final = "pending"
EXPORTED: Final = "exported"
CONFIRMED: Final = "confirmed"
FAILED: Final = "failed"
STATUSES: Final = (PENDING, EXPORTED, CONFIRMED, FAILED)
OPEN: Final = (PENDING, EXPORTED)
CSV_COLUMNS: Final = ("instruction_id", "loan_id", "amount_fen", "payee_name",
                      "id_number_masked", "phone", "created_at")


class PayoutAnswered(Conflict):
    code = "payout-answered"
    title = lazy_gettext("The core system has already answered for this payout")


class PayoutRepaid(Conflict):
    code = "payout-repaid"
    title = lazy_gettext("Repayments were booked against this payout: staff must correct it")


class PayoutAdapter(Protocol):
    """Pays a booked disbursement out: called by ``book()`` in the booking's transaction."""

    def instruct(self, session: DbSession, disbursement: Disbursement,
                 loan: Loan) -> PayoutInstruction | None: ...


class OutboxAdapter:
    """The default: a pending :class:`PayoutInstruction` the core system collects."""

    def instruct(self, session: DbSession, disbursement: Disbursement,
                 loan: Loan) -> PayoutInstruction:
        farmer = loan.farmer
        row = PayoutInstruction(
            disbursement_id=disbursement.id, loan_id=loan.id, amount_fen=disbursement.amount_fen,
            payee={"name": farmer.name, "id_number_masked": farmer.id_number_masked,
                   "phone": farmer.phone}, status=PENDING)
        session.add(row)
        session.flush()
        return row


def adapter() -> PayoutAdapter:
    """The app's payout adapter."""
    found: PayoutAdapter = current_app.extensions["nongdai_payout_adapter"]
    return found


# --- collection -------------------------------------------------------------------------------

def listing(status: str | None) -> sa.Select[Any]:
    stmt = sa.select(PayoutInstruction)
    return stmt.where(PayoutInstruction.status == status) if status else stmt


def new_batch(today: date) -> str:
    return f"{today:%Y%m%d}-{uuid7().hex[-12:]}"


def export(session: DbSession, *, batch: str,
           actor: str) -> tuple[list[PayoutInstruction], bool]:
    """Take every pending instruction into ``batch`` (exported), or, when ``batch`` exists
    already, answer it as it was: a retried collection gets the same instructions. (A batch
    that took nothing leaves no trace: its id, sent again, takes what is pending then.) The
    instructions, and whether this call made the batch."""
    done = _batch(session, batch)
    if done:
        return done, False
    claimed = session.execute(
        sa.update(_table).where(_table.c.status == PENDING)
        .values(status=EXPORTED, batch=batch, exported_at=utcnow()))
    rows = _batch(session, batch)
    audit.record(session, "payout.export", batch, actor=actor,
                 summary={"batch": batch, "count": rowcount(claimed),
                          "amount_fen": sum(r.amount_fen for r in rows)})
    return rows, True


def _batch(session: DbSession, batch: str) -> list[PayoutInstruction]:
    return list(session.scalars(
        sa.select(PayoutInstruction).where(PayoutInstruction.batch == batch)
        .order_by(PayoutInstruction.id).execution_options(populate_existing=True)))


def csv_text(session: DbSession, rows: list[PayoutInstruction]) -> str:
    """The file the core system imports: one line per instruction, amounts in fen."""
    loans = public_ids(session, Loan, {r.loan_id for r in rows})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([r.public_id, loans[r.loan_id], r.amount_fen, r.payee["name"],
                         r.payee["id_number_masked"], r.payee["phone"],
                         r.created_at.isoformat()])
    return out.getvalue()


def write_file(folder: Path, batch: str, text: str) -> Path:
    """Write ``text`` to ``folder/payouts-<batch>.csv`` durably (a temporary file renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"payouts-{batch}.csv"
    partial = target.with_suffix(".csv.part")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(target)
    return target


# --- the core system's answer -----------------------------------------------------------------

def confirm(session: DbSession, instruction: PayoutInstruction, *, core_reference: str,
            business_date: date, actor: str) -> tuple[PayoutInstruction, bool]:
    """The core system paid it: D payout_clearing / C core_settlement, once. The
    instruction, and whether this call confirmed it (not a repeated answer)."""
    if not _answer(session, instruction, CONFIRMED, core_reference=core_reference,
                   confirmed_at=utcnow()):
        if instruction.status == CONFIRMED and instruction.core_reference == core_reference:
            return instruction, False  # the same answer delivered again
        raise PayoutAnswered(_("This payout is already %(status)s",
                               status=instruction.status))
    amount = instruction.amount_fen
    posting.post(session, kind="payout_confirm", reference=str(instruction.public_id),
                 business_date=business_date, actor=actor, loan_id=instruction.loan_id,
                 lines=[posting.Line(accounts.PAYOUT_CLEARING, amount),
                        posting.Line(accounts.CORE_SETTLEMENT, -amount)],
                 memo={"core_reference": core_reference})
    audit.record(session, "payout.confirm", instruction, actor=actor,
                 summary={"core_reference": core_reference, "amount_fen": amount})
    return instruction, True


def fail(session: DbSession, instruction: PayoutInstruction, *, reason: str,
         business_date: date, actor: str) -> tuple[PayoutInstruction, bool]:
    """The core system could not pay it: unwind the disbursement (see the module docstring).
    The instruction, and whether this call failed it (not a repeated answer)."""
    if instruction.status == FAILED:
        return instruction, False  # the same answer delivered again
    if instruction.status not in OPEN:
        raise PayoutAnswered(_("This payout is already %(status)s",
                               status=instruction.status))
    disbursement = session.get_one(Disbursement, instruction.disbursement_id)
    loan = disbursement.loan
    session.execute(sa.select(Loan.id).where(Loan.id == loan.id).with_for_update())
    if loan.kind == "term" and _repaid(session, loan):
        raise PayoutRepaid(_("The farmer has repaid on this loan; correct it by hand"))
    if not _answer(session, instruction, FAILED):
        raise PayoutAnswered(_("This payout is already %(status)s",
                               status=instruction.status))
    journal = session.get_one(JournalTransaction, disbursement.journal_id)
    posting.reverse(session, journal, business_date=business_date, actor=actor,
                    memo={"payout_failed": str(instruction.public_id), "reason": reason})
    disbursement.status = FAILED
    session.refresh(loan)
    if loan.kind == "term":
        corrections = _undo_term(session, loan)
    else:
        from lending.servicing import lines  # noqa: PLC0415 - lines import disbursement, which imports us

        lines.undo_draw(session, disbursement, business_date)
        corrections = _excess_repaid(loan)
    if corrections:
        posting.post(session, kind="payout_failed", reference=str(instruction.public_id),
                     business_date=business_date, actor=actor, loan_id=loan.id,
                     lines=corrections, memo={"reason": reason})
    audit.record(session, "payout.fail", instruction, actor=actor, summary={
        "reason": reason, "amount_fen": instruction.amount_fen,
        "disbursement_id": str(disbursement.public_id), "loan_status": loan.status})
    _tell_failed(session, loan, instruction.amount_fen)
    return instruction, True


def _answer(session: DbSession, instruction: PayoutInstruction, target: str,
            **values: Any) -> bool:
    moved = session.execute(
        sa.update(_table).where(_table.c.id == instruction.id, _table.c.status.in_(OPEN))
        .values(status=target, **values))
    session.refresh(instruction)
    return rowcount(moved) == 1


def _repaid(session: DbSession, loan: Loan) -> bool:
    return bool(session.scalar(sa.select(sa.exists().where(Repayment.loan_id == loan.id))))


def _undo_term(session: DbSession, loan: Loan) -> list[posting.Line]:
    """Back to accepted, as if never disbursed; the accrued interest and penalty to write
    off (the money never reached the farmer)."""
    lines = []
    if loan.interest_outstanding_fen:
        lines += [posting.Line(accounts.INTEREST_INCOME, loan.interest_outstanding_fen),
                  posting.Line(accounts.INTEREST_RECEIVABLE, -loan.interest_outstanding_fen,
                               loan.id)]
    if loan.penalty_outstanding_fen:
        lines += [posting.Line(accounts.PENALTY_INCOME, loan.penalty_outstanding_fen),
                  posting.Line(accounts.PENALTY_RECEIVABLE, -loan.penalty_outstanding_fen,
                               loan.id)]
    session.execute(sa.delete(Installment).where(Installment.loan_id == loan.id))
    session.expire(loan, ["installments"])
    for name, value in {"status": ACCEPTED, "disbursed_on": None, "maturity_date": None,
                        "accrued_through": None, "interest_carry": 0, "penalty_carry": 0,
                        "dpd": 0, "bucket": "current", "oldest_due_date": None,
                        "aged_through": None}.items():
        setattr(loan, name, value)
    return lines


def _excess_repaid(loan: Loan) -> list[posting.Line]:
    """A line whose failed draw was partly repaid already: that money is the farmer's."""
    excess = -loan.principal_outstanding_fen
    if excess <= 0:
        return []
    return [posting.Line(accounts.LOAN_PRINCIPAL, excess, loan.id),
            posting.Line(accounts.OVERPAYMENT, -excess, loan.id)]


def _tell_failed(session: DbSession, loan: Loan, amount_fen: int) -> None:
    farmer = loan.farmer
    with in_locale(farmer.language):
        body = _("[Nongdai] The payment of %(amount)s yuan to your account did not go "
                 "through. You owe nothing for it; the bank will contact you.",
                 amount=yuan(amount_fen))
    outbox.queue_sms(session, farmer.phone, body)


_table = table(PayoutInstruction)
