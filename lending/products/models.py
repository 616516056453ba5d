"""Loan products as data: what the bank offers, to whom, on which terms.

A product is read when an application is submitted, and the application keeps a snapshot of
its terms (:func:`lending.products.services.terms_snapshot`): changing a product changes the
offer for new applications only, never an application already made or a loan already running.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.authz import Principal
from core.db import Fen, Model

# bullet at harvest | monthly interest, principal at maturity | equal instalments | revolving line
REPAYMENT_TYPES = ("bullet_at_harvest", "interest_monthly_principal_at_maturity",
                   "equal_instalments", "revolving_line")
# How servicing turns the annual rate into daily interest. RMB loans in China conventionally
# use ACT/360 (daily rate = annual rate / 360, PBoC rules on RMB interest rates).
DAY_COUNTS = ("ACT/360", "ACT/365", "30/360")
# Sane bounds, not policy: 24 % a year is the ceiling Chinese courts protect for lending
# interest; a billion yuan and thirty years are past any rural product (and keep amounts far
# inside a 64-bit column).
MAX_RATE_BP = 2400
MAX_AMOUNT_FEN = 100_000_000_000
MAX_TERM_MONTHS = 360


class LoanProduct(Model):
    """A loan product. Amounts in fen, terms in months, the rate in basis points a year.

    For a revolving line (随借随还) ``max_term_months`` is the life of the line: the farmer
    draws and repays at will within the limit until it ends.
    """

    __tablename__ = "loan_products"
    __noun__ = "loan product"

    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str] = mapped_column(sa.String(500), default="")  # for the farmer
    repayment_type: Mapped[str] = mapped_column(sa.String(40))
    min_amount_fen: Mapped[Fen]
    max_amount_fen: Mapped[Fen]
    min_term_months: Mapped[int]
    max_term_months: Mapped[int]
    annual_rate_bp: Mapped[int]  # 435 = 4.35 % a year
    grace_months: Mapped[int] = mapped_column(default=0)
    day_count: Mapped[str] = mapped_column(sa.String(10), default="ACT/360")
    crops: Mapped[list[str]] = mapped_column(sa.JSON)  # crop codes it finances; [] = any
    county_codes: Mapped[list[str]] = mapped_column(sa.JSON)  # 6-digit codes it serves
    auto_ceiling_fen: Mapped[Fen]  # above this amount a person decides
    is_active: Mapped[bool] = mapped_column(default=True)

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        """Staff see every product; farmers and coordinators the ones on offer."""
        return sa.true() if principal.is_staff else cls.is_active.is_(True)
