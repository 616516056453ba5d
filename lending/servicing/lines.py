"""The revolving household line (随借随还): a limit drawn in parts from the phone, repaid at
any time, reviewed once a year.

**The line.** A line is a :class:`~lending.servicing.models.Loan` of kind ``line``, made
active when the farmer accepts the offer (:func:`lending.servicing.loans.accept`):
``limit_fen`` is the approved amount, ``line_ends_on`` the start plus the term (at most 36
months), ``next_review_on`` the start plus 12 months. ``principal_outstanding_fen`` is the
drawn balance, so the daily job accrues interest on what is drawn and nothing else, and
``available = max(0, limit_fen - principal_outstanding_fen)``.

**A draw** (:func:`draw`) is the farmer's, on their own line. It takes the loan's row lock
(``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the transaction already holds the
database's write lock), so two draws at once are checked one after the other against the
limit. It is refused (409) when the line is not active (``line-not-active``), has ended
(``line-ended``: no draw on or after ``line_ends_on``), is frozen or its review date has passed
without a review (``line-frozen``), or when the amount is above what is available
(``limit-exceeded``). A draw is a :class:`Disbursement` with the next ``seq`` (the
``(loan_id, seq)`` constraint backs the lock), ``authorised`` at once (the four eyes were on
the limit's approval; ``initiated_by`` is the farmer), booked by
:func:`lending.servicing.disbursement.book` like any disbursement (D loan_principal /
C payout_clearing, and the payout instruction). Each draw also gets one
:class:`Installment` of the same ``seq``: principal due = the draw, interest 0 (interest
accrues daily in the ledger), due on ``min(draw date + 12 months, line_ends_on)``. Due dates
never go down as seq goes up, so repayments that pay installments in due order pay the oldest
draw first, and delinquency ages a line like a loan. The installments' unpaid principal is
always the drawn balance: a draw whose payout fails is reversed in the ledger and taken off the
installments by :func:`undo_draw` (called by :func:`lending.servicing.payouts.fail`).

**A review** (:func:`review`, the approver role) is one of

- ``renew``: ``next_review_on`` moves 12 months on (again until it is after today, when a
  review came late), never past ``line_ends_on``; the limit may change (``limit_fen``, at most
  the product's maximum as the loan's terms keep it). The line never outlives its term (three
  years at most from the grant): a renewal does not move ``line_ends_on``. A renewal lifts a
  freeze the review job set (``lapse``), never one a person set;
- ``lower``: a lower limit (``limit_fen``, 0 or more); it may be below the drawn balance: then
  nothing can be drawn until repayments bring the balance under it. Nothing owed changes;
- ``freeze`` / ``unfreeze``: stop and allow new draws. A freeze never touches what is owed,
  its due dates, interest or repayments.

Each review is a :class:`~lending.servicing.line_models.LineReview` row (who, action, limit
and freeze before and after, review date before and after, reason), audited, and the farmer
is told by SMS in their language.

**The job** ``servicing.line_reviews`` (:func:`run_reviews`; hourly, idempotent for its
business date, catches up by itself since it compares dates): freezes active lines whose
``next_review_on`` is before the business date and that are not frozen yet (a ``lapse``
review row, system actor, SMS), and settles ended lines (``line_ends_on`` on or before the
business date) that owe nothing (status ``settled``, ``settled_on``). A draw checks the review
date itself, so a line is closed to draws the day its review lapses whatever time the job runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import sqlalchemy as sa

from core import audit, jobs, outbox
from core.authz import Principal, not_found
from core.db import DbSession, db, utcnow
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.i18n import _, in_locale, lazy_gettext
from lending.products.services import yuan
from lending.servicing import disbursement
from lending.servicing.line_models import LineReview
from lending.servicing.models import (
    ACTIVE,
    SETTLED,
    Disbursement,
    Installment,
    Loan,
    PayoutInstruction,
)
from lending.servicing.schedules import add_months

KIND: Final = "line"
RENEW: Final = "renew"
LOWER: Final = "lower"
FREEZE: Final = "freeze"
UNFREEZE: Final = "unfreeze"
LAPSE: Final = "lapse"  # the job's freeze when a review date passed without a review
ACTIONS: Final = (RENEW, LOWER, FREEZE, UNFREEZE)
REVIEW_MONTHS: Final = 12
DRAW_DUE_MONTHS: Final = 12


class NotALine(Conflict):
    code = "not-a-line"
    title = lazy_gettext("This loan is not a revolving line")


class LineNotActive(Conflict):
    code = "line-not-active"
    title = lazy_gettext("The line is not active")


class LineEnded(Conflict):
    code = "line-ended"
    title = lazy_gettext("The line has ended: nothing more can be drawn")


class LineFrozen(Conflict):
    code = "line-frozen"
    title = lazy_gettext("The line is frozen: no new draws until the bank reviews it")


class LimitExceeded(Conflict):
    code = "limit-exceeded"
    title = lazy_gettext("The amount is above what is available on the line")


class LineAlreadyFrozen(Conflict):
    code = "line-already-frozen"
    title = lazy_gettext("The line is already frozen")


class LineNotFrozen(Conflict):
    code = "line-not-frozen"
    title = lazy_gettext("The line is not frozen")


# --- the line's state -------------------------------------------------------------------------

def available(loan: Loan) -> int:
    """What can be drawn now by the limit alone: never below zero (a lowered limit may be
    under the drawn balance)."""
    return max(0, (loan.limit_fen or 0) - loan.principal_outstanding_fen)


def review_overdue(loan: Loan, on: date) -> bool:
    """Whether the annual review date passed without a review (the job then freezes)."""
    return loan.next_review_on is not None and loan.next_review_on < on


def ended(loan: Loan, on: date) -> bool:
    return loan.line_ends_on is not None and on >= loan.line_ends_on


def state(loan: Loan, on: date) -> dict[str, Any]:
    """The line as the farmer and staff see it on ``on``: limit, drawn, available (0 when
    frozen, overdue for review or ended), frozen, end and next review."""
    closed = loan.line_frozen or review_overdue(loan, on) or ended(loan, on) \
        or loan.status != ACTIVE
    return {"limit_fen": loan.limit_fen or 0, "drawn_fen": loan.principal_outstanding_fen,
            "available_fen": 0 if closed else available(loan), "frozen": loan.line_frozen,
            "ends_on": loan.line_ends_on, "next_review_on": loan.next_review_on}


# --- draws ------------------------------------------------------------------------------------

def draw(session: DbSession, loan: Loan, farmer: Principal, *, amount_fen: int) -> Disbursement:
    """Draw ``amount_fen`` on the farmer's own line: checked, booked, with its installment."""
    if farmer.kind != "farmer" or farmer.id != loan.farmer_id:
        raise NotFound(not_found(Loan))
    if amount_fen <= 0:
        raise ValidationFailed(errors={"amount_fen": [_("Must be more than zero.")]})
    session.refresh(loan, with_for_update=True)  # draws on one line, one at a time
    today = jobs.business_date()
    _check_drawable(loan, today, amount_fen)
    row = Disbursement(loan=loan, seq=disbursement.next_seq(session, loan),
                       amount_fen=amount_fen, status=disbursement.AUTHORISED,
                       initiated_by=farmer.ref, authorised_at=utcnow(), business_date=today,
                       reason="line draw")
    session.add(row)
    session.flush()
    disbursement.book(session, row, business_date=today, actor=farmer.ref)
    due = min(add_months(today, DRAW_DUE_MONTHS), loan.line_ends_on or date.max)
    session.add(Installment(loan_id=loan.id, seq=row.seq, due_date=due,
                            principal_due_fen=amount_fen, interest_due_fen=0))
    session.flush()
    audit.record(session, "line.draw", row, summary={
        "loan": str(loan.public_id), "seq": row.seq, "amount_fen": amount_fen,
        "due_date": due.isoformat()}, actor=farmer.ref)
    return row


def _check_drawable(loan: Loan, today: date, amount_fen: int) -> None:
    if loan.kind != KIND:
        raise NotALine()
    if loan.status != ACTIVE:
        raise LineNotActive()
    if ended(loan, today):
        raise LineEnded()
    if loan.line_frozen or review_overdue(loan, today):
        raise LineFrozen()
    if amount_fen > available(loan):
        raise LimitExceeded(_("At most %(amount)s yuan can be drawn now.",
                              amount=yuan(available(loan))),
                            errors={"amount_fen": [_("At most %(fen)d.", fen=available(loan))]})


def undo_draw(session: DbSession, row: Disbursement, on: date) -> None:
    """A draw whose payout failed and whose journal was reversed: take its amount off the
    installments too, this draw's first, then the latest ones back, so the unpaid principal
    of the installments stays the drawn balance (for :func:`lending.servicing.payouts.fail`).
    An installment left with nothing to pay is closed on ``on``."""
    rest = row.amount_fen
    items = list(session.scalars(sa.select(Installment).where(
        Installment.loan_id == row.loan_id, Installment.paid_on.is_(None))
        .order_by(Installment.seq.desc())))
    items.sort(key=lambda item: item.seq != row.seq)  # this draw's own first (stable)
    for item in items:
        cut = min(rest, item.principal_due_fen - item.principal_paid_fen)
        item.principal_due_fen -= cut
        rest -= cut
        if item.principal_due_fen == item.principal_paid_fen:
            item.paid_on = on
    session.flush()


@dataclass(frozen=True)
class DrawView:
    """A draw with its installment and payout, as the API shows it."""

    draw: Disbursement
    installment: Installment | None
    payout_status: str | None


def present_draws(session: DbSession, loan: Loan,
                  rows: Sequence[Disbursement]) -> list[DrawView]:
    """``rows`` (draws of ``loan``) with their installments and payout status, two queries."""
    seqs = [row.seq for row in rows]
    installments = {i.seq: i for i in session.scalars(sa.select(Installment).where(
        Installment.loan_id == loan.id, Installment.seq.in_(seqs)))}
    payouts: dict[int, str] = dict(session.execute(
        sa.select(PayoutInstruction.disbursement_id, PayoutInstruction.status).where(
            PayoutInstruction.disbursement_id.in_([row.id for row in rows]))).all())
    return [DrawView(row, installments.get(row.seq), payouts.get(row.id)) for row in rows]


# --- reviews ----------------------------------------------------------------------------------

def review(session: DbSession, loan: Loan, staff: Principal, *, action: str,
           limit_fen: int | None = None, reason: str) -> LineReview:
    """An approver's annual review action on a line (see the module docstring)."""
    if not staff.is_staff or "approver" not in staff.roles:
        raise Forbidden(_("Only an approver reviews a line"))
    if action not in ACTIONS:
        raise ValidationFailed(errors={"action": [_("Must be one of %(actions)s.",
                                                    actions=", ".join(ACTIONS))]})
    session.refresh(loan, with_for_update=True)  # never beside a draw on the same line
    today = jobs.business_date()
    if loan.kind != KIND:
        raise NotALine()
    if loan.status != ACTIVE:
        raise LineNotActive()
    if ended(loan, today):
        raise LineEnded()
    before = _Snapshot.of(loan)
    _APPLY[action](session, loan, limit_fen, today)
    row = _record(session, loan, before, action=action, today=today, reason=reason,
                  staff_id=staff.id, actor=staff.ref)
    _tell(session, loan, action)
    return row


@dataclass(frozen=True)
class _Snapshot:
    limit_fen: int
    frozen: bool
    review_on: date | None

    @classmethod
    def of(cls, loan: Loan) -> _Snapshot:
        return cls(loan.limit_fen or 0, loan.line_frozen, loan.next_review_on)


def _renew(session: DbSession, loan: Loan, limit_fen: int | None, today: date) -> None:
    if limit_fen is not None:
        maximum = int(loan.terms.get("max_amount_fen", loan.principal_fen))
        if not 0 < limit_fen <= maximum:
            raise ValidationFailed(errors={"limit_fen": [_(
                "Must be between %(min)d and %(max)d (the product's maximum).",
                min=1, max=maximum)]})
        loan.limit_fen = limit_fen
    loan.next_review_on = _next_review(loan, today)
    if loan.line_frozen and _last_freeze(session, loan) == LAPSE:
        loan.line_frozen = False


def _next_review(loan: Loan, today: date) -> date:
    start = loan.next_review_on or today
    step = 1
    while add_months(start, REVIEW_MONTHS * step) <= today:
        step += 1
    nxt = add_months(start, REVIEW_MONTHS * step)
    return min(nxt, loan.line_ends_on) if loan.line_ends_on else nxt


def _last_freeze(session: DbSession, loan: Loan) -> str | None:
    """The action of the latest review that froze the line."""
    return session.scalar(sa.select(LineReview.action).where(
        LineReview.loan_id == loan.id, LineReview.frozen.is_(True),
        LineReview.was_frozen.is_(False)).order_by(LineReview.id.desc()).limit(1))


def _lower(_session: DbSession, loan: Loan, limit_fen: int | None, _today: date) -> None:
    current = loan.limit_fen or 0
    if limit_fen is None or not 0 <= limit_fen < current:
        raise ValidationFailed(errors={"limit_fen": [_(
            "Lowering needs a limit from 0 to below the current %(fen)d.", fen=current)]})
    loan.limit_fen = limit_fen


def _freeze(_session: DbSession, loan: Loan, limit_fen: int | None, _today: date) -> None:
    _no_limit(limit_fen)
    if loan.line_frozen:
        raise LineAlreadyFrozen()
    loan.line_frozen = True


def _unfreeze(_session: DbSession, loan: Loan, limit_fen: int | None, _today: date) -> None:
    _no_limit(limit_fen)
    if not loan.line_frozen:
        raise LineNotFrozen()
    loan.line_frozen = False


def _no_limit(limit_fen: int | None) -> None:
    if limit_fen is not None:
        raise ValidationFailed(errors={"limit_fen": [_("Only renew and lower take a limit.")]})


_APPLY = {RENEW: _renew, LOWER: _lower, FREEZE: _freeze, UNFREEZE: _unfreeze}


def _record(session: DbSession, loan: Loan, before: _Snapshot, *, action: str, today: date,
            reason: str, staff_id: int | None, actor: str) -> LineReview:
    row = LineReview(loan_id=loan.id, action=action, staff_id=staff_id, actor=actor,
                     business_date=today, old_limit_fen=before.limit_fen,
                     new_limit_fen=loan.limit_fen or 0, was_frozen=before.frozen,
                     frozen=loan.line_frozen, old_review_on=before.review_on,
                     new_review_on=loan.next_review_on, reason=reason)
    session.add(row)
    session.flush()
    audit.record(session, f"line.{action}", loan, actor=actor, summary={
        "review": str(row.public_id), "old_limit_fen": before.limit_fen,
        "new_limit_fen": row.new_limit_fen, "frozen": row.frozen,
        "next_review_on": row.new_review_on.isoformat() if row.new_review_on else None})
    return row


def _text(loan: Loan, action: str) -> str:
    limit = yuan(loan.limit_fen or 0)
    if action == RENEW:
        return _("[Nongdai] Your credit line is renewed: limit %(amount)s yuan, next review "
                 "on %(day)s.", amount=limit, day=str(loan.next_review_on))
    if action == LOWER:
        return _("[Nongdai] Your credit line limit is now %(amount)s yuan. What you owe and "
                 "its due dates are unchanged.", amount=limit)
    if action == UNFREEZE:
        return _("[Nongdai] Your credit line is open again: limit %(amount)s yuan.",
                 amount=limit)
    if action == LAPSE:
        return _("[Nongdai] Your credit line is paused until the bank's annual review: no new "
                 "draws for now. What you owe and its due dates are unchanged.")
    return _("[Nongdai] Your credit line is frozen: no new draws for now. What you owe and "
             "its due dates are unchanged.")


def _tell(session: DbSession, loan: Loan, action: str) -> None:
    """The farmer's SMS for a review action, in their language."""
    with in_locale(loan.farmer.language):
        body = _text(loan, action)
    outbox.queue_sms(session, loan.farmer.phone, body)


# --- the job ----------------------------------------------------------------------------------

JOB_NAME: Final = "servicing.line_reviews"


def run_reviews(run: jobs.JobRun) -> None:
    """Freeze lines whose review lapsed; settle ended lines that owe nothing (idempotent for
    the business date: what it changed no longer matches its conditions)."""
    session, today = db.session, run.business_date
    lapsed = session.scalars(sa.select(Loan.id).where(
        Loan.kind == KIND, Loan.status == ACTIVE, Loan.line_frozen.is_(False),
        Loan.next_review_on < today,
        sa.or_(Loan.line_ends_on.is_(None), Loan.line_ends_on > today))
        .order_by(Loan.id)).all()
    for chunk in run.chunks(lapsed):
        lapse(session, chunk, today)
    done = session.scalars(sa.select(Loan.id).where(
        Loan.kind == KIND, Loan.status == ACTIVE, Loan.line_ends_on <= today,
        Loan.principal_outstanding_fen == 0, Loan.interest_outstanding_fen == 0,
        Loan.penalty_outstanding_fen == 0).order_by(Loan.id)).all()
    for chunk in run.chunks(done):
        settle_ended(session, chunk, today)


def lapse(session: DbSession, loan_ids: Iterable[int], today: date) -> None:
    """Freeze these lines (one UPDATE, guarded by the same conditions), then record, audit
    and tell for each one frozen."""
    ids = list(loan_ids)
    frozen = session.scalars(sa.update(Loan).where(
        Loan.id.in_(ids), Loan.line_frozen.is_(False), Loan.next_review_on < today)
        .values(line_frozen=True).returning(Loan.id)
        .execution_options(synchronize_session="fetch")).all()
    for loan in session.scalars(sa.select(Loan).where(Loan.id.in_(frozen))):
        before = _Snapshot(loan.limit_fen or 0, False, loan.next_review_on)
        _record(session, loan, before, action=LAPSE, today=today,
                reason="annual review date passed", staff_id=None, actor=audit.SYSTEM)
        _tell(session, loan, LAPSE)


def settle_ended(session: DbSession, loan_ids: Iterable[int], today: date) -> None:
    """Settle ended lines that owe nothing (one guarded UPDATE), audited."""
    settled = session.scalars(sa.update(Loan).where(
        Loan.id.in_(list(loan_ids)), Loan.status == ACTIVE, Loan.principal_outstanding_fen == 0,
        Loan.interest_outstanding_fen == 0, Loan.penalty_outstanding_fen == 0)
        .values(status=SETTLED, settled_on=today).returning(Loan.id)
        .execution_options(synchronize_session="fetch")).all()
    for loan in session.scalars(sa.select(Loan).where(Loan.id.in_(settled))):
        audit.record(session, "line.settle", loan, actor=audit.SYSTEM,
                     summary={"settled_on": today.isoformat()})
