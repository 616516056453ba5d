"""What the daily job keeps besides the loans: the reminders it queued (so a re-run sends none
twice) and the portfolio-at-risk snapshot of each business date, per village."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Fen, IntPK, Timestamp, fk, table, utcnow
from lending.servicing.models import Installment

# Finds a loan's unpaid installments (oldest due, overdue principal) by loan: the daily job's
# correlated lookups go through it.
ix_installments_unpaid = sa.Index("ix_loan_installments_loan_unpaid",
                                  table(Installment).c.loan_id, table(Installment).c.paid_on,
                                  table(Installment).c.due_date)

BEFORE = "before"  # an installment due in ``offset`` days
AFTER = "after"  # an installment missed ``offset`` days ago


class ReminderSent(Base):
    """One reminder SMS queued for an installment: ``(installment, kind, offset)`` once."""

    __tablename__ = "loan_reminders"
    __table_args__ = (sa.UniqueConstraint("installment_id", "kind", "offset_days"),
                      sa.Index("ix_loan_reminders_pending", "queued", "loan_id"))

    id: Mapped[IntPK]
    installment_id: Mapped[int] = fk("loan_installments.id")
    loan_id: Mapped[int] = fk("loans.id")
    kind: Mapped[str] = mapped_column(sa.String(10))  # before | after
    offset_days: Mapped[int]
    business_date: Mapped[date] = mapped_column(sa.Date)
    # its SMS is in the outbox (set in the same transaction that writes it there)
    queued: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class PortfolioSnapshot(Base):
    """A village's active loans on a business date: outstanding principal by bucket, PAR30."""

    __tablename__ = "portfolio_snapshots"
    __table_args__ = (sa.UniqueConstraint("business_date", "village_id"),)

    id: Mapped[IntPK]
    business_date: Mapped[date] = mapped_column(sa.Date)
    village_id: Mapped[int] = fk("villages.id", index=True)
    loans: Mapped[int]
    outstanding_fen: Mapped[Fen]
    current_fen: Mapped[Fen]
    dpd_1_30_fen: Mapped[Fen]
    dpd_31_60_fen: Mapped[Fen]
    dpd_61_90_fen: Mapped[Fen]
    dpd_90_plus_fen: Mapped[Fen]
    par30_fen: Mapped[Fen]  # principal of loans more than 30 days past due
    created_at: Mapped[Timestamp] = mapped_column(default=utcnow)
