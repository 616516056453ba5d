"""Staff review of referred applications: the queue, the case with its evidence, the actions.

Four eyes (maker-checker): a decision (approve, decline) needs a recommendation by another
staff member first, and the one who decides has never recommended on the case. Above
``NONGDAI_REVIEWER_AUTHORITY_FEN`` only the ``approver`` role approves. Every action is a
:class:`~lending.applications.models.ReviewAction` row with its reason, audited; approve and
decline change the state through :func:`lending.applications.states.move` and tell the farmer
by SMS in their language.

Actions take the application's row lock first (PostgreSQL; SQLite's transaction already holds
the database's write lock), so two staff acting on one case at once act one after the other:
the second finds the case decided (409), and ``move``'s conditional UPDATE backs that anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload

from core import audit
from core.api import clamp_limit
from core.authz import Principal
from core.db import DbSession, utcnow
from core.errors import Conflict, Forbidden, ValidationFailed
from core.i18n import _, lazy_gettext
from core.people.models import Staff
from core.places.models import Village
from lending.applications import fieldwork, notify, states
from lending.applications.models import Application, Decision, FieldAssignment, ReviewAction
from lending.applications.review_models import InformationAnswer
from lending.policy.reasons import explain

RECOMMEND_APPROVE: Final = "recommend_approve"
RECOMMEND_DECLINE: Final = "recommend_decline"
REQUEST_INFORMATION: Final = "request_information"
APPROVE: Final = "approve"
DECLINE: Final = "decline"
ACTIONS: Final = (RECOMMEND_APPROVE, RECOMMEND_DECLINE, REQUEST_INFORMATION, APPROVE, DECLINE)
RECOMMENDATIONS: Final = {RECOMMEND_APPROVE: "approve", RECOMMEND_DECLINE: "decline"}


class NotUnderReview(Conflict):
    code = "not-under-review"
    title = lazy_gettext("The application is not waiting for a staff review")


class RecommendationRequired(Conflict):
    code = "recommendation-required"
    title = lazy_gettext("A decision needs another staff member's recommendation first")


class FourEyes(Conflict):
    code = "four-eyes"
    title = lazy_gettext("Who proposed or recommended this cannot also approve it")


class ApproverRequired(Forbidden):
    code = "approver-required"
    title = lazy_gettext(
        "The amount is above the reviewer's authority: an approver must approve it")


class NoInformationRequested(Conflict):
    code = "no-information-requested"
    title = lazy_gettext("The bank is not waiting for information on this application")


# --- the queue --------------------------------------------------------------------------------

def queue_page(session: DbSession, args: dict[str, Any]) -> dict[str, Any]:
    """A page of the cases waiting for staff, longest-waiting first, with why each was
    referred. A keyset page on (state_changed_at, public_id): one query whatever the page."""
    now = utcnow()
    stmt = sa.select(Application).where(Application.state == states.UNDER_REVIEW).options(
        selectinload(Application.farmer), selectinload(Application.product))
    if args.get("village_id"):
        stmt = stmt.where(Application.village_id.in_(
            sa.select(Village.id).where(Village.public_id == args["village_id"])))
    if args.get("reason"):
        stmt = stmt.where(Application.id.in_(_latest_with_reason(session, args["reason"])))
    if args.get("min_age_hours") is not None:
        stmt = stmt.where(Application.state_changed_at
                          <= now - timedelta(hours=args["min_age_hours"]))
    if args.get("info_requested") is not None:
        stmt = stmt.where(Application.info_requested.is_(args["info_requested"]))
    limit = clamp_limit(args.get("limit"))
    if args.get("cursor"):
        at, after = _decode_cursor(args["cursor"])
        stmt = stmt.where(sa.or_(
            Application.state_changed_at > at,
            sa.and_(Application.state_changed_at == at, Application.public_id > after)))
    rows = list(session.scalars(stmt.order_by(Application.state_changed_at,
                                              Application.public_id).limit(limit + 1)))
    items = rows[:limit]
    last = items[-1] if len(rows) > limit else None
    return {"items": _queue_items(session, items, now),
            "next_cursor": _encode_cursor(last.state_changed_at, last.public_id) if last
            else None}


def _latest_with_reason(session: DbSession, code: str) -> sa.Select[Any]:
    """Applications whose latest decision gives the reason ``code``.

    The reasons are a JSON list; each backend has its own way to look inside one.
    """
    queued = sa.select(Application.id).where(Application.state == states.UNDER_REVIEW)
    latest = sa.select(sa.func.max(Decision.id)).where(
        Decision.application_id.in_(queued)).group_by(Decision.application_id)
    if session.get_bind().dialect.name == "postgresql":
        element = sa.func.json_array_elements(Decision.reasons).table_valued("value")
        key = sa.func.json_extract_path_text(element.c.value, sa.literal("code", sa.Text))
    else:
        element = sa.func.json_each(Decision.reasons).table_valued("value")
        key = sa.func.json_extract(element.c.value, "$.code")
    has = sa.exists(sa.select(sa.literal(1)).select_from(element).where(key == code))
    return sa.select(Decision.application_id).where(Decision.id.in_(latest), has)


def _encode_cursor(at: datetime, after: uuid.UUID) -> str:
    raw = json.dumps({"at": at.isoformat(), "after": str(after)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
        at, after = datetime.fromisoformat(raw["at"]), uuid.UUID(raw["after"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise ValidationFailed(_("The cursor is not one this API issued"),
                               errors={"cursor": ["Invalid cursor."]}) from exc
    if at.tzinfo is None:
        raise ValidationFailed(_("The cursor is not one this API issued"),
                               errors={"cursor": ["Invalid cursor."]})
    return at, after


def latest_decisions(session: DbSession, ids: list[int]) -> dict[int, Decision]:
    if not ids:
        return {}
    latest = sa.select(sa.func.max(Decision.id)).where(
        Decision.application_id.in_(ids)).group_by(Decision.application_id)
    return {d.application_id: d for d in session.scalars(
        sa.select(Decision).where(Decision.id.in_(latest)))}


def _queue_items(session: DbSession, rows: list[Application],
                 now: datetime) -> list[dict[str, Any]]:
    decisions = latest_decisions(session, [a.id for a in rows])
    villages = fieldwork.by_id(session, Village, {a.village_id for a in rows})
    staff = fieldwork.by_id(session, Staff,
                            {a.recommended_by_id for a in rows if a.recommended_by_id})
    items = []
    for a in rows:
        decision = decisions.get(a.id)
        items.append({
            "public_id": a.public_id, "farmer": a.farmer, "village": villages[a.village_id],
            "product": a.product, "amount_fen": a.amount_fen, "term_months": a.term_months,
            "crop": a.crop, "waiting_since": a.state_changed_at,
            "age_hours": int((now - a.state_changed_at).total_seconds() // 3600),
            "outcome": decision.outcome if decision else None,
            "reasons": [r["code"] for r in decision.reasons] if decision else [],
            "recommendation": a.recommendation,
            "recommended_by": staff.get(a.recommended_by_id) if a.recommended_by_id else None,
            "info_requested": a.info_requested, "retry_at": a.retry_at,
        })
    return items


# --- actions ----------------------------------------------------------------------------------

def act(session: DbSession, application: Application, reviewer: Principal, *, action: str,
        reason: str, amount_fen: int | None = None) -> ReviewAction:
    """Take one review action on an application under review, as ``reviewer`` (staff)."""
    _lock(session, application)
    if application.state != states.UNDER_REVIEW:
        raise NotUnderReview(_("An application in state %(state)s takes no review action",
                               state=application.state))
    if action in RECOMMENDATIONS:
        application.recommended_by_id = reviewer.id
        application.recommendation = RECOMMENDATIONS[action]
    elif action == REQUEST_INFORMATION:
        application.info_requested = True
        notify.tell(session, application, "info_requested")
    elif action == APPROVE:
        amount_fen = _approve(session, application, reviewer, amount_fen)
    elif action == DECLINE:
        _decline(session, application, reviewer)
    else:
        raise ValidationFailed(errors={"action": ["Must be one of: " + ", ".join(ACTIONS)]})
    row = ReviewAction(application_id=application.id, staff_id=reviewer.id, action=action,
                       reason=reason, amount_fen=amount_fen if action == APPROVE else None)
    session.add(row)
    session.flush()
    audit.record(session, f"review.{action}", row, actor=reviewer.ref, summary={
        "application_id": str(application.public_id), "amount_fen": row.amount_fen})
    return row


def _lock(session: DbSession, application: Application) -> None:
    """The application's row lock, and its row read afresh."""
    session.execute(sa.select(Application).where(Application.id == application.id)
                    .with_for_update().execution_options(populate_existing=True))


def _check_four_eyes(session: DbSession, application: Application, reviewer: Principal) -> None:
    """A decision rests on a recommendation by someone else; whoever recommended on the case
    (now or earlier) does not decide it."""
    if application.recommended_by_id is None:
        raise RecommendationRequired(_("Recommend first; another staff member then decides"))
    recommenders = set(session.scalars(sa.select(ReviewAction.staff_id).where(
        ReviewAction.application_id == application.id,
        ReviewAction.action.in_(RECOMMENDATIONS))))
    if reviewer.id in recommenders | {application.recommended_by_id}:
        raise FourEyes(_("You recommended on this case; another staff member must decide it"))


def _approve(session: DbSession, application: Application, reviewer: Principal,
             amount_fen: int | None) -> int:
    _check_four_eyes(session, application, reviewer)
    amount = _approved_amount(session, application, amount_fen)
    authority = int(current_app.config["NONGDAI_REVIEWER_AUTHORITY_FEN"])
    if amount > authority and "approver" not in reviewer.roles:
        raise ApproverRequired(_("Approving %(amount)s fen is above the reviewer's authority "
                                 "(%(authority)s fen): an approver must approve it",
                                 amount=amount, authority=authority))
    application.approved_amount_fen = amount
    _close(application)
    states.move(session, application, states.APPROVED, actor=reviewer.ref, reason=APPROVE)
    notify.tell(session, application, "approved")
    return amount


def _approved_amount(session: DbSession, application: Application,
                     amount_fen: int | None) -> int:
    """The amount sent, or the latest decision's (the requested amount when it offered
    nothing); never above what the farmer asked for."""
    if amount_fen is None:
        decision = latest_decisions(session, [application.id]).get(application.id)
        offered = decision.amount_fen if decision is not None else 0
        amount_fen = min(offered, application.amount_fen) if offered > 0 \
            else application.amount_fen
    if not 0 < amount_fen <= application.amount_fen:
        raise ValidationFailed(
            _("The approved amount must be more than 0 and at most the amount requested"),
            errors={"amount_fen": [_("At most %(amount)s fen, the amount requested.",
                                     amount=application.amount_fen)]})
    return amount_fen


def _decline(session: DbSession, application: Application, reviewer: Principal) -> None:
    _check_four_eyes(session, application, reviewer)
    _close(application)
    states.move(session, application, states.DECLINED, actor=reviewer.ref, reason=DECLINE)
    notify.tell(session, application, "declined")


def _close(application: Application) -> None:
    """A decided case waits for nothing more: no question open, no retry due."""
    application.decided_at = utcnow()
    application.info_requested = False
    application.retry_at = None


# --- the farmer's answer ----------------------------------------------------------------------

def answer_information(session: DbSession, application: Application, *, farmer_id: int,
                       answer: str) -> InformationAnswer:
    """The farmer answers the latest staff question; the case no longer waits on them."""
    _lock(session, application)
    question = session.scalars(sa.select(ReviewAction).where(
        ReviewAction.application_id == application.id,
        ReviewAction.action == REQUEST_INFORMATION).order_by(ReviewAction.id.desc())).first()
    if application.state != states.UNDER_REVIEW or not application.info_requested \
            or question is None:
        raise NoInformationRequested(_("There is no open question on this application"))
    row = InformationAnswer(application_id=application.id, request_id=question.id,
                            farmer_id=farmer_id, answer=answer)
    application.info_requested = False
    session.add(row)
    session.flush()
    audit.record(session, "application.information_answered", row, summary={
        "application_id": str(application.public_id),
        "request_id": str(question.public_id)})
    return row


# --- the case ---------------------------------------------------------------------------------

def history(session: DbSession, application: Application) -> list[ReviewAction]:
    return list(session.scalars(
        sa.select(ReviewAction).where(ReviewAction.application_id == application.id)
        .options(selectinload(ReviewAction.staff)).order_by(ReviewAction.id)))


def information(session: DbSession, actions: list[ReviewAction]) -> list[dict[str, Any]]:
    """Each staff question with the farmer's answer (``None`` while unanswered)."""
    questions = [a for a in actions if a.action == REQUEST_INFORMATION]
    answers = {row.request_id: row for row in session.scalars(
        sa.select(InformationAnswer).where(
            InformationAnswer.request_id.in_([q.id for q in questions])))} if questions else {}
    return [{"request_id": q.public_id, "question": q.reason, "asked_by": q.staff,
             "asked_at": q.created_at,
             "answer": answers[q.id].answer if q.id in answers else None,
             "answered_at": answers[q.id].created_at if q.id in answers else None}
            for q in questions]


def assignments_of(session: DbSession, application: Application) -> list[FieldAssignment]:
    return list(session.scalars(sa.select(FieldAssignment).where(
        FieldAssignment.application_id == application.id).order_by(FieldAssignment.id)))


def case(session: DbSession, application: Application) -> dict[str, Any]:
    """Everything a reviewer needs on one case: the application as made, the farmer, every
    decision (each with its policy version), the latest one's reasons explained and the
    registry evidence it saw, the field checks, and the review so far."""
    decisions = list(application.decisions)
    latest = decisions[-1] if decisions else None
    actions = history(session, application)
    recommender = session.get(Staff, application.recommended_by_id) \
        if application.recommended_by_id else None
    return {
        "application": {**_plain(application), "recommended_by": recommender,
                        "village": session.get(Village, application.village_id)},
        "farmer": application.farmer,
        "parcels": application.parcels,
        "decision": _explained(latest) if latest else None,
        "evidence": _evidence(latest.snapshot if latest else {}),
        "field_checks": fieldwork.check_views(session, fieldwork.checks_of(session, application)),
        "assignments": assignments_of(session, application),
        "history": actions,
        "information": information(session, actions),
        "decisions": [{**_decision_row(d), "reasons": [r["code"] for r in d.reasons]}
                      for d in decisions],
    }


_APPLICATION_FIELDS = ("public_id", "state", "state_changed_at", "product", "amount_fen",
                       "approved_amount_fen", "term_months", "purpose", "crop", "terms",
                       "created_at", "submitted_at", "decided_at", "info_requested",
                       "recommendation", "retry_at")


def _plain(application: Application) -> dict[str, Any]:
    return {name: getattr(application, name) for name in _APPLICATION_FIELDS}


def _decision_row(decision: Decision) -> dict[str, Any]:
    return {"public_id": decision.public_id, "policy_version": decision.policy_version,
            "outcome": decision.outcome, "score": decision.score,
            "limit_fen": decision.limit_fen, "amount_fen": decision.amount_fen,
            "decided_at": decision.decided_at}


def _explained(decision: Decision) -> dict[str, Any]:
    """The latest decision with each reason in the reader's language, and its whole input."""
    return {**_decision_row(decision), "factors": decision.factors,
            "reasons": [{"code": r["code"], "params": r.get("params") or {},
                         "explanation": explain(r["code"], r.get("params") or {})}
                        for r in decision.reasons],
            "inputs": decision.snapshot}


_PARCEL_FACTS = ("certificate", "code", "land_status", "declared_mu", "registry_mu",
                 "insured_mu", "field_mu", "field_estimated", "verified_mu", "insured",
                 "contract_end", "tenure_days", "pledged_registry", "pledged_here", "duplicate",
                 "field_visited", "crop_seen")
_CLAIM_FACTS = ("event", "days_ago", "loss_ratio", "status")


def _evidence(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What the registries and the field check said, per parcel, as the decision saw it
    (``lending.policy.facts``); a key an older snapshot lacks reads as null."""
    return {
        "unavailable": list(snapshot.get("unavailable") or []),
        "parcels": [{key: parcel.get(key) for key in _PARCEL_FACTS}
                    for parcel in snapshot.get("parcels") or []],
        "claims": [{key: claim.get(key) for key in _CLAIM_FACTS}
                   for claim in snapshot.get("claims") or []],
    }
