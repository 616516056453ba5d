"""The revolving line's review history: one row per annual review action (renew, lower,
freeze, unfreeze) and per automatic freeze when a review date passed (``lapse``).

A row is never edited: the line's current state is on its :class:`Loan` (``limit_fen``,
``line_frozen``, ``next_review_on``); the rows say who changed it, when, from what, and why.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.authz import Principal
from core.db import Fen, Model, fk
from core.people.models import Staff
from lending.servicing.models import Loan

REASON_MAX = 500


class LineReview(Model):
    """One review action on a revolving line, with the state before and after it."""

    __tablename__ = "line_reviews"
    __noun__ = "line review"

    loan_id: Mapped[int] = fk("loans.id", index=True)
    loan: Mapped[Loan] = relationship()
    action: Mapped[str] = mapped_column(sa.String(10))  # renew|lower|freeze|unfreeze|lapse
    staff_id: Mapped[int | None] = fk("staff.id", nullable=True)  # None: the daily job
    staff: Mapped[Staff | None] = relationship()
    actor: Mapped[str] = mapped_column(sa.String(80))  # staff:<uuid> | system
    business_date: Mapped[date] = mapped_column(sa.Date)
    old_limit_fen: Mapped[Fen]
    new_limit_fen: Mapped[Fen]
    was_frozen: Mapped[bool]
    frozen: Mapped[bool]
    old_review_on: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    new_review_on: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    reason: Mapped[str] = mapped_column(sa.String(REASON_MAX))

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        """Whoever sees the line sees its reviews."""
        return cls.loan_id.in_(sa.select(Loan.id).where(Loan.visible_to(principal)))
