"""Relief cases: opening one (the poll, on an insurance claim; staff, by hand), the four eyes
on it, and what approval does.

- ``recommend`` (reviewer or approver): the case goes ``proposed -> recommended``. A manual
  reschedule is proposed already recommended by the staff member who proposed it.
- ``approve`` (approver, never the recommender: ``four-eyes``): penalties outstanding are
  waived (one journal transaction: debit ``relief_expense``, credit ``penalty_receivable``,
  kind ``relief_waiver``, the case's id its reference), the unpaid installments are replaced by
  a plan to the new maturity (:mod:`lending.servicing.reschedule`), the loan is unpaused, and
  it is current again (nothing of the new plan is due yet; the daily job ages it from there).
  The farmer is told by SMS.
- ``reject`` (approver, never the recommender): the case closes and the loan is unpaused.

Every step is audited. Actions take the case's and the loan's row locks first (PostgreSQL;
SQLite's transaction already holds the database's write lock).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

import sqlalchemy as sa

from core import audit, outbox
from core.api import paginate
from core.authz import Principal
from core.db import DbSession, utcnow
from core.errors import Conflict, Forbidden, ValidationFailed
from core.i18n import _, in_locale, lazy_gettext
from lending.applications.review import FourEyes, RecommendationRequired
from lending.ledger import accounts, posting
from lending.products.services import yuan
from lending.servicing import reschedule, schedules
from lending.servicing.models import ACTIVE, Loan
from lending.servicing.quotes import LoanNotActive
from lending.servicing.relief_models import (
    APPROVED,
    INSURANCE,
    MANUAL,
    OPEN,
    PROPOSED,
    RECOMMENDED,
    REJECTED,
    ReliefCase,
)

RECOMMEND: Final = "recommend"
APPROVE: Final = "approve"
REJECT: Final = "reject"
ACTIONS: Final = (RECOMMEND, APPROVE, REJECT)
WAIVER: Final = "relief_waiver"  # the journal kind of a penalty waiver
MAX_EXTENSION_DAYS: Final = 3 * 366  # a new maturity at most about three years ahead


class CaseClosed(Conflict):
    code = "relief-case-closed"
    title = lazy_gettext("The relief case is already decided")


class AlreadyRecommended(Conflict):
    code = "relief-already-recommended"
    title = lazy_gettext("The relief case is already recommended")


class ApproverOnly(Forbidden):
    code = "relief-approver-required"
    title = lazy_gettext("Only an approver can decide a relief case")


class CaseOpen(Conflict):
    code = "relief-case-open"
    title = lazy_gettext("The loan already has an open relief case")


class ProposalStale(Conflict):
    code = "relief-proposal-stale"
    title = lazy_gettext("The proposed maturity has passed: propose a new reschedule")


class NotReschedulable(Conflict):
    code = "loan-not-reschedulable"
    title = lazy_gettext("Only an active term loan can be rescheduled")


# --- opening ----------------------------------------------------------------------------------

def open_case(session: DbSession, loan: Loan) -> ReliefCase | None:
    """The loan's open case, if any."""
    return session.scalars(sa.select(ReliefCase).where(
        ReliefCase.loan_id == loan.id, ReliefCase.status.in_(OPEN)).limit(1)).first()


def extension(session: DbSession, loan: Loan, day: date) -> date | None:
    """The new maturity relief proposes: the end of the next harvest after the current
    maturity (or today, if later); a year on without a crop calendar; None for a line."""
    if loan.kind != "term":
        return None
    after = max(day, loan.maturity_date or day)
    cal = schedules.calendar_for(session, loan.crop, loan.county_code)
    return schedules.next_harvest(cal, after) if cal else schedules.add_months(after, 12)


def open_for_claim(session: DbSession, loan: Loan, *, reference: str, claim: dict[str, Any],
                   day: date) -> ReliefCase:
    """Open an insurance case and pause the loan's ageing and penalties (flushes; the
    ``(loan, claim)`` constraint refuses a second case for the same claim)."""
    case = ReliefCase(loan_id=loan.id, kind=INSURANCE, status=PROPOSED, claim_reference=reference,
                      claim=claim, opened_on=day, opened_by=audit.SYSTEM,
                      proposed_maturity_date=extension(session, loan, day), waive_penalties=True,
                      penalty_at_opening_fen=loan.penalty_outstanding_fen, paused_loan=True)
    session.add(case)
    session.flush()
    loan.relief_paused = True
    audit.record(session, "relief_case.open", case, actor=audit.SYSTEM, summary={
        "loan_id": str(loan.public_id), "claim": reference,
        "loss_ratio": claim.get("loss_ratio"), "paused": True})
    return case


def propose(session: DbSession, loan: Loan, staff: Principal, *, new_maturity_date: date,
            reason: str, waive_penalties: bool, day: date) -> ReliefCase:
    """A manual reschedule, proposed (and so recommended) by ``staff``; another approver
    decides it through :func:`act`."""
    _lock_loan(session, loan)
    if loan.status != ACTIVE or loan.kind != "term":
        raise NotReschedulable()
    if open_case(session, loan) is not None:
        raise CaseOpen(_("Decide the loan's open relief case first"))
    if not 0 < (new_maturity_date - day).days <= MAX_EXTENSION_DAYS:
        raise ValidationFailed(errors={"new_maturity_date": [_(
            "Must be after the business date %(day)s and at most three years ahead.",
            day=day.isoformat())]})
    now = utcnow()
    case = ReliefCase(loan_id=loan.id, kind=MANUAL, status=RECOMMENDED, opened_on=day,
                      opened_by=staff.ref, reason=reason, proposed_maturity_date=new_maturity_date,
                      waive_penalties=waive_penalties,
                      penalty_at_opening_fen=loan.penalty_outstanding_fen,
                      recommended_by_id=staff.id, recommended_at=now,
                      recommendation_reason=reason)
    session.add(case)
    session.flush()
    audit.record(session, "relief_case.propose", case, actor=staff.ref, summary={
        "loan_id": str(loan.public_id), "new_maturity_date": new_maturity_date.isoformat(),
        "waive_penalties": waive_penalties})
    return case


# --- the four eyes ----------------------------------------------------------------------------

def act(session: DbSession, case: ReliefCase, staff: Principal, *, action: str, reason: str,
        day: date) -> ReliefCase:
    """Take one action on an open case as ``staff``."""
    session.execute(sa.select(ReliefCase).where(ReliefCase.id == case.id).with_for_update()
                    .execution_options(populate_existing=True))
    if case.status not in OPEN:
        raise CaseClosed(_("A case in status %(status)s takes no action", status=case.status))
    if action == RECOMMEND:
        _recommend(case, staff, reason)
    elif action == APPROVE:
        _decide(case, staff, reason, day)
        _approve(session, case, staff, day)
    elif action == REJECT:
        _decide(case, staff, reason, day)
        _reject(session, case)
    else:
        raise ValidationFailed(errors={"action": ["Must be one of: " + ", ".join(ACTIONS)]})
    session.flush()
    audit.record(session, f"relief_case.{action}", case, actor=staff.ref, summary={
        "loan_id": str(case.loan.public_id), "status": case.status,
        "waived_fen": case.waived_fen,
        "maturity_date": case.loan.maturity_date.isoformat() if case.loan.maturity_date
        else None})
    return case


def _recommend(case: ReliefCase, staff: Principal, reason: str) -> None:
    if case.status == RECOMMENDED:
        raise AlreadyRecommended()
    case.status, case.recommended_by_id = RECOMMENDED, staff.id
    case.recommended_at, case.recommendation_reason = utcnow(), reason


def _decide(case: ReliefCase, staff: Principal, reason: str, day: date) -> None:
    """Only an approver decides, never the one who recommended; approval needs the
    recommendation first."""
    if "approver" not in staff.roles:
        raise ApproverOnly()
    if case.recommended_by_id == staff.id:
        raise FourEyes(_("You recommended this case; another approver must decide it"))
    case.decided_by_id, case.decided_at, case.decided_on = staff.id, utcnow(), day
    case.decision_reason = reason


def _approve(session: DbSession, case: ReliefCase, staff: Principal, day: date) -> None:
    if case.status != RECOMMENDED:
        raise RecommendationRequired(_("Recommend first; another approver then decides"))
    loan = _lock_loan(session, case.loan)
    if loan.status != ACTIVE:
        raise LoanNotActive(_("A loan in status %(status)s is not rescheduled",
                              status=loan.status))
    if case.waive_penalties:
        _waive(session, case, loan, staff, day)
    if loan.kind == "term" and case.proposed_maturity_date is not None:
        reschedule.apply(session, loan, case, maturity=_maturity(session, case, loan, day),
                         day=day, approved_by_id=staff.id)
        session.expire(loan, ["installments"])
        loan.dpd, loan.bucket, loan.oldest_due_date = 0, "current", None  # nothing is due yet
    loan.relief_paused = False
    case.status = APPROVED
    _tell(session, case, loan)


def _maturity(session: DbSession, case: ReliefCase, loan: Loan, day: date) -> date:
    """The proposal's maturity; an insurance case decided after it passed proposes the next
    harvest again, a manual one is refused."""
    proposed = case.proposed_maturity_date
    if proposed is not None and proposed > day:
        return proposed
    if case.kind == MANUAL:
        raise ProposalStale()
    maturity = extension(session, loan, day)
    if maturity is None:  # a line: never rescheduled
        raise NotReschedulable()
    case.proposed_maturity_date = maturity
    return maturity


def _waive(session: DbSession, case: ReliefCase, loan: Loan, staff: Principal,
           day: date) -> None:
    """Post the waiver of every penalty outstanding (and forget the sub-fen carry)."""
    amount = loan.penalty_outstanding_fen
    loan.penalty_carry = 0
    if amount <= 0:
        return
    journal = posting.post(
        session, kind=WAIVER, reference=str(case.public_id), business_date=day,
        lines=[posting.Line(accounts.RELIEF_EXPENSE, amount),
               posting.Line(accounts.PENALTY_RECEIVABLE, -amount, loan.id)],
        actor=staff.ref, loan_id=loan.id,
        memo={"relief_case": str(case.public_id), "kind": case.kind})
    case.waived_fen, case.journal_id = amount, journal.id


def _reject(session: DbSession, case: ReliefCase) -> None:
    loan = _lock_loan(session, case.loan)
    case.status = REJECTED
    if case.paused_loan:
        loan.relief_paused = False


def _lock_loan(session: DbSession, loan: Loan) -> Loan:
    session.execute(sa.select(Loan).where(Loan.id == loan.id).with_for_update()
                    .execution_options(populate_existing=True))
    return loan


def _tell(session: DbSession, case: ReliefCase, loan: Loan) -> None:
    """The SMS to the farmer, in the farmer's language."""
    farmer = loan.farmer
    with in_locale(farmer.language):
        if loan.kind == "term" and loan.maturity_date is not None:
            body = _("[Nongdai] Your loan is rescheduled: it is now due on %(date)s. "
                     "Penalties waived: %(amount)s yuan. Open the app to see the new schedule.",
                     date=loan.maturity_date.isoformat(), amount=yuan(case.waived_fen))
        else:
            body = _("[Nongdai] Relief is granted on your credit line. Penalties waived: "
                     "%(amount)s yuan.", amount=yuan(case.waived_fen))
    outbox.queue_sms(session, farmer.phone, body)


# --- reading ----------------------------------------------------------------------------------

def page(session: DbSession, args: dict[str, Any]) -> dict[str, Any]:
    """A page of cases (oldest first), by status, kind or loan."""
    stmt = sa.select(ReliefCase)
    if args.get("status"):
        stmt = stmt.where(ReliefCase.status == args["status"])
    if args.get("kind"):
        stmt = stmt.where(ReliefCase.kind == args["kind"])
    if args.get("loan_id"):
        stmt = stmt.where(ReliefCase.loan_id.in_(
            sa.select(Loan.id).where(Loan.public_id == args["loan_id"])))
    return paginate(session, stmt, ReliefCase.public_id, args)
