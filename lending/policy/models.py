"""The credit policy as data: versioned decision models and the crop reference table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Fen, Model, Timestamp, fk


class CreditPolicy(Model):
    """One version of the credit policy: a GoRules JSON Decision Model (JDM) plus parameters.

    A version is immutable: created whole with its crop table, never updated or deleted
    through the ORM (:func:`_immutable`); a new version applies to applications submitted after
    ``effective_from``. Exactly one version is current at any time.
    """

    __tablename__ = "credit_policies"
    __noun__ = "credit policy"

    version: Mapped[str] = mapped_column(sa.String(40), unique=True)
    description: Mapped[str] = mapped_column(sa.String(300))
    decision_model: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # the JDM graph
    effective_from: Mapped[Timestamp]
    created_by: Mapped[str] = mapped_column(sa.String(60))

    crops: Mapped[list[CropReference]] = relationship(
        back_populates="policy",
        order_by=lambda: (CropReference.crop, CropReference.county_code))


class CropReference(Model):
    """Per crop and county: expected yield, farm-gate price, insured sum and crop calendar.

    Versioned with the policy. Calendar windows are month-day strings (``"05-01"``) so that
    servicing can place repayments at the next harvest for any year.
    """

    __tablename__ = "crop_references"
    __noun__ = "crop reference"
    __table_args__ = (sa.UniqueConstraint("policy_id", "crop", "county_code"),)

    policy_id: Mapped[int] = fk("credit_policies.id")
    policy: Mapped[CreditPolicy] = relationship(back_populates="crops")
    crop: Mapped[str] = mapped_column(sa.String(30))  # rice | wheat | corn | soybean | ...
    county_code: Mapped[str] = mapped_column(sa.String(6))
    yield_kg_per_mu: Mapped[int]
    price_fen_per_kg: Mapped[int]
    insured_sum_fen_per_mu: Mapped[Fen]
    planting_from: Mapped[str] = mapped_column(sa.String(5))  # "MM-DD"
    planting_to: Mapped[str] = mapped_column(sa.String(5))
    harvest_from: Mapped[str] = mapped_column(sa.String(5))
    harvest_to: Mapped[str] = mapped_column(sa.String(5))


def current_at(at: datetime | sa.BindParameter[Any]) -> sa.Select[Any]:
    """The policy in force at ``at`` (a time, or a bound parameter for a statement built
    once): the latest whose ``effective_from`` has come."""
    return (sa.select(CreditPolicy).where(CreditPolicy.effective_from <= at)
            .order_by(CreditPolicy.effective_from.desc(), CreditPolicy.id.desc()).limit(1))


class PolicyImmutable(RuntimeError):
    """A programming error: published policy versions are never changed."""


def _immutable(_mapper: Any, _connection: Any, target: Any) -> None:
    raise PolicyImmutable(f"{type(target).__name__} rows are immutable; publish a new version")


for _model in (CreditPolicy, CropReference):
    event.listen(_model, "before_update", _immutable)
    event.listen(_model, "before_delete", _immutable)
