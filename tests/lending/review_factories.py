"""Row factories for the review and field-work tests: products, policy versions, and
applications in a given state with a decision, built directly through the models (flushed,
never committed), so each test starts where its story starts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.db import utcnow
from core.people.models import Farmer, Staff
from lending.applications.models import Application, ApplicationParcel, Decision
from lending.policy.models import CreditPolicy
from lending.products.models import LoanProduct
from tests import factories as f

JDM = Path(__file__).resolve().parents[2] / "lending" / "policy" / "jdm"
TRIVIAL_MODEL: dict[str, Any] = {"contentType": "application/vnd.gorules.decision",
                                 "nodes": [], "edges": []}
PARCELS = (("CERT-1", "P-1", "5.00"), ("CERT-1", "P-2", "3.25"))
PARAMS: dict[str, dict[str, Any]] = {"above_auto_ceiling": {"ceiling_fen": 5_000_000}}


def product(session: Any, **overrides: Any) -> LoanProduct:
    values: dict[str, Any] = {
        "code": f"SPRING-{f._n()}", "name": "春耕贷", "repayment_type": "bullet_at_harvest",
        "min_amount_fen": 100_000, "max_amount_fen": 30_000_000, "min_term_months": 3,
        "max_term_months": 12, "annual_rate_bp": 435, "grace_months": 0, "crops": ["rice"],
        "county_codes": [], "auto_ceiling_fen": 5_000_000, **overrides}
    row = LoanProduct(**values)
    session.add(row)
    session.flush()
    return row


def policy(session: Any, version: str | None = None,
           decision_model: dict[str, Any] | None = None, days_ago: int = 30) -> CreditPolicy:
    row = CreditPolicy(version=version or f"test-{f._n()}", description="test policy",
                       decision_model=decision_model or dict(TRIVIAL_MODEL),
                       effective_from=utcnow() - timedelta(days=days_ago), created_by="system")
    session.add(row)
    session.flush()
    return row


def snapshot(parcels: Iterable[tuple[str, str, str]] = PARCELS) -> dict[str, Any]:
    """A decision input in the shape of ``lending.policy.facts`` (the parts the case shows)."""
    return {
        "facts_version": 1, "unavailable": [],
        "parcels": [{"certificate": cert, "code": code, "land_status": "held",
                     "declared_mu": float(area), "registry_mu": float(area),
                     "insured_mu": float(area), "field_mu": 0, "field_estimated": False,
                     "verified_mu": float(area), "insured": True, "contract_end": "2030-12-31",
                     "tenure_days": 1500, "pledged_registry": False, "pledged_here": False,
                     "duplicate": False, "field_visited": False, "crop_seen": False}
                    for cert, code, area in parcels],
        "claims": [{"event": "drought", "days_ago": 200, "loss_ratio": 0.35, "status": "paid"}],
        "field_check": {"done": False, "identity_verified": False},
    }


def decision(session: Any, application: Application, *, rules: CreditPolicy,
             outcome: str = "refer", reasons: Iterable[str] = ("above_auto_ceiling",),
             amount_fen: int | None = None, minutes_ago: int = 0) -> Decision:
    amount = application.amount_fen if amount_fen is None else amount_fen
    row = Decision(application=application, policy_id=rules.id, policy_version=rules.version,
                   outcome=outcome, limit_fen=amount, amount_fen=amount, score=640,
                   factors=[{"factor": "verified_area", "value": 8.25, "points": 40}],
                   reasons=[{"code": code, "params": PARAMS.get(code, {})} for code in reasons],
                   snapshot=snapshot([(p.certificate_number, p.parcel_code,
                                       str(p.declared_area_mu)) for p in application.parcels]),
                   decided_at=utcnow() - timedelta(minutes=minutes_ago))
    session.add(row)
    session.flush()
    return row


def application(session: Any, farmer: Farmer, *, state: str = "under_review",
                offer: LoanProduct | None = None, rules: CreditPolicy | None = None,
                amount_fen: int = 1_000_000, waiting_hours: float = 0,
                reasons: Iterable[str] | None = ("above_auto_ceiling",),
                outcome: str = "refer", decision_amount_fen: int | None = None,
                parcels: Iterable[tuple[str, str, str]] = PARCELS) -> Application:
    """An application in ``state`` since ``waiting_hours`` ago, with one decision (none when
    ``reasons`` is None)."""
    offer = offer or product(session)
    rules = rules or policy(session)
    now = utcnow()
    row = Application(
        farmer=farmer, village_id=farmer.village_id, product=offer, policy_id=rules.id,
        state=state, state_changed_at=now - timedelta(hours=waiting_hours),
        amount_fen=amount_fen, term_months=8, purpose="化肥和种子", crop="rice",
        terms={"annual_rate_bp": offer.annual_rate_bp}, info_requested=False,
        submitted_at=now - timedelta(hours=waiting_hours),
        parcels=[ApplicationParcel(certificate_number=cert, parcel_code=code,
                                   declared_area_mu=Decimal(area))
                 for cert, code, area in parcels])
    session.add(row)
    session.flush()
    if reasons is not None:
        decision(session, row, rules=rules, outcome=outcome, reasons=reasons,
                 amount_fen=decision_amount_fen)
    return row


def staff(session: Any, *roles: str) -> Staff:
    return f.staff(session, roles=roles)


def count(session: Any, model: Any, *where: Any) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)))
