"""An application as its reader sees it: status, the next step and the decision explained, in
the reader's language (reason codes stay codes; explanations are rendered per request)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from core.db import DbSession
from core.i18n import _, lazy_gettext
from lending.applications import states
from lending.applications.models import Application, Decision
from lending.policy.reasons import explain
from lending.products.services import yuan

# Where a case stands, by state (approved and the wait for the bank are worded below).
STATUS: dict[str, Any] = {
    states.DRAFT: lazy_gettext("Saved as a draft. Submit it when you are ready."),
    states.SUBMITTED: lazy_gettext("Submitted. The decision is being made."),
    states.AWAITING_FIELD_CHECK: lazy_gettext(
        "Your village coordinator will visit you to check your identity and your land. "
        "The decision follows the visit."),
    states.DECLINED: lazy_gettext("Not approved. The reasons are listed below."),
    states.WITHDRAWN: lazy_gettext("You withdrew this application."),
    states.EXPIRED: lazy_gettext("This application expired without a decision."),
}


def status_text(application: Application) -> str:
    """Where the application stands and what happens next, in plain words."""
    if application.state == states.APPROVED:
        return _("Approved: %(amount)s yuan for %(months)s months.",
                 amount=yuan(application.approved_amount_fen or 0),
                 months=application.term_months)
    if application.state == states.UNDER_REVIEW:
        if application.info_requested:
            return _("The bank needs more information from you. Please answer in the app.")
        return _("A bank officer is reviewing your application. You will get an SMS with "
                 "the result.")
    return str(STATUS[application.state])


def _decision(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "outcome": decision.outcome, "policy_version": decision.policy_version,
        "limit_fen": decision.limit_fen, "amount_fen": decision.amount_fen,
        "score": decision.score, "factors": decision.factors,
        "reasons": [{"code": r["code"], "explanation": explain(r["code"], r.get("params", {}))}
                    for r in decision.reasons],
        "decided_at": decision.decided_at,
    }


def present(application: Application, decision: Decision | None = None, *, load: bool = True,
            parcels: Sequence[Any] | None = None) -> dict[str, Any]:
    """``application`` for a response: its latest decision (``decision``, or loaded unless
    ``load`` is false) and ``parcels`` (as written, or loaded)."""
    if load and decision is None and application.decisions:
        decision = application.decisions[-1]
    return {
        "public_id": application.public_id, "state": application.state,
        "product": application.product, "amount_fen": application.amount_fen,
        "term_months": application.term_months, "purpose": application.purpose,
        "crop": application.crop,
        "parcels": application.parcels if parcels is None else parcels,
        "created_at": application.created_at, "submitted_at": application.submitted_at,
        "decided_at": application.decided_at,
        "approved_amount_fen": application.approved_amount_fen,
        "info_requested": application.info_requested,
        "explanation": status_text(application), "decision": _decision(decision),
    }


def present_many(session: DbSession, applications: Sequence[Application]) -> list[dict[str, Any]]:
    """A page of applications with their latest decisions, in a fixed number of queries."""
    ids = [a.id for a in applications]
    latest = sa.select(sa.func.max(Decision.id)).where(
        Decision.application_id.in_(ids)).group_by(Decision.application_id)
    decisions = {d.application_id: d for d in session.scalars(
        sa.select(Decision).where(Decision.id.in_(latest)))} if ids else {}
    return [present(a, decisions.get(a.id), load=False) for a in applications]
