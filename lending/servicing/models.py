"""Loans after acceptance: the loan account, its schedule, its disbursements and payout
instructions, and the repayments booked against it.

A loan comes from an approved application when the farmer accepts the offer (one loan per
application, a unique constraint). A revolving household line (随借随还) is a loan of kind
``line``: its ``limit_fen`` can be drawn in parts (each draw a :class:`Disbursement`) until
``line_ends_on``.

The four balance columns (``principal_outstanding_fen``, ``interest_outstanding_fen``,
``penalty_outstanding_fen``, ``overpaid_fen``) are a cache of the loan's ledger accounts, kept
in step by :mod:`lending.ledger.posting` (and by the daily job's set-based postings): only code
that posts journal entries changes them, in the same transaction. ``flask ledger check``
compares them with the entries.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.authz import Principal, village_condition
from core.db import Fen, Model, Timestamp, fk, utcnow
from core.people.models import Farmer

# loan status: accepted (waiting for disbursement) -> active -> settled; accepted -> cancelled
ACCEPTED = "accepted"
ACTIVE = "active"
SETTLED = "settled"
CANCELLED = "cancelled"
LOAN_STATUSES = (ACCEPTED, ACTIVE, SETTLED, CANCELLED)
BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")


class Loan(Model):
    """A loan account (kind ``term``) or a revolving line (kind ``line``)."""

    __tablename__ = "loans"
    __noun__ = "loan"
    __table_args__ = (
        sa.Index("ix_loans_status", "status"),
        sa.Index("ix_loans_village_bucket", "village_id", "bucket"),
    )

    application_id: Mapped[int] = fk("loan_applications.id", unique=True)
    farmer_id: Mapped[int] = fk("farmers.id", index=True)
    farmer: Mapped[Farmer] = relationship()
    village_id: Mapped[int] = fk("villages.id")
    product_id: Mapped[int] = fk("loan_products.id")
    kind: Mapped[str] = mapped_column(sa.String(10))  # term | line
    repayment_type: Mapped[str] = mapped_column(sa.String(40))
    crop: Mapped[str] = mapped_column(sa.String(30))
    county_code: Mapped[str] = mapped_column(sa.String(6))
    # the product's terms as the application kept them (rate, grace, day count, ...)
    terms: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    principal_fen: Mapped[Fen]  # the approved amount; for a line, the limit at grant
    term_months: Mapped[int]
    annual_rate_bp: Mapped[int]
    penalty_rate_bp: Mapped[int]
    day_count: Mapped[str] = mapped_column(sa.String(10))
    grace_months: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(sa.String(12), default=ACCEPTED)
    accepted_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    disbursed_on: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    maturity_date: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    settled_on: Mapped[date | None] = mapped_column(sa.Date, nullable=True)

    # revolving line: current limit, frozen by a review, end of the line, next annual review
    limit_fen: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    line_frozen: Mapped[bool] = mapped_column(default=False)
    line_ends_on: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    next_review_on: Mapped[date | None] = mapped_column(sa.Date, nullable=True)

    # balances: a cache of the loan's ledger accounts (see the module docstring)
    principal_outstanding_fen: Mapped[Fen] = mapped_column(default=0)
    interest_outstanding_fen: Mapped[Fen] = mapped_column(default=0)
    penalty_outstanding_fen: Mapped[Fen] = mapped_column(default=0)
    overpaid_fen: Mapped[Fen] = mapped_column(default=0)
    # daily accrual: what is below one fen carries to the next day (numerators, see daily.py)
    interest_carry: Mapped[Fen] = mapped_column(default=0)
    penalty_carry: Mapped[Fen] = mapped_column(default=0)
    accrued_through: Mapped[date | None] = mapped_column(sa.Date, nullable=True)

    # delinquency, as of the last business date the daily job ran
    dpd: Mapped[int] = mapped_column(default=0)
    bucket: Mapped[str] = mapped_column(sa.String(10), default="current")
    oldest_due_date: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    aged_through: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    # insurance relief: ageing and penalties paused while a relief case is open
    relief_paused: Mapped[bool] = mapped_column(default=False)

    installments: Mapped[list[Installment]] = relationship(
        back_populates="loan", order_by="Installment.seq")

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        """A farmer sees their own loans, a coordinator their villages', staff all."""
        return village_condition(cls.village_id, principal, own=lambda p: cls.farmer_id == p.id)


class Installment(Model):
    """One due date of a loan's schedule: principal and interest due, and what is paid."""

    __tablename__ = "loan_installments"
    __noun__ = "installment"
    __table_args__ = (sa.UniqueConstraint("loan_id", "seq"),
                      sa.Index("ix_loan_installments_due", "due_date", "paid_on"))

    loan_id: Mapped[int] = fk("loans.id")
    loan: Mapped[Loan] = relationship(back_populates="installments")
    seq: Mapped[int]
    due_date: Mapped[date] = mapped_column(sa.Date)
    principal_due_fen: Mapped[Fen]
    interest_due_fen: Mapped[Fen]  # as scheduled; interest accrues daily in the ledger
    principal_paid_fen: Mapped[Fen] = mapped_column(default=0)
    interest_paid_fen: Mapped[Fen] = mapped_column(default=0)
    paid_on: Mapped[date | None] = mapped_column(sa.Date, nullable=True)  # fully paid


class Disbursement(Model):
    """A payout of a loan (seq 1, the only one) or a draw on a line (seq 1, 2, ...).

    ``(loan_id, seq)`` is unique, and a term loan is only ever disbursed with seq 1: two
    concurrent attempts cannot both pay out.
    """

    __tablename__ = "loan_disbursements"
    __noun__ = "disbursement"
    __table_args__ = (sa.UniqueConstraint("loan_id", "seq"),)

    loan_id: Mapped[int] = fk("loans.id")
    loan: Mapped[Loan] = relationship()
    seq: Mapped[int]
    amount_fen: Mapped[Fen]
    status: Mapped[str] = mapped_column(sa.String(12))  # initiated | authorised | rejected
    initiated_by: Mapped[str] = mapped_column(sa.String(80))  # actor: staff:<id> | farmer:<id>
    initiated_by_staff_id: Mapped[int | None] = fk("staff.id", nullable=True)
    authorised_by_staff_id: Mapped[int | None] = fk("staff.id", nullable=True)
    authorised_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    business_date: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    journal_id: Mapped[int | None] = fk("journal_transactions.id", nullable=True)
    reason: Mapped[str] = mapped_column(sa.String(500), default="")


class PayoutInstruction(Model):
    """An instruction to the bank's core system to pay a disbursement to the farmer: the
    default payout adapter's outbox, collected by file export or over the API."""

    __tablename__ = "payout_instructions"
    __noun__ = "payout instruction"
    __table_args__ = (sa.Index("ix_payout_instructions_status", "status"),)

    disbursement_id: Mapped[int] = fk("loan_disbursements.id", unique=True)
    loan_id: Mapped[int] = fk("loans.id")
    amount_fen: Mapped[Fen]
    payee: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # name, masked id, phone
    status: Mapped[str] = mapped_column(sa.String(12), default="pending")
    batch: Mapped[str | None] = mapped_column(sa.String(60), nullable=True)
    exported_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    confirmed_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    core_reference: Mapped[str | None] = mapped_column(sa.String(80), nullable=True)


class Repayment(Model):
    """Money received for a loan, and how it was allocated (penalty, interest, principal,
    then overpayment). ``(channel, reference)`` is unique: a payment channel's notification
    delivered twice books once."""

    __tablename__ = "loan_repayments"
    __noun__ = "repayment"
    __table_args__ = (sa.UniqueConstraint("channel", "reference"),)

    loan_id: Mapped[int] = fk("loans.id", index=True)
    loan: Mapped[Loan] = relationship()
    channel: Mapped[str] = mapped_column(sa.String(30))  # a payment channel's code | branch
    reference: Mapped[str] = mapped_column(sa.String(80))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))  # the notification's content
    amount_fen: Mapped[Fen]
    received_at: Mapped[Timestamp]
    business_date: Mapped[date] = mapped_column(sa.Date)
    penalty_fen: Mapped[Fen] = mapped_column(default=0)
    interest_fen: Mapped[Fen] = mapped_column(default=0)
    principal_fen: Mapped[Fen] = mapped_column(default=0)
    overpaid_fen: Mapped[Fen] = mapped_column(default=0)
    recorded_by_staff_id: Mapped[int | None] = fk("staff.id", nullable=True)
    journal_id: Mapped[int | None] = fk("journal_transactions.id", nullable=True)
