"""Relief cases and reschedules.

A :class:`ReliefCase` is a proposal to restructure one loan: opened by the relief poll when the
insurance registry reports an assessed claim on the loan's crop above the configured loss
ratio (kind ``insurance``: the loan's ageing and penalties pause while it is open), or by staff
by hand (kind ``manual``). Four eyes decide it: ``proposed -> recommended -> approved |
rejected``. ``(loan_id, claim_reference)`` is unique: one claim never opens two cases.

A :class:`LoanReschedule` keeps a reschedule's history: the schedule before and after, as JSON,
so the installment rows themselves can be replaced while ``(loan_id, seq)`` stays unique.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.authz import Principal
from core.db import Fen, Model, Timestamp, fk
from core.people.models import Staff
from lending.servicing.models import Loan

INSURANCE: Final = "insurance"
MANUAL: Final = "manual"
KINDS: Final = (INSURANCE, MANUAL)

PROPOSED: Final = "proposed"
RECOMMENDED: Final = "recommended"
APPROVED: Final = "approved"
REJECTED: Final = "rejected"
STATUSES: Final = (PROPOSED, RECOMMENDED, APPROVED, REJECTED)
OPEN: Final = (PROPOSED, RECOMMENDED)


class ReliefCase(Model):
    """A proposed restructure of one loan, with the claim behind it and the four eyes on it."""

    __tablename__ = "relief_cases"
    __noun__ = "relief case"
    __table_args__ = (sa.UniqueConstraint("loan_id", "claim_reference"),
                      sa.Index("ix_relief_cases_status", "status"))

    loan_id: Mapped[int] = fk("loans.id", index=True)
    loan: Mapped[Loan] = relationship()
    kind: Mapped[str] = mapped_column(sa.String(10))  # insurance | manual
    status: Mapped[str] = mapped_column(sa.String(12), default=PROPOSED)
    # the claim (insurance): "<policy>:<event>:<event date>", and the registry's record of it
    claim_reference: Mapped[str | None] = mapped_column(sa.String(120), nullable=True)
    claim: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    opened_on: Mapped[date] = mapped_column(sa.Date)  # the business date
    opened_by: Mapped[str] = mapped_column(sa.String(80))  # system | staff:<id>
    reason: Mapped[str] = mapped_column(sa.String(500), default="")
    # the proposal: the new maturity (None for a line: no schedule) and the penalty waiver
    proposed_maturity_date: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    waive_penalties: Mapped[bool] = mapped_column(default=True)
    penalty_at_opening_fen: Mapped[Fen] = mapped_column(default=0)
    paused_loan: Mapped[bool] = mapped_column(default=False)  # this case paused the loan
    # the four eyes
    recommended_by_id: Mapped[int | None] = fk("staff.id", nullable=True)
    recommended_by: Mapped[Staff | None] = relationship(foreign_keys=[recommended_by_id])
    recommended_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    recommendation_reason: Mapped[str] = mapped_column(sa.String(500), default="")
    decided_by_id: Mapped[int | None] = fk("staff.id", nullable=True)
    decided_by: Mapped[Staff | None] = relationship(foreign_keys=[decided_by_id])
    decided_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    decided_on: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    decision_reason: Mapped[str] = mapped_column(sa.String(500), default="")
    # what approval did
    waived_fen: Mapped[Fen] = mapped_column(default=0)
    journal_id: Mapped[int | None] = fk("journal_transactions.id", nullable=True)
    reschedule: Mapped[LoanReschedule | None] = relationship(back_populates="case",
                                                             uselist=False)

    @property
    def proposal(self) -> ReliefCase:
        """The proposal's fields, as the API nests them."""
        return self

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        """Staff only (a case is the bank's work; the farmer sees the loan)."""
        return sa.true() if principal.is_staff else sa.false()


class LoanReschedule(Model):
    """One reschedule of a loan: the installments before and after, and who approved it."""

    __tablename__ = "loan_reschedules"
    __noun__ = "reschedule"

    loan_id: Mapped[int] = fk("loans.id", index=True)
    case_id: Mapped[int] = fk("relief_cases.id", unique=True)
    case: Mapped[ReliefCase] = relationship(back_populates="reschedule")
    business_date: Mapped[date] = mapped_column(sa.Date)
    old_maturity_date: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    new_maturity_date: Mapped[date] = mapped_column(sa.Date)
    principal_fen: Mapped[Fen]  # the principal rescheduled (outstanding then)
    old_schedule: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    new_schedule: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    approved_by_id: Mapped[int] = fk("staff.id")
    approved_at: Mapped[Timestamp]
