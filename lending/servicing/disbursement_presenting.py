"""Disbursements and payout instructions as the API shows them: public ids of what they
refer to, looked up once per page."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from core.db import DbSession
from core.people.models import Staff
from lending.servicing.models import Disbursement, Loan, PayoutInstruction


def public_ids(session: DbSession, model: Any, ids: set[int | None]) -> dict[int, uuid.UUID]:
    """The public ids of rows of ``model`` by internal key (``None`` keys left out)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(
        sa.select(model.id, model.public_id).where(model.id.in_(wanted))).all())


def disbursements(session: DbSession, rows: list[Disbursement]) -> list[dict[str, Any]]:
    loans = public_ids(session, Loan, {d.loan_id for d in rows})
    staff = public_ids(session, Staff, {d.authorised_by_staff_id for d in rows})
    found = {p.disbursement_id: p for p in session.scalars(sa.select(PayoutInstruction).where(
        PayoutInstruction.disbursement_id.in_([d.id for d in rows])))} if rows else {}
    return [{
        "id": d.public_id, "loan_id": loans[d.loan_id], "seq": d.seq,
        "amount_fen": d.amount_fen, "status": d.status, "reason": d.reason,
        "initiated_by": d.initiated_by,
        "authorised_by": staff.get(d.authorised_by_staff_id) if d.authorised_by_staff_id
        else None,
        "authorised_at": d.authorised_at, "business_date": d.business_date,
        "created_at": d.created_at,
        "payout_id": found[d.id].public_id if d.id in found else None,
        "payout_status": found[d.id].status if d.id in found else None,
    } for d in rows]


def disbursement(session: DbSession, row: Disbursement) -> dict[str, Any]:
    return disbursements(session, [row])[0]


def payouts(session: DbSession, rows: list[PayoutInstruction]) -> list[dict[str, Any]]:
    loans = public_ids(session, Loan, {p.loan_id for p in rows})
    paid = public_ids(session, Disbursement, {p.disbursement_id for p in rows})
    return [{
        "id": p.public_id, "disbursement_id": paid[p.disbursement_id],
        "loan_id": loans[p.loan_id], "amount_fen": p.amount_fen, "payee": p.payee,
        "status": p.status, "batch": p.batch, "created_at": p.created_at,
        "exported_at": p.exported_at, "confirmed_at": p.confirmed_at,
        "core_reference": p.core_reference,
    } for p in rows]


def payout(session: DbSession, row: PayoutInstruction) -> dict[str, Any]:
    return payouts(session, [row])[0]
