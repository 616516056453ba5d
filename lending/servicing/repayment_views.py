"""HTTP API of repayments: payment channels' signed notifications, branch records, refunds of
overpayments, and settlement quotes. The work is in :mod:`lending.servicing.repayments` and
:mod:`lending.servicing.quotes`.

A channel signs each notification: ``X-Nongdai-Signature`` is the hex HMAC-SHA256 of the exact
bytes of the body, keyed with the channel's secret (``NONGDAI_PAYMENT_CHANNEL_SECRETS``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any, TypeVar, cast

from flask import Flask, current_app, g, request

from core.api import Blueprint, raises, register
from core.authz import access, current_principal, get_visible
from core.db import begin_read, db, utcnow
from core.errors import NotFound, Unauthorized
from core.i18n import lazy_gettext
from core.idempotency import idempotent
from core.jobs import business_date
from lending.servicing import quotes, repayments
from lending.servicing import repayment_schemas as schemas
from lending.servicing.models import Loan

blp = Blueprint("repayments", __name__, description="Repayments, refunds, settlement quotes")

SIGNATURE_HEADER = "X-Nongdai-Signature"
BRANCH = "branch"
F = TypeVar("F", bound=Callable[..., Any])


class BadSignature(Unauthorized):
    code = "payment-signature-invalid"
    title = lazy_gettext("The payment notification's signature is missing or wrong")


def _secrets() -> dict[str, str]:
    configured = current_app.config.get("NONGDAI_PAYMENT_CHANNEL_SECRETS") or "{}"
    return json.loads(configured) if isinstance(configured, str) else dict(configured)


def signature_valid(raw: bytes, signature: str) -> bool:
    """Whether ``signature`` signs ``raw`` with the secret of the channel ``raw`` names."""
    try:
        channel = json.loads(raw).get("channel")
    except (ValueError, AttributeError):
        return False
    secret = _secrets().get(channel) if isinstance(channel, str) and channel != BRANCH else None
    if not secret or not signature:
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def signed(view: F) -> F:
    """Refuse (401) a body not signed by a known channel, before anything reads it."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not signature_valid(request.get_data(cache=True),
                               request.headers.get(SIGNATURE_HEADER, "")):
            raise BadSignature()
        return view(*args, **kwargs)

    return cast(F, wrapper)


@blp.route("/payments/notify", methods=["POST"])
@access(public=True)
@raises(BadSignature, NotFound, repayments.LoanNotActive, repayments.ReferenceReused)
@signed
@blp.arguments(schemas.NotificationSchema)
@blp.response(200, schemas.RepaymentSchema)
@blp.doc(parameters=[{"name": SIGNATURE_HEADER, "in": "header", "required": True,
                      "description": "hex HMAC-SHA256 of the raw body with the channel's secret",
                      "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}])
def notify_payment(data: dict[str, Any]) -> Any:
    """A payment channel tells of a farmer's payment: booked once per (channel, reference);
    the same notification again gets the same answer, another with that reference 409."""
    paid_at = data["paid_at"].astimezone(UTC)
    content = {**data, "loan_id": str(data["loan_id"]), "paid_at": paid_at.isoformat()}
    begin_read(db.session)  # SQLite: the look-ups take no write lock (see book_or_replay)
    loan = repayments.loan_by_public_id(db.session, data["loan_id"])
    repayment, booked = repayments.book_or_replay(
        db.session, loan, channel=data["channel"], reference=data["reference"],
        amount_fen=data["amount_fen"], received_at=paid_at,
        fingerprint=repayments.fingerprint(content), actor=f"channel:{data['channel']}")
    if not booked:
        g.no_audit_needed = True  # the stored repayment, answered again: nothing changed
    return repayment


@blp.route("/loans/<uuid:loan_id>/repayments", methods=["POST"])
@access("reviewer", "approver")
@raises(repayments.LoanNotActive, repayments.ReferenceReused)
@idempotent
@blp.arguments(schemas.BranchRepaymentSchema)
@blp.response(201, schemas.RepaymentSchema)
def record_repayment(data: dict[str, Any], loan_id: uuid.UUID) -> Any:
    """Record money a farmer paid at a branch (channel ``branch``), allocated like any."""
    principal = current_principal()
    loan = get_visible(db.session, Loan, loan_id)
    content = {"loan_id": str(loan_id), "amount_fen": data["amount_fen"]}
    repayment, booked = repayments.book_or_replay(
        db.session, loan, channel=BRANCH, reference=data["reference"],
        amount_fen=data["amount_fen"], received_at=utcnow(),
        fingerprint=repayments.fingerprint(content), actor=principal.ref,
        staff_id=principal.id)
    if not booked:
        g.no_audit_needed = True
    return repayment


@blp.route("/loans/<uuid:loan_id>/refunds", methods=["POST"])
@access("reviewer", "approver")
@raises(repayments.RefundExceedsCredit)
@idempotent
@blp.arguments(schemas.RefundCreateSchema)
@blp.response(201, schemas.RefundSchema)
def refund_overpayment(data: dict[str, Any], loan_id: uuid.UUID) -> dict[str, Any]:
    """Pay an overpaid credit back to the farmer (part or all of it)."""
    loan = get_visible(db.session, Loan, loan_id)
    journal = repayments.refund(db.session, loan, amount_fen=data["amount_fen"],
                                reason=data["reason"], actor=current_principal().ref)
    return {"public_id": journal.public_id, "loan_id": loan.public_id,
            "amount_fen": data["amount_fen"], "reason": data["reason"],
            "business_date": journal.business_date, "overpaid_fen": loan.overpaid_fen}


@blp.route("/loans/<uuid:loan_id>/quote", methods=["GET"])
@access("farmer", "staff")
@raises(quotes.LoanNotActive)
@blp.arguments(schemas.QuoteArgs, location="query")
@blp.response(200, schemas.QuoteSchema)
def settlement_quote(args: dict[str, Any], loan_id: uuid.UUID) -> dict[str, Any]:
    """What settles the loan on a day (default today): interest recomputed to that day."""
    loan = get_visible(db.session, Loan, loan_id)
    return quotes.settlement(db.session, loan, args.get("on") or business_date())


def init_app(app: Flask) -> None:
    """Register the repayment API."""
    register(app, blp)
