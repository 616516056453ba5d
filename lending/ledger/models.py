"""Journal transactions and their entries.

An entry's ``amount_fen`` is signed: a debit is positive, a credit negative, so a transaction is
balanced when its entries sum to zero and an account's balance is the plain sum of its entries
(debit-normal accounts positive, credit-normal accounts negative). Entries that belong to one
loan carry its ``loan_id``; bank-level entries (income, clearing) carry none.

``(kind, reference)`` is unique: posting the same money event twice (a retried request, a
re-run job) hits the constraint instead of moving money twice. ``reverses_id`` is unique too: a
transaction is reversed at most once.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, Fen, IntPK, Model, fk


class JournalTransaction(Model):
    """One money event: a disbursement, a repayment, a day's accrual for a chunk of loans, a
    waiver, a reversal."""

    __tablename__ = "journal_transactions"
    __table_args__ = (sa.UniqueConstraint("kind", "reference"),
                      sa.Index("ix_journal_transactions_date", "business_date"))

    kind: Mapped[str] = mapped_column(sa.String(30))
    reference: Mapped[str] = mapped_column(sa.String(120))
    business_date: Mapped[date] = mapped_column(sa.Date)
    # the loan it concerns; None for a batch over many loans (a day's accrual chunk)
    loan_id: Mapped[int | None] = fk("loans.id", nullable=True, index=True)
    reverses_id: Mapped[int | None] = fk("journal_transactions.id", nullable=True, unique=True)
    actor: Mapped[str] = mapped_column(sa.String(80))
    memo: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    entries: Mapped[list[JournalEntry]] = relationship(
        back_populates="journal", order_by="JournalEntry.id")


class JournalEntry(Base):
    """One line of a transaction: an account, optionally a loan, a signed amount in fen.

    No public id and no timestamp of its own (its transaction has both): a day's accrual writes
    one entry per loan with a single ``INSERT ... SELECT``.
    """

    __tablename__ = "journal_entries"
    __table_args__ = (sa.CheckConstraint("amount_fen <> 0", name="nonzero"),
                      sa.Index("ix_journal_entries_loan_account", "loan_id", "account"),
                      sa.Index("ix_journal_entries_journal", "journal_id"))

    id: Mapped[IntPK]
    journal_id: Mapped[int] = fk("journal_transactions.id")
    journal: Mapped[JournalTransaction] = relationship(back_populates="entries")
    account: Mapped[str] = mapped_column(sa.String(40))
    loan_id: Mapped[int | None] = fk("loans.id", nullable=True)
    amount_fen: Mapped[Fen]  # debit > 0, credit < 0
