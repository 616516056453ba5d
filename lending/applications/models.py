"""Loan applications, the decisions taken on them, field checks and staff review.

An application belongs to a farmer and, for scoping, to the farmer's village (copied when the
application is created, so a coordinator's queue is one indexed condition). Its ``state`` only
changes through :func:`lending.applications.states.move`, the one place that knows the
machine. A decision, a field check and a review action are immutable once written: a new fact
is a new row.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.authz import Principal, village_condition
from core.db import Fen, Model, Timestamp, fk, utcnow
from core.people.models import Coordinator, Farmer, Staff
from lending.policy.models import CreditPolicy
from lending.products.models import LoanProduct


class Application(Model):
    """A farmer's request for a loan from one product, resting on registered land parcels."""

    __tablename__ = "loan_applications"
    __noun__ = "application"
    __table_args__ = (
        sa.Index("ix_loan_applications_queue", "state", "state_changed_at"),
        sa.Index("ix_loan_applications_retry", "retry_at"),
    )

    farmer_id: Mapped[int] = fk("farmers.id", index=True)
    farmer: Mapped[Farmer] = relationship()
    village_id: Mapped[int] = fk("villages.id", index=True)
    product_id: Mapped[int] = fk("loan_products.id")
    product: Mapped[LoanProduct] = relationship()
    policy_id: Mapped[int | None] = fk("credit_policies.id", nullable=True)
    policy: Mapped[CreditPolicy | None] = relationship()
    state: Mapped[str] = mapped_column(sa.String(30))
    state_changed_at: Mapped[Timestamp] = mapped_column(default=utcnow)
    amount_fen: Mapped[Fen]
    term_months: Mapped[int]
    purpose: Mapped[str] = mapped_column(sa.String(200))
    crop: Mapped[str] = mapped_column(sa.String(30))
    # The product's terms when the application was made: a later change of the product does
    # not change an application already made.
    terms: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    submitted_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    decided_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    approved_amount_fen: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    # When a registry was unavailable: the time the decision is to be tried again.
    retry_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    info_requested: Mapped[bool] = mapped_column(default=False)
    # Set by the last staff recommendation, so the approver is never the recommender.
    recommended_by_id: Mapped[int | None] = fk("staff.id", nullable=True)
    recommendation: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    parcels: Mapped[list[ApplicationParcel]] = relationship(
        back_populates="application", order_by="ApplicationParcel.id",
        cascade="all, delete-orphan")
    decisions: Mapped[list[Decision]] = relationship(
        back_populates="application", order_by="Decision.id")

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        return village_condition(cls.village_id, principal,
                                 own=lambda p: cls.farmer_id == p.id)


class ApplicationParcel(Model):
    """A parcel the application rests on, as the farmer declared it."""

    __tablename__ = "loan_application_parcels"
    __table_args__ = (sa.UniqueConstraint("application_id", "parcel_code"),)

    application_id: Mapped[int] = fk("loan_applications.id", index=True)
    application: Mapped[Application] = relationship(back_populates="parcels")
    certificate_number: Mapped[str] = mapped_column(sa.String(40))
    parcel_code: Mapped[str] = mapped_column(sa.String(40), index=True)
    declared_area_mu: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))


class Decision(Model):
    """One evaluation of the credit policy, with everything needed to explain and replay it."""

    __tablename__ = "loan_decisions"
    __noun__ = "decision"

    application_id: Mapped[int] = fk("loan_applications.id", index=True)
    application: Mapped[Application] = relationship(back_populates="decisions")
    policy_id: Mapped[int] = fk("credit_policies.id", index=True)
    policy_version: Mapped[str] = mapped_column(sa.String(40))
    outcome: Mapped[str] = mapped_column(sa.String(20))  # approve|decline|refer|field_check
    limit_fen: Mapped[Fen]
    amount_fen: Mapped[Fen]
    score: Mapped[int]
    factors: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    snapshot: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # the engine's whole input
    decided_at: Mapped[Timestamp] = mapped_column(default=utcnow)


class FieldAssignment(Model):
    """Work for the coordinators of a village: visit the farmer and the parcels of a case."""

    __tablename__ = "field_assignments"
    __noun__ = "assignment"
    __table_args__ = (sa.Index("ix_field_assignments_open", "village_id", "status"),)

    application_id: Mapped[int] = fk("loan_applications.id", index=True)
    application: Mapped[Application] = relationship()
    village_id: Mapped[int] = fk("villages.id")
    # field_check (before a decision) | post_loan_disbursed | post_loan_harvest |
    # post_loan_overdue (after disbursement: servicing opens these, with the loan)
    kind: Mapped[str] = mapped_column(sa.String(30), default="field_check")
    loan_id: Mapped[int | None] = fk("loans.id", nullable=True, index=True)
    due_on: Mapped[date | None] = mapped_column(sa.Date, nullable=True)  # visit by this day
    status: Mapped[str] = mapped_column(sa.String(20), default="open")  # open|done|cancelled
    completed_at: Mapped[Timestamp | None] = mapped_column(nullable=True)
    completed_by_id: Mapped[int | None] = fk("coordinators.id", nullable=True)

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        return village_condition(cls.village_id, principal)


class FieldCheck(Model):
    """What a coordinator saw on the ground. Immutable: a second visit is a second check.

    ``client_id`` is the device's own id for the submission, so a check synced twice is
    recorded once.
    """

    __tablename__ = "field_checks"
    __noun__ = "field check"

    client_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, unique=True)
    application_id: Mapped[int] = fk("loan_applications.id", index=True)
    application: Mapped[Application] = relationship()
    assignment_id: Mapped[int | None] = fk("field_assignments.id", nullable=True)
    coordinator_id: Mapped[int] = fk("coordinators.id", index=True)
    coordinator: Mapped[Coordinator] = relationship()
    identity_verified: Mapped[bool]
    # [{"parcel_code", "visited", "crop_seen", "estimated_area_mu", "latitude",
    #   "longitude", "accuracy_m"}]
    parcels: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    notes: Mapped[str] = mapped_column(sa.String(1000), default="")
    recorded_at: Mapped[Timestamp]  # the device's clock: metadata, not an order
    # plausibility flags of the visits behind the check: [{"code", "visit_id", ...}]
    flags: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list,
                                                        server_default=sa.text("'[]'"))

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        scoped = sa.select(Application.id).where(Application.visible_to(principal))
        return cls.application_id.in_(scoped)


class ReviewAction(Model):
    """A staff member's step on a referred case: recommend, request information, approve,
    decline, each with a reason."""

    __tablename__ = "review_actions"
    __noun__ = "review action"

    application_id: Mapped[int] = fk("loan_applications.id", index=True)
    application: Mapped[Application] = relationship()
    staff_id: Mapped[int] = fk("staff.id", index=True)
    staff: Mapped[Staff] = relationship()
    action: Mapped[str] = mapped_column(sa.String(20))
    reason: Mapped[str] = mapped_column(sa.String(500))
    amount_fen: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
